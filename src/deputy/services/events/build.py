"""The events the server itself emits for flow runs: ``prefect.flow-run.<state name>`` for
every state written, shaped as Prefect's server shapes them (resource labels, related
resources in Prefect's order, payload).

The hot paths (create_flow_run, set_state) hand over the row they already read with
``flow_run_created`` / ``flow_run_state_written``; the bus's flusher builds the event later,
off the request's path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from deputy.services.events.bus import Event, bus

#: State messages longer than this are shortened in events, as Prefect does.
TRUNCATE_STATE_MESSAGES_AT = 100_000


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _truncated(text: str | None, length: int = TRUNCATE_STATE_MESSAGES_AT) -> str:
    """Prefect's ``truncated_to``: the middle of a long text replaced by a count."""
    if not text:
        return ""
    if len(text) <= length:
        return text
    half = length // 2
    omitted = len(text) - 2 * half
    shortened = f"{text[:half]}...{omitted} additional characters...{text[-half:]}"
    return shortened if len(shortened) < len(text) else text


def _state_payload(state: Mapping[str, Any] | None) -> dict[str, str] | None:
    if state is None:
        return None
    payload = {"type": state["type"]}
    if state.get("name"):
        payload["name"] = state["name"]
    if state.get("message"):
        payload["message"] = _truncated(state["message"])
    if state["type"] == "PAUSED":
        details = state.get("state_details") or {}
        payload["pause_reschedule"] = str(bool(details.get("pause_reschedule"))).lower()
    return payload


#: A state's event ``follows`` the previous state's only when they are this close, as in Prefect.
_TIGHT_TIMING = dt.timedelta(minutes=5)


def flow_run_related(
    *,
    run_tags: Sequence[str] | None,
    flow_id: Any,
    flow_name: str | None,
    flow_tags: Sequence[str] | None = None,
    deployment_id: Any = None,
    deployment_name: str | None = None,
    deployment_tags: Sequence[str] | None = None,
    queue_id: Any = None,
    queue_name: str | None = None,
    pool_id: Any = None,
    pool_name: str | None = None,
    pool_type: str | None = None,
    parent_task_run_id: Any = None,
    parent_task_run_name: str | None = None,
    parent_task_run_tags: Sequence[str] | None = None,
    created_by: Mapping[str, Any] | None = None,
) -> list[dict[str, str]]:
    """A flow run's related resources, as Prefect lists them: flow, deployment, work queue,
    work pool (with its type), parent task run, every tag (sorted), then the creator."""
    related: list[dict[str, str]] = []
    if flow_id is not None:
        related.append(_related("flow", flow_id, flow_name))
    if deployment_id is not None:
        related.append(_related("deployment", deployment_id, deployment_name))
    if queue_id is not None:
        related.append(_related("work-queue", queue_id, queue_name))
    if pool_id is not None:
        pool = _related("work-pool", pool_id, pool_name)
        if pool_type is not None:
            pool["prefect.work-pool.type"] = pool_type
        related.append(pool)
    if parent_task_run_id is not None:
        related.append(_related("task-run", parent_task_run_id, parent_task_run_name))
    related += _tags(run_tags, flow_tags, deployment_tags, parent_task_run_tags)
    creator = _creator(created_by)
    if creator is not None:
        related.append(creator)
    return related


def _tags(*groups: Sequence[str] | None) -> list[dict[str, str]]:
    """One resource per tag of any group, sorted."""
    tags: set[str] = set()
    for group in groups:
        if group:
            tags.update(group)
    return [
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        for tag in sorted(tags)
    ]


