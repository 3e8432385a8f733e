"""Flow-run inputs: small JSON documents stored per run under a key.

The SDK writes them for ``pause_flow_run(wait_for_input=...)`` (the schema the run waits
for, then the validated answer ``resume`` stores) and for ``send_input``/``receive_input``.
Keys are unique per run, decided by the database's constraint.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, select

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.errors import Conflict, NotFound
from deputy.schemas.flow_run_input import FlowRunInputCreate, FlowRunInputFilterBody

if TYPE_CHECKING:
    from deputy.db.connection import Connection

INPUT_NOT_FOUND = "Flow run input not found"
_input = t.flow_run_input.c


async def create_flow_run_input(
    conn: Connection, flow_run_id: uuid.UUID, body: FlowRunInputCreate, *, now: dt.datetime
) -> None:
    """Store the input; 409 for a key the run already has, 404 for an unknown run."""
    await store_flow_run_input(conn, flow_run_id, body.key, body.value, sender=body.sender, now=now)


async def store_flow_run_input(
    conn: Connection,
    flow_run_id: uuid.UUID,
    key: str,
    value: str,
    *,
    sender: str | None = None,
    now: dt.datetime,
) -> None:
    run_exists = select(exists().where(t.flow_run.c.id == flow_run_id))
    if not (await conn.execute(run_exists)).scalar_one():
        raise NotFound("Flow run not found")
    statement = (
        insert_on_conflict(conn.dialect.name, t.flow_run_input)
        .values(
            id=uuid.uuid4(),
            created=now,
            updated=now,
            flow_run_id=flow_run_id,
            key=key,
            value=value,
            sender=sender,
        )
        .on_conflict_do_nothing(index_elements=["flow_run_id", "key"])
        .returning(_input.id)
    )
    if (await conn.execute(statement)).first() is None:
        raise Conflict("A flow run input with this key already exists.")


async def filter_flow_run_input(
    conn: Connection, flow_run_id: uuid.UUID, body: FlowRunInputFilterBody
) -> list[Any]:
    """The run's oldest inputs whose key starts with ``prefix`` (``%`` and ``_`` in it are
    LIKE wildcards, as in Prefect), leaving out ``exclude_keys``."""
    query = (
        select(t.flow_run_input)
        .where(
            _input.flow_run_id == flow_run_id,
            _input.key.like(body.prefix + "%"),
            _input.key.not_in(body.exclude_keys),
        )
        .order_by(_input.created, _input.id)
        .limit(max(body.limit, 0))
    )
    return list((await conn.execute(query)).all())


async def read_flow_run_input(conn: Connection, flow_run_id: uuid.UUID, key: str) -> str:
    value = await find_flow_run_input(conn, flow_run_id, key)
    if value is None:
        raise NotFound(INPUT_NOT_FOUND)
    return value


async def find_flow_run_input(conn: Connection, flow_run_id: uuid.UUID, key: str) -> str | None:
    query = select(_input.value).where(_input.flow_run_id == flow_run_id, _input.key == key)
    value: str | None = (await conn.execute(query)).scalar_one_or_none()
    return value


async def delete_flow_run_input(conn: Connection, flow_run_id: uuid.UUID, key: str) -> None:
    result = await conn.execute(
        delete(t.flow_run_input).where(_input.flow_run_id == flow_run_id, _input.key == key)
    )
    if result.rowcount == 0:
        raise NotFound(INPUT_NOT_FOUND)
