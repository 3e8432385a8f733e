"""Artifacts: every version a flow or task reports, and each key's newest version.

``artifact_collection`` holds one row per key, a copy of its newest version, so "the latest
artifacts" is one indexed read. It is written in the transaction that writes the version:
an upsert on the key's unique constraint when a version is created, and under the row's lock
when a version is deleted, so concurrent writers on one key leave it pointing at a version
that exists.
"""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, func, insert, select, update

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.objects import artifact_clause
from deputy.db.filters.related import artifact_where
from deputy.errors import NotFound
from deputy.schemas.artifacts import VERSION_FIELDS, ArtifactCreate, ArtifactUpdate
from deputy.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactFilter,
    ArtifactSort,
    TaskRunRelatedFilters,
)
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

ARTIFACT_NOT_FOUND = "Artifact not found."

_a = t.artifact.c
_latest = t.artifact_collection.c


async def create_artifact(conn: Connection, body: ArtifactCreate, *, now: dt.datetime) -> Any:
    """Insert the version; with a key, it becomes the key's newest."""
    values = {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        **body.model_dump(),
    }
    if body.key is not None:
        await _make_latest(conn, values, now=now)
    await conn.execute(insert(t.artifact).values(**values))
    return SimpleNamespace(**values)


async def _make_latest(conn: Connection, version: dict[str, Any], *, now: dt.datetime) -> None:
    """Point the key's row at ``version`` (created with the key's first version)."""
    copied = {name: version[name] for name in VERSION_FIELDS}
    statement = insert_on_conflict(conn.dialect.name, t.artifact_collection).values(
        id=uuid.uuid4(),
        created=version["created"],
        updated=version["updated"],
        key=version["key"],
        latest_id=version["id"],
        **copied,
    )
    upserted = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"latest_id": version["id"], "updated": version["updated"], **copied},
    ).returning(*t.artifact_collection.c)
    row = (await conn.execute(upserted)).one()
    # A new key's row was created with this version; an existing one keeps its creation time.
    lifecycle_events.artifact_key_changed(
        "created" if row.created == version["created"] else "updated", row, now=now
    )


async def read_artifact(conn: Connection, artifact_id: uuid.UUID) -> Any:
    row = (await conn.execute(select(t.artifact).where(_a.id == artifact_id))).first()
    if row is None:
        raise NotFound(ARTIFACT_NOT_FOUND)
    return row


async def read_latest_artifact(conn: Connection, key: str) -> Any:
    """The key's ``artifact_collection`` row (Prefect answers its id, not the version's)."""
    row = (await conn.execute(select(t.artifact_collection).where(_latest.key == key))).first()
    if row is None:
        raise NotFound(ARTIFACT_NOT_FOUND)
    return row


async def filter_artifacts(
    conn: Connection,
    table: Table,
    own: ArtifactFilter | ArtifactCollectionFilter | None,
    related: TaskRunRelatedFilters,
    *,
    sort: ArtifactSort,
    offset: int,
    limit: int,
) -> list[Any]:
    """One page of ``artifact`` or ``artifact_collection`` rows; ties on the sort key are
    broken by id, so pages never overlap."""
    query = (
        select(table)
        .where(*_where(table, own, related))
        .order_by(_sort_key(table, sort), table.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def count_artifacts(
    conn: Connection,
    table: Table,
    own: ArtifactFilter | ArtifactCollectionFilter | None,
    related: TaskRunRelatedFilters,
) -> int:
    query = select(func.count()).select_from(table).where(*_where(table, own, related))
    return int((await conn.execute(query)).scalar_one())


async def update_artifact(
    conn: Connection, artifact_id: uuid.UUID, body: ArtifactUpdate, *, now: dt.datetime
) -> None:
    """Write the keys sent (``updated`` moves even for ``{}``), to the version and, when it
    is its key's newest, to the key's row."""
    values = {**body.model_dump(exclude_unset=True), "updated": now}
    result = await conn.execute(update(t.artifact).where(_a.id == artifact_id).values(**values))
    if result.rowcount == 0:
        raise NotFound(ARTIFACT_NOT_FOUND)
    await conn.execute(
        update(t.artifact_collection).where(_latest.latest_id == artifact_id).values(**values)
    )


async def delete_artifact(conn: Connection, artifact_id: uuid.UUID, *, now: dt.datetime) -> None:
    """Delete the version; when it was its key's newest, the next newest takes its place in
    the key's row, or the row goes with the key's last version."""
    version = await read_artifact(conn, artifact_id)
    if version.key is not None:
        latest = (
            await conn.execute(
                select(t.artifact_collection).where(_latest.key == version.key).with_for_update()
            )
        ).first()
        if latest is not None and latest.latest_id == artifact_id:
            await _replace_latest(conn, latest, artifact_id, now=now)
    await conn.execute(delete(t.artifact).where(_a.id == artifact_id))


async def _replace_latest(
    conn: Connection, latest: Any, leaving: uuid.UUID, *, now: dt.datetime
) -> None:
    key = latest.key
    newest_other = (
        await conn.execute(
            select(t.artifact)
            .where(_a.key == key, _a.id != leaving)
            .order_by(_a.created.desc(), _a.id.desc())
            .limit(1)
        )
    ).first()
    if newest_other is None:
        await conn.execute(delete(t.artifact_collection).where(_latest.key == key))
        lifecycle_events.artifact_key_changed("deleted", latest, now=now)
        return
    replaced = (
        update(t.artifact_collection)
        .where(_latest.key == key)
        .values(
            latest_id=newest_other.id,
            created=newest_other.created,
            updated=newest_other.updated,
            **{name: getattr(newest_other, name) for name in VERSION_FIELDS},
        )
        .returning(*t.artifact_collection.c)
    )
    lifecycle_events.artifact_key_changed("updated", (await conn.execute(replaced)).one(), now=now)


def _where(
    table: Table,
    own: ArtifactFilter | ArtifactCollectionFilter | None,
    related: TaskRunRelatedFilters,
) -> list[Any]:
    where = artifact_where(table, related)
    if own is not None:
        where.append(artifact_clause(table, own))
    return where


def _sort_key(table: Table, sort: ArtifactSort) -> Any:
    c = table.c
    return {
        ArtifactSort.CREATED_DESC: c.created.desc(),
        ArtifactSort.UPDATED_DESC: c.updated.desc(),
        ArtifactSort.ID_DESC: c.id.desc(),
        ArtifactSort.KEY_DESC: c.key.desc(),
        ArtifactSort.KEY_ASC: c.key.asc(),
    }[sort]
