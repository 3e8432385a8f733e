"""Task runs recorded from the ``prefect.task-run.*`` events the task engine sends.

Prefect 3's task engine orchestrates task runs itself and only reports them as events over
``/events/in``; this turns them into task runs and states as Prefect's ``TaskRunRecorder``
does: no rule runs (the engine decided already), no slot or cache entry is touched.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import IntegrityError

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict, insert_unless_exists
from deputy.orchestration.states import default_name
from deputy.schemas.core import DateTime, KeyValueLabels, StateDetails, StateType
from deputy.schemas.task_runs import TaskInputs, TaskRunPolicy, check_cache_key
from deputy.services.common import json_time
from deputy.services.names import generate_run_name
from deputy.services.task_runs.rows import dump_inputs

if TYPE_CHECKING:
    from deputy.db.connection import Connection

logger = logging.getLogger("deputy.services.task_runs.recorder")

_run = t.task_run.c
_NATURAL_KEY = ("flow_run_id", "task_key", "dynamic_key")

_FIND_FOR_EVENT = select(_run.id, _run.flow_run_id, _run.task_key, _run.dynamic_key).where(
    or_(
        _run.id == bindparam("id"),
        (_run.flow_run_id == bindparam("flow_run_id"))
        & (_run.task_key == bindparam("task_key"))
        & (_run.dynamic_key == bindparam("dynamic_key")),
    )
)


@functools.cache
def _upsert_from_event(dialect: str, target: str, columns: tuple[str, ...]) -> Any:
    """Prefect's recorder upsert: insert the run, or update the columns the event carries
    when (and only when) its state is newer than the run's current one."""
    statement = insert_on_conflict(dialect, t.task_run)
    index = list(_NATURAL_KEY) if target == "natural-key" else ["id"]
    changed = [name for name in columns if name not in ("id", "created")]
    return statement.on_conflict_do_update(
        index_elements=index,
        set_={name: statement.excluded[name] for name in changed},
        where=_run.state_timestamp < statement.excluded.state_timestamp,
    )


