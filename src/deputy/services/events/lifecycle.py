"""The events Prefect's server emits when some objects are created, updated or deleted:
``prefect.flow.*``, ``prefect.variable.*``, ``prefect.concurrency-limit.*`` (global limits,
tag limits included), ``prefect.artifact-collection.*`` and ``prefect.block-type.*``, with
Prefect's resources and payloads.

Like the flow-run events, they are queued on the event bus in the request that makes the
change, and written with the next batch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from deputy.schemas.blocks import block_type_to_wire
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


#: Keys of a wire object that are the event's resource, not its payload.
_ROW_KEYS = ("id", "created", "updated")


def block_type_changed(action: str, row: Any, *, now: dt.datetime) -> None:
    payload = {k: v for k, v in block_type_to_wire(row).items() if k not in _ROW_KEYS}
    _emit("block-type", action, row.id, row.name, payload, now=now)


def block_document_changed(
    action: str, row: Any, *, data: dict[str, str], capabilities: list[Any], now: dt.datetime
) -> None:
    """``row``: the ``block_document`` row; ``data``: its top-level text values that are not
    secret (as answered); ``capabilities``: its schema's."""
    block_type: dict[str, str] = {
        "prefect.resource.id": f"prefect.block-type.{row.block_type_id}",
        "prefect.resource.role": "block-type",
    }
    if row.block_type_name:
        block_type["prefect.resource.name"] = row.block_type_name
    related = [
        block_type,
        {
            "prefect.resource.id": f"prefect.block-schema.{row.block_schema_id}",
            "prefect.resource.role": "block-schema",
        },
    ]
    payload = {
        "name": row.name,
        "data": data,
        "block_schema": {
            "capabilities": list(capabilities),
            "block_type": {"id": str(row.block_type_id), "name": row.block_type_name or ""},
        },
    }
    _emit("block-document", action, row.id, row.name, payload, related, now=now)


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
