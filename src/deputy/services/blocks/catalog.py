"""Registering Prefect's block catalog (:mod:`deputy.catalog`) as a fresh Prefect server does
at start, and ``install_system_block_types``.

Prefect's order and rules: its protected types first (created or overwritten, marked
protected), then the SDK's registry one block at a time (a type already there gets the new
URLs, description and code example; its name and protection stay), then the collections'
types and only then their schemas (they nest each other's blocks). A schema is created unless
its checksum and version are stored, by the same function as ``POST /block_schemas/``. An
entry that fails is logged and skipped inside its own savepoint, as Prefect logs and goes on.

Registration is one step per catalog: the catalog's digest is kept in the ``configuration``
table, and a start whose catalog has the same digest reads one row and does nothing. Replicas
starting together are serialized on that row (inserted ``ON CONFLICT DO NOTHING``, then locked
``FOR UPDATE`` on PostgreSQL; SQLite has one writer): the first registers, the others find its
digest. Every write is an upsert or an insert decided by a unique constraint, so clients
registering the same blocks meanwhile do no harm either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select, update

from deputy.catalog.blocks import BlockCatalog, CatalogEntry, CatalogError
from deputy.catalog.cache import CatalogSource
from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict, insert_unless_exists, is_postgres
from deputy.db.engine import Database
from deputy.errors import DeputyError
from deputy.schemas.blocks import DEFAULT_BLOCK_SCHEMA_VERSION, BlockSchemaCreate, BlockTypeCreate
from deputy.services.blocks.schemas import create_block_schema
from deputy.services.blocks.types import new_block_type_values
from deputy.services.common import Clock
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

logger = logging.getLogger("deputy.catalog")

#: The ``configuration`` row that records the registered catalog.
CATALOG_KEY = "block-catalog"
#: Pauses before the registration is tried again after a failure (a replica's deadlock, a
#: database briefly away); a catalog file that cannot be read is not tried again.
RETRY_DELAYS_SECONDS = (2.0, 10.0)
#: The server finishes starting and answers its first requests before the catalog work
#: begins: on a first start it runs the generator, seconds of CPU beside the server.
START_DELAY_SECONDS = 1.0

_c = t.configuration.c
_TYPE_UPDATES = ("logo_url", "documentation_url", "description", "code_example")
T = TypeVar("T")


# --- at start ------------------------------------------------------------------------------


def start(source: CatalogSource, database: Database, clock: Clock) -> asyncio.Task[None]:
    """Register the catalog in the background: the server answers meanwhile."""
    return asyncio.create_task(
        register_at_start(source, database, clock), name="deputy: block catalog registration"
    )


async def stop(task: asyncio.Task[None], source: CatalogSource) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await source.close()


async def register_at_start(
    source: CatalogSource,
    database: Database,
    clock: Clock,
    *,
    delay_seconds: float = START_DELAY_SECONDS,
) -> None:
    """Find, generate if needed, and register the block catalog; errors are logged."""
    for delay in (delay_seconds, *RETRY_DELAYS_SECONDS):
        await asyncio.sleep(delay)
        try:
            await _register_once(source, database, clock)
            return
        except asyncio.CancelledError:
            raise
        except CatalogError as error:
            logger.error("Prefect's block catalog is not registered: %s", error)
            return
        except Exception:
            logger.exception("registering Prefect's block catalog failed")
    logger.error("Prefect's block catalog is not registered (gave up)")


async def _register_once(source: CatalogSource, database: Database, clock: Clock) -> None:
    started = time.perf_counter()
    files = await source.block_catalog()
    if files is None:
        if source.block_catalog_enabled:
            logger.info("no Prefect distribution (the ui extra): no block catalog registered")
        return
    digest = files.digest
    async with database.read() as conn:
        if await registered_digest(conn) == digest:
            return
    catalog = files.parse()
    async with database.write() as conn:
        registered = await register_block_catalog(conn, catalog, now=clock())
    if registered:
        logger.info(
            "registered Prefect %s's block catalog (%d types) in %.2f s",
            catalog.prefect_version,
            len(catalog.slugs),
            time.perf_counter() - started,
        )


# --- the registration ----------------------------------------------------------------------


async def registered_digest(conn: Connection) -> str | None:
    """The digest of the catalog this database holds (one query)."""
    value = (await conn.execute(select(_c.value).where(_c.key == CATALOG_KEY))).scalar()
    digest = value.get("digest") if isinstance(value, dict) else None
    return digest if isinstance(digest, str) else None


async def register_block_catalog(
    conn: Connection, catalog: BlockCatalog, *, now: dt.datetime
) -> bool:
    """Register ``catalog`` unless this database holds it already; True when it registered."""
    await _claim(conn, now)
    if await _locked_digest(conn) == catalog.digest:
        return False  # another replica registered it meanwhile
    ticks = _Ticks(now)
    await install_system_block_types(conn, catalog, now=now, ticks=ticks)
    for entry in catalog.registry:
        await _guarded(conn, entry.slug, partial(_register_class, conn, entry, ticks))
    type_ids: dict[str, uuid.UUID] = {}
    for entry in catalog.collections:
        step = partial(_put_type, conn, entry, protected=False, now=ticks())
        type_id = await _guarded(conn, entry.slug, step)
        if type_id is not None:
            type_ids[entry.slug] = type_id
    for entry in catalog.collections:
        if entry.slug in type_ids:
            step_schema = partial(_put_schema, conn, entry, type_ids[entry.slug], ticks())
            await _guarded(conn, entry.slug, step_schema)
    value = {"digest": catalog.digest, "prefect_version": catalog.prefect_version}
    await conn.execute(
        update(t.configuration).where(_c.key == CATALOG_KEY).values(value=value, updated=now)
    )
    return True


async def install_system_block_types(
    conn: Connection,
    catalog: BlockCatalog,
    *,
    now: dt.datetime,
    ticks: Callable[[], dt.datetime] | None = None,
) -> None:
    """Prefect's protected types: each created, or overwritten and marked protected, with its
    schema (``POST /block_types/install_system_block_types``, and the first registration
    step)."""
    ticks = ticks or _Ticks(now)
    for entry in catalog.system:
        type_id = await _put_type(conn, entry, protected=True, now=ticks())
        await _put_schema(conn, entry, type_id, ticks())


async def _register_class(conn: Connection, entry: CatalogEntry, ticks: _Ticks) -> None:
    type_id = await _put_type(conn, entry, protected=False, now=ticks())
    await _put_schema(conn, entry, type_id, ticks())


async def _put_type(
    conn: Connection, entry: CatalogEntry, *, protected: bool, now: dt.datetime
) -> uuid.UUID:
    """Create the type (as ``POST /block_types/`` stores it), or update the one with its slug:
    a protected type is overwritten whole (and protected), another gets the new URLs,
    description and code example as given (Prefect escapes them on create only)."""
    body = BlockTypeCreate.model_validate(entry.block_type)
    values = {**new_block_type_values(body), "is_protected": protected}
    if protected:
        changes = dict(values)
    else:
        changes = {key: getattr(body, key) for key in _TYPE_UPDATES}
        for key in ("logo_url", "documentation_url"):
            if changes[key] is not None:
                changes[key] = changes[key].strip()
    new_id = uuid.uuid4()
    statement = (
        insert_on_conflict(conn.dialect.name, t.block_type)
        .values(id=new_id, created=now, updated=now, **values)
        .on_conflict_do_update(index_elements=["slug"], set_={**changes, "updated": now})
        .returning(t.block_type.c.id)
    )
    type_id: uuid.UUID = (await conn.execute(statement)).scalar_one()
    if type_id == new_id:
        row = SimpleNamespace(id=new_id, created=now, updated=now, **values)
        lifecycle_events.block_type_changed("created", row, now=now)
    return type_id


async def _put_schema(
    conn: Connection, entry: CatalogEntry, type_id: uuid.UUID, now: dt.datetime
) -> None:
    schema = entry.block_schema
    body = BlockSchemaCreate(
        fields=schema["fields"],
        block_type_id=type_id,
        capabilities=schema.get("capabilities") or [],
        version=schema.get("version") or DEFAULT_BLOCK_SCHEMA_VERSION,
    )
    await create_block_schema(conn, body, now=now)


async def _guarded(conn: Connection, slug: str, step: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``step`` in a savepoint; a failure is logged and undone, and the rest goes on."""
    try:
        async with conn.begin_nested():
            done = await step()
    except (DeputyError, ValueError) as error:
        logger.warning("block catalog: %r skipped: %s", slug, error)
        return None
    # On SQLite the statements run on the event loop: requests get their turn between entries.
    await asyncio.sleep(0)
    return done


async def _claim(conn: Connection, now: dt.datetime) -> None:
    """Make sure the catalog's row exists, so that replicas can queue on it."""
    statement = insert_unless_exists(conn.dialect.name, t.configuration, ("key",))
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        "key": CATALOG_KEY,
        "value": {},
    }
    await conn.execute(statement, values)


async def _locked_digest(conn: Connection) -> str | None:
    query = select(_c.value).where(_c.key == CATALOG_KEY)
    if is_postgres(conn):
        query = query.with_for_update()
    value = (await conn.execute(query)).scalar()
    digest = value.get("digest") if isinstance(value, dict) else None
    return digest if isinstance(digest, str) else None


class _Ticks:
    """Successive creation times a millisecond apart, so rows keep Prefect's order."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.count = 0

    def __call__(self) -> dt.datetime:
        self.count += 1
        return self.now + dt.timedelta(milliseconds=self.count - 1)