def _creator(created_by: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The deployment or automation that created the run (Prefect names no other creator)."""
    if not created_by or created_by.get("type") not in ("DEPLOYMENT", "AUTOMATION"):
        return None
    kind = "deployment" if created_by["type"] == "DEPLOYMENT" else "automation"
    creator = {
        "prefect.resource.id": f"prefect.{kind}.{created_by.get('id')}",
        "prefect.resource.role": "creator",
    }
    if created_by.get("display_value"):
        creator["prefect.resource.name"] = str(created_by["display_value"])
    return creator


def _related(kind: str, object_id: Any, name: str | None) -> dict[str, str]:
    resource = {"prefect.resource.id": f"prefect.{kind}.{object_id}", "prefect.resource.role": kind}
    if name is not None:
        resource["prefect.resource.name"] = name
    return resource


def flow_run_state_event(
    *,
    run_id: Any,
    run_name: str | None,
    run_count: int,
    state: Mapping[str, Any],
    initial: Mapping[str, Any] | None,
    related: list[dict[str, str]],
) -> Event:
    """Prefect's ``prefect.flow-run.<state name>`` event for a written state; its id is the
    state's id, so events follow state order."""
    timestamp: dt.datetime = state["timestamp"]
    initial_timestamp = initial.get("timestamp") if initial is not None else None
    tight = initial_timestamp is not None and abs(timestamp - initial_timestamp) < _TIGHT_TIMING
    resource = {"prefect.resource.id": f"prefect.flow-run.{run_id}"}
    if run_name is not None:
        resource["prefect.resource.name"] = run_name
    resource |= {
        "prefect.run-count": str(run_count),
        "prefect.state-message": _truncated(state.get("message")),
        "prefect.state-name": state.get("name") or "",
        "prefect.state-timestamp": _iso(timestamp),
        "prefect.state-type": state["type"],
    }
    return {
        "occurred": timestamp,
        "event": f"prefect.flow-run.{state.get('name')}",
        "resource": resource,
        "related": related,
        "payload": {
            "intended": {"from": initial["type"] if initial else None, "to": state["type"]},
            "initial_state": _state_payload(initial),
            "validated_state": _state_payload(state),
        },
        "id": state["id"],
        "follows": initial.get("id") if initial is not None and tight else None,
        "received": timestamp,
    }


def flow_run_state_written(row: Any, state: Mapping[str, Any], run_count: int) -> None:
    """Emit the event for a state set_state wrote; ``row`` is the run as set_state read it
    (with its current state and the names of its flow, deployment, queue, pool, parent).
    The event is built by the flusher, off the request's path."""
    if bus.active:
        bus.emit_later(_event_for_written_state, row, dict(state), run_count)


def _event_for_written_state(row: Any, state: Mapping[str, Any], run_count: int) -> Event:
    initial = (
        {
            "id": row.state__id,
            "type": row.state__type,
            "name": row.state__name,
            "message": row.state__message,
            "timestamp": row.state__timestamp,
            "state_details": row.state__state_details,
        }
        if row.state__id is not None
        else None
    )
    related = flow_run_related(
        run_tags=row.tags,
        flow_id=row.flow_id,
        flow_name=row.flow__name,
        flow_tags=row.flow__tags,
        deployment_id=row.deployment__id,
        deployment_name=row.deployment__name,
        deployment_tags=row.deployment__tags,
        queue_id=row.work_queue_id,
        queue_name=row.queue__name,
        pool_id=row.pool__id,
        pool_name=row.pool__name,
        pool_type=row.pool__type,
        parent_task_run_id=row.parent_task_run_id,
        parent_task_run_name=row.parent__name,
        parent_task_run_tags=row.parent__tags,
        created_by=row.created_by,
    )
    return flow_run_state_event(
        run_id=row.id,
        run_name=row.name,
        run_count=run_count,
        state=state,
        initial=initial,
        related=related,
    )


def flow_run_created(
    run: Mapping[str, Any],
    state: Mapping[str, Any],
    *,
    queue_name: str | None,
    pool_id: Any,
    pool_name: str | None,
    names: Mapping[str, Any] | None,
) -> None:
    """Emit the event for a new run's first state (``names``: what the caller read of the
    flow, deployment and pool: ``flow_name``, ``flow_tags``, ``deployment_name``,
    ``deployment_tags``, ``pool_type``). The event is built by the flusher."""
    if bus.active:
        bus.emit_later(
            _event_for_new_run,
            dict(run),
            dict(state),
            queue_name,
            pool_id,
            pool_name,
            dict(names or {}),
        )


def _event_for_new_run(
    run: Mapping[str, Any],
    state: Mapping[str, Any],
    queue_name: str | None,
    pool_id: Any,
    pool_name: str | None,
    names: Mapping[str, Any],
) -> Event:
    related = flow_run_related(
        run_tags=run["tags"],
        flow_id=run["flow_id"],
        flow_name=names.get("flow_name"),
        flow_tags=names.get("flow_tags"),
        deployment_id=run["deployment_id"],
        deployment_name=names.get("deployment_name"),
        deployment_tags=names.get("deployment_tags"),
        queue_id=run["work_queue_id"],
        queue_name=queue_name,
        pool_id=pool_id,
        pool_name=pool_name,
        pool_type=names.get("pool_type"),
        parent_task_run_id=run["parent_task_run_id"],
        created_by=run["created_by"],
    )
    return flow_run_state_event(
        run_id=run["id"],
        run_name=run["name"],
        run_count=run["run_count"],
        state=state,
        initial=None,
        related=related,
    )