class _EventTaskRun(BaseModel):
    """``payload.task_run`` of a task-run event: the run as the engine keeps it. Unknown
    keys are ignored; only the keys present are written, as Prefect's recorder does."""

    name: str = ""
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: DateTime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = Field(default_factory=TaskRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = Field(default_factory=dict)
    task_inputs: TaskInputs = Field(default_factory=dict)
    run_count: int = 0
    flow_run_run_count: int = 0
    expected_start_time: DateTime | None = None
    next_scheduled_start_time: DateTime | None = None
    start_time: DateTime | None = None
    end_time: DateTime | None = None
    total_run_time: dt.timedelta = dt.timedelta(0)

    _cache_key = field_validator("cache_key")(check_cache_key)

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return value or generate_run_name()

    def columns(self) -> dict[str, Any]:
        """The task_run columns this payload sets."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name == "empirical_policy":
                value = self.empirical_policy.model_dump(mode="json")
            elif name == "task_inputs":
                value = dump_inputs(self.task_inputs)
            elif name == "total_run_time":
                value = self.total_run_time.total_seconds()
            out[name] = value
        return out


class _EventState(BaseModel):
    """``payload.validated_state``, with the event's id and time as the state's."""

    id: uuid.UUID
    timestamp: DateTime
    type: StateType
    name: str | None = None
    message: str | None = None
    data: Any = None
    state_details: StateDetails = Field(default_factory=StateDetails)


class _Event(BaseModel):
    id: uuid.UUID
    occurred: DateTime
    event: str
    resource: dict[str, str]
    related: list[dict[str, str]] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)


class _NotATaskRunEvent(ValueError):
    pass


def _object_id(resource: dict[str, str], kind: str) -> uuid.UUID:
    """The UUID in ``prefect.resource.id`` = ``<kind>.<uuid>``."""
    resource_id = resource.get("prefect.resource.id", "")
    if not resource_id.startswith(f"{kind}."):
        raise _NotATaskRunEvent(f"{resource_id!r} is not a {kind}")
    return uuid.UUID(resource_id[len(kind) + 1 :])


def _parse_event(
    raw: dict[str, Any], *, now: dt.datetime
) -> tuple[_EventTaskRun, dict[str, Any], dict[str, Any]]:
    """The event's task run, its run columns and its state row (Prefect's
    ``task_run_from_event``). Raises ValueError (or ValidationError) for a malformed event."""
    event = _Event.model_validate(raw)
    task_run_id = _object_id(event.resource, "prefect.task-run")
    roles = {related.get("prefect.resource.role"): related for related in event.related}
    flow_run_id = None
    if (flow_run := roles.get("flow-run")) is not None:
        flow_run_id = _object_id(flow_run, "prefect.flow-run")
    validated = event.payload.get("validated_state")
    task_run_payload = event.payload.get("task_run")
    if not isinstance(validated, dict) or not isinstance(task_run_payload, dict):
        raise _NotATaskRunEvent("payload lacks validated_state or task_run")
    state = _EventState.model_validate({"id": event.id, "timestamp": event.occurred, **validated})
    task_run = _EventTaskRun.model_validate(task_run_payload)
    details = state.state_details.model_dump(mode="json")
    if state.type == StateType.SCHEDULED and not details.get("scheduled_time"):
        details["scheduled_time"] = json_time(now)  # Prefect's State defaults it
    details["task_run_id"] = str(task_run_id)
    details["flow_run_id"] = str(flow_run_id) if flow_run_id is not None else None
    name = state.name if state.name is not None else default_name(state.type)
    columns = {
        "id": task_run_id,
        "flow_run_id": flow_run_id,
        **task_run.columns(),
        "state_id": state.id,
        "state_type": state.type.value,
        "state_name": name,
        "state_timestamp": state.timestamp,
    }
    state_row = {
        "id": state.id,
        "task_run_id": task_run_id,
        "type": state.type.value,
        "name": name,
        "timestamp": state.timestamp,
        "message": state.message,
        "data": state.data,
        "state_details": details,
    }
    return task_run, columns, state_row


async def record_task_run_event(
    conn: Connection, event: dict[str, Any], *, now: dt.datetime
) -> None:
    """Record one event as received on ``/events/in`` (ids and times as text or parsed), inside
    the caller's write transaction; it never commits.

    Only ``prefect.task-run.*`` events from the client (``"prefect.orchestration":
    "client"``) count. The run's columns are the keys ``payload.task_run`` carries (a key
    it lacks keeps its stored value); the state is ``payload.validated_state`` with the
    event's id and time. The run is found by id or by (flow run, task key, dynamic key) and
    updated only when the event's state is newer than its current one, so events may arrive
    in any order; a repeated event adds no state. A malformed event, or one the database
    refuses (rolled back to a savepoint), is logged and ignored, as Prefect discards it;
    other database errors propagate. Three statements (look up, upsert, insert state)
    inside a savepoint.
    """
    name = event.get("event")
    if not isinstance(name, str) or not name.startswith("prefect.task-run."):
        return
    resource = event.get("resource")
    if not isinstance(resource, dict) or resource.get("prefect.orchestration") != "client":
        return
    try:
        task_run, columns, state_row = _parse_event(event, now=now)
    except (ValueError, ValidationError) as error:
        logger.warning("Ignoring malformed task-run event %s: %s", event.get("id"), error)
        return
    try:
        async with conn.begin_nested():
            await _upsert_task_run(conn, task_run, columns, state_row, now=now)
    except IntegrityError:
        logger.warning(
            "Discarding task-run event %s: it conflicts with stored data", event.get("id")
        )


async def _upsert_task_run(
    conn: Connection,
    task_run: _EventTaskRun,
    columns: dict[str, Any],
    state_row: dict[str, Any],
    *,
    now: dt.datetime,
) -> None:
    """Insert or update the run (filed under the stored run's id when found by its natural
    key), then add the state unless an event with its id was recorded already."""
    task_run_id: uuid.UUID = columns["id"]
    flow_run_id: uuid.UUID | None = columns["flow_run_id"]
    found = (
        await conn.execute(
            _FIND_FOR_EVENT,
            {
                "id": task_run_id,
                "flow_run_id": flow_run_id,
                "task_key": task_run.task_key,
                "dynamic_key": task_run.dynamic_key,
            },
        )
    ).all()
    by_natural_key = next(
        (
            row.id
            for row in found
            if flow_run_id is not None
            and (row.flow_run_id, row.task_key, row.dynamic_key)
            == (flow_run_id, task_run.task_key, task_run.dynamic_key)
        ),
        None,
    )
    if by_natural_key is not None:
        target, canonical = "natural-key", by_natural_key
    elif any(row.id == task_run_id for row in found):
        target, canonical = "id", task_run_id
    else:
        target = "natural-key" if flow_run_id is not None else "id"
        canonical = task_run_id
    row = {**columns, "created": now, "updated": now}
    statement = _upsert_from_event(conn.dialect.name, target, tuple(sorted(row)))
    await conn.execute(statement, row)
    details = {**state_row["state_details"], "task_run_id": str(canonical)}
    await conn.execute(
        insert_unless_exists(conn.dialect.name, t.task_run_state, ("id",)),
        {
            **state_row,
            "task_run_id": canonical,
            "state_details": details,
            "created": now,
            "updated": now,
        },
    )
