"""Jinja templates written by users in automation actions, checked before they are stored.

Three places take a template, and all answer as Prefect 3.9.1 does:

- ``POST /templates/validate`` (and the older ``/automations/templates/validate``): a template
  that parses answers 204; one that does not answers 422 with
  ``{"error": {"line": N, "message": "...", "source": "<the template>"}}``
  (:func:`validation_error_body`). ``line`` is Jinja's line for a syntax error and ``0`` for a
  template refused by the sandbox limits below.
- the ``subject`` and ``body`` of ``send-notification`` and the ``payload`` of
  ``call-webhook``: a bad template is the validation error
  ``'<field>' is not a valid template: <message>`` (:func:`check_template`).
- the ``parameters`` of ``run-deployment``: plain strings holding ``{{`` or ``{%`` are
  "version 1" templates, upgraded to ``__prefect_kind`` placeholders
  (:func:`upgrade_v1_templates`); the placeholders are then checked without rendering
  anything and every problem is listed by its path (:func:`check_parameters`).

Only parsing is checked: unknown filters, undefined names or a failing expression show up
when the template is rendered, as in Prefect. On top of the syntax, a template may hold at
most 10 ``for`` loops, nested at most 2 deep, and ``range()`` yields at most 100 items.

Where deputy is stricter than Prefect: a ``jinja`` placeholder whose ``template`` is not a
string, and problems inside lists of ``run-deployment`` parameters, are refused here; Prefect
stores both and the action fails each time it runs.

This module is pure and loads jinja2 on first use, not at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "KIND_KEY",
    "MAX_FOR_LOOPS",
    "MAX_LOOP_NESTING",
    "MAX_TEMPLATE_RANGE",
    "TemplateProblem",
    "check_parameters",
    "check_template",
    "environment",
    "maybe_template",
    "parameter_problems",
    "template_problem",
    "upgrade_v1_templates",
    "validation_error_body",
]

KIND_KEY = "__prefect_kind"
#: Most items ``range()`` may yield inside a template.
MAX_TEMPLATE_RANGE = 100
#: Most ``for`` loops one template may hold.
MAX_FOR_LOOPS = 10
#: Deepest nesting of ``for`` loops allowed.
MAX_LOOP_NESTING = 2


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why a template is refused: Jinja's line (0 for a sandbox limit) and message."""

    line: int
    message: str


# ------------------------------------------------------------------------- environment


def _bounded_range(*args: int) -> range:
    """``range`` for templates: a template must not be able to spin the CPU."""
    values = range(*args)
    if len(values) > MAX_TEMPLATE_RANGE:
        raise OverflowError(
            "Range too big. The sandbox blocks ranges larger than "
            f"MAX_TEMPLATE_RANGE={MAX_TEMPLATE_RANGE}."
        )
    return values


@cache
def environment() -> ImmutableSandboxedEnvironment:
    """The sandbox user templates are parsed (and will be rendered) in.

    Immutable sandbox: no dunder attributes, no mutating methods. ``ChainableUndefined``: an
    unknown name, or an attribute of one, renders as an empty string instead of failing.
    """
    from jinja2 import ChainableUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined)
    env.globals["range"] = _bounded_range
    return env


# -------------------------------------------------------------------------- validation


def maybe_template(text: str) -> bool:
    """Whether ``text`` holds Jinja syntax at all (an expression or a statement)."""
    return "{{" in text or "{%" in text


def _loop_depth(node: nodes.Node) -> int:
    """Deepest chain of nested ``for`` loops at or below ``node``."""
    from jinja2 import nodes

    below = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return below + 1 if isinstance(node, nodes.For) else below


@lru_cache(maxsize=256)
def template_problem(source: str) -> TemplateProblem | None:
    """Why ``source`` is not an acceptable template, or ``None`` when it is."""
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError

    try:
        tree = environment().parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno, exc.message if exc.message is not None else str(exc))
    loops = list(tree.find_all(nodes.For))
    if len(loops) > MAX_FOR_LOOPS:
        return TemplateProblem(
            0,
            f"Contains {len(loops)} for loops. Templates can contain no more than "
            f"{MAX_FOR_LOOPS} for loops.",
        )
    depth = _loop_depth(tree) if loops else 0
    if depth > MAX_LOOP_NESTING:
        return TemplateProblem(
            0,
            f"Contains nested for loops at a depth of {depth}. Templates can nest for loops "
            f"no more than {MAX_LOOP_NESTING} loops deep.",
        )
    return None


def check_template(source: str, field_name: str) -> str:
    """``source`` itself, or a ``ValueError`` naming the field (a pydantic validator)."""
    problem = template_problem(source)
    if problem is not None:
        raise ValueError(f"{field_name!r} is not a valid template: {problem.message}")
    return source


def validation_error_body(source: str) -> dict[str, Any] | None:
    """The 422 body of ``/templates/validate`` for ``source``; ``None`` means 204."""
    problem = template_problem(source)
    if problem is None:
        return None
    return {"error": {"line": problem.line, "message": problem.message, "source": source}}


