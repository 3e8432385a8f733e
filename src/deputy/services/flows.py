"""Flows: get-or-create by name, reads, tag updates, cascading deletes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.related import flow_where
from deputy.errors import NotFound
from deputy.schemas.filters import FlowRelatedFilters, FlowSort
from deputy.schemas.flows import FlowCreate, FlowUpdate
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

FLOW_NOT_FOUND = "Flow not found"

_SORTS = {
    FlowSort.CREATED_DESC: [t.flow.c.created.desc()],
    FlowSort.UPDATED_DESC: [t.flow.c.updated.desc()],
    FlowSort.NAME_ASC: [t.flow.c.name.asc()],
    FlowSort.NAME_DESC: [t.flow.c.name.desc()],
}


async def create_flow(conn: Connection, body: FlowCreate, *, now: dt.datetime) -> tuple[Any, bool]:
    """The flow with this name, created when missing; ``True`` when created now."""
    insert = (
        insert_on_conflict(conn.dialect.name, t.flow)
        .values(
            id=uuid.uuid4(),
            created=now,
            updated=now,
            name=body.name,
            tags=body.tags,
            labels=body.labels,
        )
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(*t.flow.c)
    )
    row = (await conn.execute(insert)).first()
    if row is not None:
        lifecycle_events.flow_changed("created", row, now=now)
        return row, True
    existing = (await conn.execute(select(t.flow).where(t.flow.c.name == body.name))).one()
    return existing, False


async def read_flow(conn: Connection, flow_id: uuid.UUID) -> Any:
    row = (await conn.execute(select(t.flow).where(t.flow.c.id == flow_id))).first()
    if row is None:
        raise NotFound(FLOW_NOT_FOUND)
    return row


async def read_flow_by_name(conn: Connection, name: str) -> Any:
    row = (await conn.execute(select(t.flow).where(t.flow.c.name == name))).first()
    if row is None:
        raise NotFound(FLOW_NOT_FOUND)
    return row


async def update_flow(
    conn: Connection, flow_id: uuid.UUID, body: FlowUpdate, *, now: dt.datetime
) -> None:
    values = body.model_dump(exclude_unset=True)
    statement = update(t.flow).where(t.flow.c.id == flow_id).values(**values, updated=now)
    row = (await conn.execute(statement.returning(*t.flow.c))).first()
    if row is None:
        raise NotFound(FLOW_NOT_FOUND)
    lifecycle_events.flow_changed("updated", row, now=now)


async def delete_flow(conn: Connection, flow_id: uuid.UUID, *, now: dt.datetime) -> None:
    """Delete the flow; its deployments and runs go with it (foreign keys cascade)."""
    statement = delete(t.flow).where(t.flow.c.id == flow_id).returning(*t.flow.c)
    row = (await conn.execute(statement)).first()
    if row is None:
        raise NotFound(FLOW_NOT_FOUND)
    lifecycle_events.flow_changed("deleted", row, now=now)


async def filter_flows(
    conn: Connection,
    filters: FlowRelatedFilters,
    *,
    sort: FlowSort,
    offset: int,
    limit: int,
) -> list[Any]:
    query = (
        select(t.flow)
        .where(*flow_where(filters))
        .order_by(*_SORTS[sort], t.flow.c.id)
        .offset(offset)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def count_flows(conn: Connection, filters: FlowRelatedFilters) -> int:
    query = select(func.count()).select_from(t.flow).where(*flow_where(filters))
    return int((await conn.execute(query)).scalar_one())
