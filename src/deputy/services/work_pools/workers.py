"""Workers: heartbeats, reads and deletes, and the loops' OFFLINE / NOT_READY sweeps.

Rules kept from Prefect 3.9.1:

* A heartbeat upserts ``worker(work_pool_id, name)`` as ONLINE (``updated`` is left alone,
  as Prefect's upsert leaves it) and turns a NOT_READY pool READY.
* A worker is OFFLINE once its last heartbeat is older than 3 times its heartbeat interval
  (30 s when it sent none); a READY pool with no ONLINE worker left turns NOT_READY. Both are
  done by :func:`mark_offline_workers`, which a service loop calls (Prefect's foreman).
* Queues and deployments not polled for 60 s turn NOT_READY again
  (:func:`mark_unpolled_not_ready`, also for the service loop; polls are in ``polls.py``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    true,
    update,
)

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict, is_postgres
from deputy.errors import NotFound
from deputy.schemas.filters import Operator
from deputy.schemas.work_pools import WorkPoolStatus, WorkQueueStatus
from deputy.schemas.workers import DeploymentStatus, WorkerFilter, WorkerStatus
from deputy.services.work_pools.pools import pool_not_found
from deputy.services.work_pools.queues import LAST_POLLED_TIMEOUT

if TYPE_CHECKING:
    from deputy.db.connection import Connection

WORKER_NOT_FOUND = "Worker not found."

#: Heartbeats a worker may miss before it is OFFLINE (Prefect's foreman default).
INACTIVITY_HEARTBEAT_MULTIPLE = 3
#: The heartbeat interval assumed for a worker that did not send one.
FALLBACK_HEARTBEAT_INTERVAL_SECONDS = 30

_pool = t.work_pool.c
_queue = t.work_queue.c
_deployment = t.deployment.c
_worker = t.worker.c

_READ_POOL = select(_pool.id, _pool.status).where(_pool.name == bindparam("name"))


async def _pool_by_name(conn: Connection, name: str) -> Row[Any]:
    row = (await conn.execute(_READ_POOL, {"name": name})).first()
    if row is None:
        raise pool_not_found(name)
    return row


def _pool_status_values(status: WorkPoolStatus, timestamp: dt.datetime) -> dict[str, Any]:
    return {
        "status": status.value,
        "last_status_event_id": uuid.uuid4(),
        "last_transitioned_status_at": timestamp,
        "updated": timestamp,
    }


async def worker_heartbeat(
    conn: Connection,
    pool_name: str,
    name: str,
    heartbeat_interval_seconds: int | None,
    *,
    now: dt.datetime,
) -> None:
    """Upsert the worker as ONLINE; a NOT_READY pool turns READY. Two statements, three when
    the pool changes status."""
    pool = await _pool_by_name(conn, pool_name)
    changing: dict[str, Any] = {
        "last_heartbeat_time": now,
        "status": WorkerStatus.ONLINE.value,
    }
    if heartbeat_interval_seconds is not None:
        changing["heartbeat_interval_seconds"] = heartbeat_interval_seconds
    insert = insert_on_conflict(conn.dialect.name, t.worker).values(
        id=uuid.uuid4(),
        created=now,
        updated=now,
        name=name,
        work_pool_id=pool.id,
        **changing,
    )
    await conn.execute(
        insert.on_conflict_do_update(index_elements=["work_pool_id", "name"], set_=changing)
    )
    if pool.status == WorkPoolStatus.NOT_READY:
        await conn.execute(
            update(t.work_pool)
            .where(_pool.id == pool.id, _pool.status == WorkPoolStatus.NOT_READY.value)
            .values(**_pool_status_values(WorkPoolStatus.READY, now))
        )


def worker_clause(flt: WorkerFilter) -> ColumnElement[bool]:
    """Prefect's ``WorkerFilter``: each child's conditions ANDed, children joined by
    ``operator``; an empty filter matches everything."""
    children: list[ColumnElement[bool]] = []
    if flt.last_heartbeat_time is not None:
        sub = []
        if flt.last_heartbeat_time.before_ is not None:
            sub.append(_worker.last_heartbeat_time <= flt.last_heartbeat_time.before_)
        if flt.last_heartbeat_time.after_ is not None:
            sub.append(_worker.last_heartbeat_time >= flt.last_heartbeat_time.after_)
        children.append(and_(*sub) if sub else true())
    if flt.status is not None:
        sub = []
        if flt.status.any_ is not None:
            sub.append(_worker.status.in_([s.value for s in flt.status.any_]))
        if flt.status.not_any_:
            sub.append(_worker.status.not_in([s.value for s in flt.status.not_any_]))
        children.append(and_(*sub) if sub else true())
    if not children:
        return true()
    return and_(*children) if flt.operator == Operator.and_ else or_(*children)


async def read_workers(
    conn: Connection,
    pool_name: str,
    flt: WorkerFilter | None,
    *,
    offset: int,
    limit: int,
) -> list[Row[Any]]:
    """A pool's workers, most recent heartbeat first; 404 for an unknown pool."""
    pool = await _pool_by_name(conn, pool_name)
    query = (
        select(t.worker)
        .where(_worker.work_pool_id == pool.id)
        .order_by(_worker.last_heartbeat_time.desc(), _worker.name)
        .offset(offset)
        .limit(limit)
    )
    if flt is not None:
        query = query.where(worker_clause(flt))
    return list((await conn.execute(query)).all())