# --------------------------------------------------------- run-deployment parameters


def _wrap_v1_template(template: str) -> dict[str, Any]:
    """A plain-string template as a placeholder.

    A string that is one expression and nothing else (``"{{ event.id }}"``) keeps the type
    of what it renders: it is rendered through ``tojson`` and read back as JSON. Anything
    else renders to a string.
    """
    stripped = template.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        expression = stripped[2:-2].strip()
        return {
            KIND_KEY: "json",
            "value": {KIND_KEY: "jinja", "template": "{{ " + expression + " | tojson }}"},
        }
    return {KIND_KEY: "jinja", "template": template}


def upgrade_v1_templates(value: Any) -> Any:
    """``value`` (a copy) with every plain-string template made a placeholder.

    Placeholders already there (objects with ``__prefect_kind``) are left as they are.
    """
    # Plain loops, one stack frame a level: bodies may nest 300 levels deep.
    if isinstance(value, dict):
        if KIND_KEY in value:
            return value
        upgraded: dict[Any, Any] = {}
        for key, item in value.items():
            upgraded[key] = upgrade_v1_templates(item)
        return upgraded
    if isinstance(value, list):
        items = []
        for item in value:
            items.append(upgrade_v1_templates(item))
        return items
    if isinstance(value, str) and maybe_template(value):
        return _wrap_v1_template(value)
    return value


class _Error:
    """A placeholder that cannot be resolved, with Prefect's reason."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Pending:
    """A valid placeholder whose value is known only when rendered (a template, a variable)."""

    __slots__ = ()


_PENDING = _Pending()
_REMOVE = object()  # a placeholder that disappears from its parent


def _unresolved(value: Any) -> bool:
    return value is _REMOVE or isinstance(value, _Error | _Pending)


def _nested(obj: dict[str, Any], key: str) -> Any:
    value = obj[key]
    return _resolve(value) if isinstance(value, dict) else value


def _resolve_none(obj: dict[str, Any]) -> Any:
    if "value" not in obj:
        return _Error("Missing 'value' key in __prefect object")
    return _resolve(obj["value"])


def _resolve_json(obj: dict[str, Any]) -> Any:
    if "value" not in obj:
        return _REMOVE
    value = _nested(obj, "value")
    if _unresolved(value) or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        return _Error(f"Invalid JSON: {exc}")


def _resolve_jinja(obj: dict[str, Any]) -> Any:
    if "template" not in obj:
        return _Error("Missing 'template' key in __prefect object")
    template = _nested(obj, "template")
    if _unresolved(template):
        return template
    if not isinstance(template, str):
        return _Error(f"Invalid jinja: template must be a string, not {type(template).__name__}")
    problem = template_problem(template)
    return _PENDING if problem is None else _Error(f"Invalid jinja: {problem.message}")


def _resolve_variable(obj: dict[str, Any]) -> Any:
    if "variable_name" not in obj:
        return _REMOVE
    name = _nested(obj, "variable_name")
    return name if _unresolved(name) else _PENDING


_RESOLVERS = {
    "none": _resolve_none,
    "json": _resolve_json,
    "jinja": _resolve_jinja,
    "workspace_variable": _resolve_variable,
}


def _resolve(value: Any) -> Any:
    """``value`` with each placeholder resolved as far as it can be without rendering."""
    if isinstance(value, dict):
        if KIND_KEY in value:
            resolver = _RESOLVERS.get(value[KIND_KEY])
            # an unknown kind stands for its ``value``, taken as it is
            return value.get("value") if resolver is None else resolver(value)
        # Plain loops, one stack frame a level (see upgrade_v1_templates).
        resolved: dict[Any, Any] = {}
        for key, item in value.items():
            if (outcome := _resolve(item)) is not _REMOVE:
                resolved[key] = outcome
        return resolved
    if isinstance(value, list):
        kept = []
        for item in value:
            if (outcome := _resolve(item)) is not _REMOVE:
                kept.append(outcome)
        return kept
    return value


def _errors(value: Any) -> Iterator[tuple[str, str]]:
    """Every unresolvable placeholder with its path, depth first in document order."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _Error):
            yield path, item.message
        elif isinstance(item, dict):
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{path}[{i}]") for i, v in enumerate(item)]))


def parameter_problems(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """``(path, reason)`` for every placeholder in ``parameters`` that can never resolve.

    Paths are dotted (``a.b``), with ``[i]`` for list items; ``""`` is ``parameters``
    itself. Workspace variables are not looked up: they may be created later.
    """
    return list(_errors(_resolve(upgrade_v1_templates(parameters))))


def check_parameters(parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """``parameters`` itself, or a ``ValueError`` with Prefect's "Invalid parameters" text."""
    if not parameters:
        return parameters
    problems = parameter_problems(parameters)
    if not problems:
        return parameters
    lines = (f"{path}: {reason}" if path else f" {reason}" for path, reason in problems)
    raise ValueError("Invalid parameters: \n" + "\n  ".join(lines))
