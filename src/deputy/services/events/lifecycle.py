"""The events Prefect's server emits when some objects are created, updated or deleted:
``prefect.flow.*``, ``prefect.variable.*``, ``prefect.concurrency-limit.*`` (global limits,
tag limits included) and ``prefect.artifact-collection.*``, with Prefect's resources and
payloads.

Like the flow-run events, they are queued on the event bus in the request that makes the
change, and written with the next batch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from deputy.services.common import uuid7
from deputy.services.events.bus import bus


def flow_changed(action: str, row: Any, *, now: dt.datetime) -> None:
    _emit(
        "flow",
        action,
        row.id,
        row.name,
        {"name": row.name, "tags": list(row.tags or []), "labels": row.labels or {}},
        now=now,
    )


def variable_changed(action: str, row: Any, *, now: dt.datetime) -> None:
    payload = {"name": row.name, "value": row.value, "tags": list(row.tags or [])}
    _emit("variable", action, row.id, row.name, payload, now=now)


def global_limit_changed(action: str, row: Any, *, now: dt.datetime) -> None:
    payload = {
        "name": row.name,
        "limit": row.limit,
        "active": row.active,
        "slot_decay_per_second": row.slot_decay_per_second,
    }
    _emit("concurrency-limit", action, row.id, row.name, payload, now=now)


def artifact_key_changed(action: str, row: Any, *, now: dt.datetime) -> None:
    """``row``: the key's ``artifact_collection`` row, as it is after the change."""
    related = [{"prefect.resource.id": f"prefect.artifact.{row.latest_id}",
                "prefect.resource.role": "latest"}]  # fmt: skip
    if row.flow_run_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{row.flow_run_id}",
                "prefect.resource.role": "flow-run",
            }
        )
    if row.task_run_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.task-run.{row.task_run_id}",
                "prefect.resource.role": "task-run",
            }
        )
    payload = {
        "key": row.key,
        "type": row.type,
        "data": row.data,
        "description": row.description,
    }
    _emit("artifact-collection", action, row.id, row.key, payload, related, now=now)


def _emit(
    kind: str,
    action: str,
    object_id: Any,
    name: str | None,
    payload: dict[str, Any],
    related: list[dict[str, str]] | None = None,
    *,
    now: dt.datetime,
) -> None:
    if not bus.active:
        return
    resource = {"prefect.resource.id": f"prefect.{kind}.{object_id}"}
    if name is not None:
        resource["prefect.resource.name"] = name
    bus.emit(
        {
            "occurred": now,
            "event": f"prefect.{kind}.{action}",
            "resource": resource,
            "related": related or [],
            "payload": payload,
            "id": uuid7(),
            "follows": None,
            "received": now,
        }
    )