async def delete_worker(conn: Connection, pool_name: str, name: str) -> None:
    """Delete a pool's worker; 404 for an unknown pool, then for an unknown worker. The pool's
    status follows at the next :func:`mark_offline_workers`, as in Prefect."""
    pool = await _pool_by_name(conn, pool_name)
    result = await conn.execute(
        delete(t.worker).where(_worker.work_pool_id == pool.id, _worker.name == name)
    )
    if result.rowcount == 0:
        raise NotFound(WORKER_NOT_FOUND)


# --- the service loop's steps -------------------------------------------------------------


def _seconds_since_heartbeat(conn: Connection, moment: dt.datetime) -> ColumnElement[Any]:
    """Seconds from a worker's last heartbeat to ``moment``, computed by the database."""
    at = bindparam("moment", moment, type_=_worker.last_heartbeat_time.type)
    if is_postgres(conn):
        return extract("epoch", at - _worker.last_heartbeat_time)
    # SQLite keeps timestamps as UTC text that julianday() reads; days to seconds.
    return (func.julianday(at) - func.julianday(_worker.last_heartbeat_time)) * 86400.0


async def mark_offline_workers(conn: Connection, now: dt.datetime) -> int:
    """Turn ONLINE workers OFFLINE when their last heartbeat is older than
    ``INACTIVITY_HEARTBEAT_MULTIPLE`` times their interval (one UPDATE); then turn READY pools
    left without an ONLINE worker NOT_READY (one more UPDATE). Returns the workers marked.
    """
    allowed = func.coalesce(
        _worker.heartbeat_interval_seconds, literal(FALLBACK_HEARTBEAT_INTERVAL_SECONDS, Integer)
    ) * literal(INACTIVITY_HEARTBEAT_MULTIPLE, Integer)
    result = await conn.execute(
        update(t.worker)
        .where(
            _worker.status == WorkerStatus.ONLINE.value,
            _seconds_since_heartbeat(conn, now) > allowed,
        )
        .values(status=WorkerStatus.OFFLINE.value)
    )
    online = exists().where(
        _worker.work_pool_id == _pool.id, _worker.status == WorkerStatus.ONLINE.value
    )
    await conn.execute(
        update(t.work_pool)
        .where(_pool.status == WorkPoolStatus.READY.value, ~online)
        .values(**_pool_status_values(WorkPoolStatus.NOT_READY, now))
    )
    return int(result.rowcount or 0)


async def mark_unpolled_not_ready(conn: Connection, now: dt.datetime) -> int:
    """Turn READY queues not polled for ``LAST_POLLED_TIMEOUT`` NOT_READY, and READY
    deployments whose own and whose queue's last poll are that old. Two UPDATEs; returns
    the rows changed."""
    threshold = now - LAST_POLLED_TIMEOUT
    queues = await conn.execute(
        update(t.work_queue)
        .where(
            _queue.status == WorkQueueStatus.READY.value,
            _queue.last_polled.is_not(None),
            _queue.last_polled < threshold,
        )
        .values(status=WorkQueueStatus.NOT_READY.value, updated=now)
    )
    queue_polled_recently = exists().where(
        _queue.id == _deployment.work_queue_id,
        _queue.last_polled.is_not(None),
        _queue.last_polled >= threshold,
    )
    deployments = await conn.execute(
        update(t.deployment)
        .where(
            _deployment.status == DeploymentStatus.READY.value,
            _deployment.last_polled.is_not(None),
            _deployment.last_polled < threshold,
            ~queue_polled_recently,
        )
        .values(status=DeploymentStatus.NOT_READY.value)
    )
    return int(queues.rowcount or 0) + int(deployments.rowcount or 0)
