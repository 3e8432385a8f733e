"""Prefect 3.9.1's own models as the reference: run in its virtualenv, never imported here.

``prefect_answers`` validates bodies with Prefect's server models in one subprocess of
``.venv-prefect`` (made by ``make test``) and returns what Prefect makes of each: its dump
(``model_dump(mode="json")``) or its validation errors as ``[type, loc, msg]``. Tests compare
deputy's models with it. Without the virtualenv the tests that need it skip (and fail on CI).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import tempfile
import textwrap
from typing import Any

from prefect_venv import PREFECT_PYTHON, require_prefect

#: Reads batches of ``[[model, body], ...]``, one a line, and answers each batch on a line.
_VALIDATE = """
    import json, sys
    from pydantic import ValidationError
    from prefect.server.events.filters import AutomationFilter
    from prefect.server.events.schemas import automations

    MODELS = {
        "AutomationCreate": automations.AutomationCreate,
        "AutomationUpdate": automations.AutomationUpdate,
        "AutomationPartialUpdate": automations.AutomationPartialUpdate,
        "AutomationFilter": AutomationFilter,
    }
    # Triggers and actions only ever arrive inside an automation (pydantic names some
    # union branches differently in a standalone adapter), so they are checked in one.
    WRAPPED = {
        "Trigger": (lambda body: {"name": "t", "trigger": body, "actions": []}, ["trigger"]),
        "Action": (
            lambda body: {"name": "a", "trigger": {"posture": "Reactive"}, "actions": [body]},
            ["actions", 0],
        ),
    }

    def answer(model, body):
        wrap, path = WRAPPED.get(model, (lambda body: body, []))
        try:
            value = MODELS.get(model, automations.AutomationCreate).model_validate(wrap(body))
        except ValidationError as exc:
            errors = [[e["type"], list(e["loc"]), e["msg"]] for e in exc.errors()]
            return {"errors": [[t, loc[len(path):], msg] for t, loc, msg in errors]}
        dump = value.model_dump(mode="json")
        for key in path:
            dump = dump[key]
        return {"ok": dump}

    for line in sys.stdin:  # one batch of ``[[model, body], ...]`` a line
        answers = [answer(model, body) for model, body in json.loads(line)]
        print(json.dumps(answers), flush=True)
"""


def _environment(home: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "DEPUTY_", "VIRTUAL_ENV"))
    }
    env.update(PREFECT_HOME=home, PYTHONHASHSEED="0")
    return env


def run_prefect(code: str, stdin: str = "", timeout: float = 120) -> Any:
    """Run ``code`` with Prefect's Python; its stdout is parsed as JSON."""
    require_prefect()
    with tempfile.TemporaryDirectory(prefix="deputy-prefect-home-") as home:
        done = subprocess.run(
            [str(PREFECT_PYTHON), "-c", textwrap.dedent(code)],
            input=stdin,
            env=_environment(home),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


class _Validator:
    """One Prefect process for the whole test session: importing Prefect takes seconds."""

    def __init__(self) -> None:
        self.home = tempfile.TemporaryDirectory(prefix="deputy-prefect-home-")
        # its stderr, read for a failure's message; closed by close()
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(PREFECT_PYTHON), "-c", textwrap.dedent(_VALIDATE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=_environment(self.home.name),
            text=True,
        )
        atexit.register(self.close)

    def ask(self, requests: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(requests) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise AssertionError(f"Prefect's validator stopped: {self.log.read()}")
        answers: list[dict[str, Any]] = json.loads(line)
        return answers

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self.process.wait(timeout=30)
        self.log.close()
        self.home.cleanup()


_validator: list[_Validator] = []


def prefect_answers(requests: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """What Prefect's server models make of each ``(model, body)``: ``{"ok": dump}`` or
    ``{"errors": [[type, loc, msg], ...]}``. Models: ``AutomationCreate``,
    ``AutomationUpdate``, ``AutomationPartialUpdate``, ``AutomationFilter``, ``Trigger`` (any
    trigger, inside an automation) and ``Action`` (any action, inside an automation)."""
    require_prefect()
    if not _validator or _validator[0].process.poll() is not None:
        _validator[:] = [_Validator()]
    return _validator[0].ask(requests)


# --- deputy's side of the comparison -------------------------------------------------------

_SET_FIELDS = ("after", "expect", "for_each")


def deputy_answer(model: str, body: Any) -> dict[str, Any]:
    """What deputy's models make of ``body``, shaped as :func:`prefect_answers` answers."""
    from pydantic import BaseModel, ValidationError

    from deputy.schemas import automations

    models: dict[str, type[BaseModel]] = {
        "AutomationCreate": automations.AutomationCreate,
        "AutomationUpdate": automations.AutomationUpdate,
        "AutomationPartialUpdate": automations.AutomationPartialUpdate,
        "AutomationFilter": automations.AutomationFilter,
    }
    wrapped, path = _wrapped(model, json.loads(json.dumps(body)))
    try:
        value = models.get(model, automations.AutomationCreate).model_validate(wrapped)
    except ValidationError as exc:
        errors = [(e["type"], list(e["loc"]), e["msg"]) for e in exc.errors()]
        return {"errors": [[kind, loc[len(path) :], msg] for kind, loc, msg in errors]}
    dump: Any = value.model_dump(mode="json")
    for key in path:
        dump = dump[key]
    return {"ok": dump}


def _wrapped(model: str, body: Any) -> tuple[Any, list[str | int]]:
    """A trigger or an action inside an automation, and where it sits there."""
    if model == "Trigger":
        return {"name": "t", "trigger": body, "actions": []}, ["trigger"]
    if model == "Action":
        automation = {"name": "a", "trigger": {"posture": "Reactive"}, "actions": [body]}
        return automation, ["actions", 0]
    return body, []


def comparable(value: Any) -> Any:
    """``value`` with what legitimately differs between two servers made equal: trigger ids
    (generated) and the order of the set fields of event triggers (Prefect's sets)."""
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {key: comparable(item) for key, item in value.items()}
    if result.get("type") in ("event", "compound", "sequence") and "id" in result:
        result["id"] = "<trigger id>"
    for key in _SET_FIELDS:
        if result.get("type") == "event" and isinstance(result.get(key), list):
            result[key] = sorted(result[key])
    return result
