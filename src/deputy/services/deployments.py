"""Deployments: upsert on (flow_id, name), reads with queue/pool/limit joined, updates, deletes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, select, update

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.related import deployment_where
from deputy.errors import Conflict, NotFound, integrity_conflict
from deputy.parameters.hydration import DEPLOYMENT_PREFIX
from deputy.parameters.job_variables import (
    check_deployment_update_job_variables,
    validate_job_variables_for_deployment,
)
from deputy.parameters.schema import (
    ensure_schema_present,
    validate_deployment_update_parameters,
)
from deputy.schemas.core import StateType
from deputy.schemas.deployments import DeploymentCreate, DeploymentUpdate
from deputy.schemas.filters import DeploymentSort, RelatedFilters
from deputy.services import scheduler, schedules
from deputy.services.parameters import hydrate
from deputy.services.work_pools import pools as work_pools
from deputy.services.work_pools import queues as work_queues

if TYPE_CHECKING:
    from deputy.db.connection import Connection

DEPLOYMENT_NOT_FOUND = "Deployment not found"
AWAITING_CONCURRENCY_SLOT = "AwaitingConcurrencySlot"
DEFAULT_AGENT_POOL = "default-agent-pool"

_SORTS = {
    DeploymentSort.CREATED_DESC: [t.deployment.c.created.desc()],
    DeploymentSort.UPDATED_DESC: [t.deployment.c.updated.desc()],
    DeploymentSort.NAME_ASC: [t.deployment.c.name.asc()],
    DeploymentSort.NAME_DESC: [t.deployment.c.name.desc()],
}

_limit = t.concurrency_limit_v2.c


def deployment_query() -> Select[Any]:
    """A deployment with its queue name, pool name and concurrency limit, in one statement."""
    return (
        select(
            t.deployment,
            t.work_queue.c.name.label("queue_name"),
            t.work_pool.c.name.label("pool_name"),
            _limit.id.label("gcl_id"),
            _limit.created.label("gcl_created"),
            _limit.updated.label("gcl_updated"),
            _limit.active.label("gcl_active"),
            _limit.name.label("gcl_name"),
            _limit.limit.label("gcl_limit"),
            _limit.active_slots.label("gcl_active_slots"),
            _limit.slot_decay_per_second.label("gcl_slot_decay_per_second"),
        )
        .select_from(t.deployment)
        .outerjoin(t.work_queue, t.work_queue.c.id == t.deployment.c.work_queue_id)
        .outerjoin(t.work_pool, t.work_pool.c.id == t.work_queue.c.work_pool_id)
        .outerjoin(t.concurrency_limit_v2, _limit.id == t.deployment.c.concurrency_limit_id)
    )


async def read_deployment(
    conn: Connection, deployment_id: uuid.UUID, *, not_found: str = DEPLOYMENT_NOT_FOUND
) -> Any:
    row = (await conn.execute(deployment_query().where(t.deployment.c.id == deployment_id))).first()
    if row is None:
        raise NotFound(not_found)
    return row


async def read_deployment_by_name(conn: Connection, flow_name: str, name: str) -> Any:
    query = (
        deployment_query()
        .join(t.flow, t.flow.c.id == t.deployment.c.flow_id)
        .where(t.flow.c.name == flow_name, t.deployment.c.name == name)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(DEPLOYMENT_NOT_FOUND)
    return row


async def _resolve_work_queue(
    conn: Connection, pool_name: str | None, queue_name: str | None, *, now: dt.datetime
) -> Any | None:
    """The queue a deployment runs on, created when named but missing (as Prefect does)."""
    if pool_name:
        pool = await work_pools.read_work_pool_by_name(conn, pool_name)
        if queue_name:
            return await work_queues.get_or_create_work_queue(conn, pool.id, queue_name, now=now)
        return (
            await conn.execute(
                select(t.work_queue).where(t.work_queue.c.id == pool.default_queue_id)
            )
        ).one()
    if queue_name:
        pool = await work_pools.get_or_create_default_agent_pool(conn, now=now)
        return await work_queues.get_or_create_work_queue(conn, pool.id, queue_name, now=now)
    return None


async def _validate_job_variables(
    conn: Connection, pool_name: str | None, job_variables: dict[str, Any] | None
) -> None:
    """New deployments' job variables are type-checked against the pool's template."""
    if not pool_name or pool_name == DEFAULT_AGENT_POOL or not job_variables:
        return
    pool = await work_pools.read_work_pool_by_name(conn, pool_name)
    validate_job_variables_for_deployment(pool.base_job_template, job_variables)


async def _read_flow_labels(conn: Connection, flow_id: uuid.UUID) -> dict[str, Any]:
    row = (await conn.execute(select(t.flow.c.labels).where(t.flow.c.id == flow_id))).first()
    if row is None:
        raise integrity_conflict()  # Prefect answers an unknown flow_id with the FK conflict
    return dict(row.labels or {})


async def _check_block(conn: Connection, block_id: uuid.UUID | None, kind: str) -> None:
    if block_id is None:
        return
    found = (
        await conn.execute(select(t.block_document.c.id).where(t.block_document.c.id == block_id))
    ).first()
    if found is None:
        raise Conflict(
            f"Error creating deployment. Could not find {kind} block with id: {block_id}. This "
            "usually occurs when applying a deployment specification that was built against a "
            "different Prefect database / workspace."
        )


async def _check_global_limit(conn: Connection, limit_id: uuid.UUID | None) -> None:
    if limit_id is None:
        return
    found = (await conn.execute(select(_limit.id).where(_limit.id == limit_id))).first()
    if found is None:
        raise NotFound("Concurrency limit not found")


async def _set_concurrency_limit(
    conn: Connection, deployment_id: uuid.UUID, limit: int | None, *, now: dt.datetime
) -> None:
    """A deployment's limit lives in a ``concurrency_limit_v2`` row named ``deployment:<id>``."""
    name = f"deployment:{deployment_id}"
    if limit is None:
        await conn.execute(
            update(t.deployment)
            .where(t.deployment.c.id == deployment_id)
            .values(concurrency_limit_id=None)
        )
        await conn.execute(delete(t.concurrency_limit_v2).where(_limit.name == name))
        return
    upsert = (
        insert_on_conflict(conn.dialect.name, t.concurrency_limit_v2)
        .values(
            id=uuid.uuid4(),
            created=now,
            updated=now,
            name=name,
            limit=limit,
            active=True,
            active_slots=0,
            denied_slots=0,
            slot_decay_per_second=0.0,
            avg_slot_occupancy_seconds=2.0,
        )
        .on_conflict_do_update(index_elements=["name"], set_={"limit": limit, "updated": now})
        .returning(_limit.id)
    )
    limit_id = (await conn.execute(upsert)).scalar_one()
    await conn.execute(
        update(t.deployment)
        .where(t.deployment.c.id == deployment_id)
        .values(concurrency_limit_id=limit_id)
    )


async def create_deployment(
    conn: Connection,
    body: DeploymentCreate,
    created_by: dict[str, Any] | None,
    horizon: scheduler.Horizon,
    *,
    now: dt.datetime,
) -> tuple[Any, bool]:
    """Create the deployment, or update the one with the same flow and name; True if created.
    Its schedules become the body's (none if it sends none, as in Prefect) and its future
    runs are planned in the same transaction."""
    fields = body.model_fields_set
    await _validate_job_variables(conn, body.work_pool_name, body.job_variables)
    queue = await _resolve_work_queue(conn, body.work_pool_name, body.work_queue_name, now=now)
    await _check_global_limit(conn, body.global_concurrency_limit_id)
    await _check_block(conn, body.infrastructure_document_id, "infrastructure")
    await _check_block(conn, body.storage_document_id, "storage")
    labels = {
        **await _read_flow_labels(conn, body.flow_id),
        "prefect.flow.id": str(body.flow_id),
        **(body.labels or {}),
    }
    values: dict[str, Any] = {
        "name": body.name,
        "flow_id": body.flow_id,
        "version": body.version,
        "version_info": body.version_info.model_dump() if body.version_info else None,
        "description": body.description,
        "paused": body.paused,
        "concurrency_options": (
            body.concurrency_options.model_dump(mode="json") if body.concurrency_options else None
        ),
        "concurrency_limit_id": body.global_concurrency_limit_id,
        "enforce_parameter_schema": body.enforce_parameter_schema,
        "parameter_openapi_schema": body.parameter_openapi_schema,
        "parameters": body.parameters,
        "tags": body.tags,
        "labels": labels,
        # Not sent: []; sent as null: null (as Prefect stores it).
        "pull_steps": body.pull_steps if "pull_steps" in fields else [],
        "work_queue_name": queue.name if queue is not None else body.work_queue_name,
        "work_queue_id": queue.id if queue is not None else None,
        "path": body.path,
        "entrypoint": body.entrypoint,
        "storage_document_id": body.storage_document_id,
        "infrastructure_document_id": body.infrastructure_document_id,
        "job_variables": body.job_variables,
        "updated_by": created_by,
        "updated": now,
    }
    # An upsert changes the fields the body sent, plus what Prefect always rewrites: the
    # parameters (its validator marks them sent), the labels and the timestamp; and the queue
    # only when the body named a pool or a queue that resolved to one.
    always = {"parameters", "labels", "updated", "updated_by"}
    renamed = {"global_concurrency_limit_id": "concurrency_limit_id"}
    sent = {renamed.get(key, key) for key in fields}
    on_conflict = {key: value for key, value in values.items() if key in sent or key in always}
    on_conflict.pop("work_queue_id", None)
    if queue is not None:
        on_conflict["work_queue_id"] = queue.id
        on_conflict["work_queue_name"] = queue.name
    statement = (
        insert_on_conflict(conn.dialect.name, t.deployment)
        .values(id=uuid.uuid4(), created=now, created_by=created_by, **values)
        .on_conflict_do_update(index_elements=["flow_id", "name"], set_=on_conflict)
        .returning(t.deployment.c.id, t.deployment.c.created)
    )
    inserted = (await conn.execute(statement)).one()
    if "concurrency_limit" in fields:
        await _set_concurrency_limit(conn, inserted.id, body.concurrency_limit, now=now)
    await schedules.replace_schedules(conn, inserted.id, body.schedules, now=now)
    await scheduler.replan(conn, inserted.id, horizon, now=now)
    return await read_deployment(conn, inserted.id), inserted.created == now


async def update_deployment(
    conn: Connection,
    deployment_id: uuid.UUID,
    body: DeploymentUpdate,
    horizon: scheduler.Horizon,
    *,
    now: dt.datetime,
) -> None:
    """PATCH: only the fields sent change; parameters are re-validated when enforcing; the
    schedules change by Prefect's slug rules; future runs are re-planned in the same
    transaction."""
    existing = await read_deployment(conn, deployment_id, not_found="Deployment not found.")
    fields = body.model_fields_set
    values = _patch_values(body, fields)
    values.update(await _queue_values(conn, body, fields, now=now))
    if body.parameters is not None:
        values["parameters"] = await hydrate(conn, body.parameters, prefix=DEPLOYMENT_PREFIX)
    _check_parameters(body, existing, values.get("parameters", existing.parameters))
    await _check_global_limit(conn, body.global_concurrency_limit_id)
    if "parameters" in fields and body.parameters is None:
        raise integrity_conflict()  # Prefect writes NULL into a NOT NULL column: 409
    if "enforce_parameter_schema" in fields and body.enforce_parameter_schema is None:
        raise integrity_conflict()  # likewise
    values["updated"] = now
    await conn.execute(
        update(t.deployment).where(t.deployment.c.id == deployment_id).values(**values)
    )
    if "concurrency_limit" in fields:
        await _set_concurrency_limit(conn, deployment_id, body.concurrency_limit, now=now)
    await schedules.apply_deployment_schedules(
        conn, deployment_id, body.schedules if "schedules" in fields else None, now=now
    )
    await scheduler.replan(conn, deployment_id, horizon, now=now)


#: Fields a PATCH does not copy as sent: each is mapped, resolved or stored on its own.
_NOT_COPIED = frozenset(
    {
        "work_pool_name",
        "work_queue_name",
        "schedules",
        "concurrency_limit",
        "global_concurrency_limit_id",
        "version_info",
        "concurrency_options",
        "job_variables",
        "parameters",
    }
)


def _patch_values(body: DeploymentUpdate, fields: set[str]) -> dict[str, Any]:
    """The columns the fields sent set directly (the queue and the parameters are resolved
    and checked apart)."""
    values: dict[str, Any] = {key: getattr(body, key) for key in fields if key not in _NOT_COPIED}
    if "concurrency_options" in fields:
        values["concurrency_options"] = (
            body.concurrency_options.model_dump(mode="json") if body.concurrency_options else None
        )
    if "version_info" in fields:
        values["version_info"] = body.version_info.model_dump() if body.version_info else None
    if body.job_variables is not None:  # null leaves them unchanged, as in Prefect
        values["job_variables"] = body.job_variables
    if "work_queue_name" in fields:
        values["work_queue_name"] = body.work_queue_name  # the column keeps what was sent
    if "global_concurrency_limit_id" in fields:
        values["concurrency_limit_id"] = body.global_concurrency_limit_id
    return values


async def _queue_values(
    conn: Connection, body: DeploymentUpdate, fields: set[str], *, now: dt.datetime
) -> dict[str, Any]:
    """The queue a PATCH moves the deployment to. A named pool must exist and accept the
    job variables. Prefect's order: pool (+ queue), an explicit null pool (leaves the pool),
    queue alone (which lands in default-agent-pool, whatever pool the deployment was in)."""
    if body.work_pool_name:
        pool = await work_pools.read_work_pool_by_name(conn, body.work_pool_name)
        check_deployment_update_job_variables(pool.base_job_template, body.job_variables)
    leaves_pool = "work_pool_name" in fields and body.work_pool_name is None
    if body.work_pool_name or (body.work_queue_name and not leaves_pool):
        queue = await _resolve_work_queue(conn, body.work_pool_name, body.work_queue_name, now=now)
        if queue is None:
            return {}
        return {"work_queue_id": queue.id, "work_queue_name": queue.name}
    return {"work_queue_id": None} if leaves_pool else {}


def _check_parameters(body: DeploymentUpdate, existing: Any, parameters: Any) -> None:
    """When the schema is enforced (as the PATCH says, else as the deployment says), the
    parameters after the PATCH must match the schema after it."""
    enforce = (
        body.enforce_parameter_schema
        if body.enforce_parameter_schema is not None
        else existing.enforce_parameter_schema
    )
    if enforce:
        schema = ensure_schema_present(
            body.parameter_openapi_schema or existing.parameter_openapi_schema
        )
        validate_deployment_update_parameters(parameters, schema)


async def delete_deployment(conn: Connection, deployment_id: uuid.UUID) -> None:
    """Delete the deployment, its concurrency limit and its runs that are still waiting to
    start (Scheduled, never run, not waiting for a concurrency slot), as Prefect does; its
    other runs stay."""
    result = await conn.execute(
        delete(t.deployment)
        .where(t.deployment.c.id == deployment_id)
        .returning(t.deployment.c.concurrency_limit_id)
    )
    row = result.first()
    if row is None:
        raise NotFound(DEPLOYMENT_NOT_FOUND)
    await conn.execute(
        delete(t.concurrency_limit_v2).where(_limit.name == f"deployment:{deployment_id}")
    )
    run = t.flow_run.c
    await conn.execute(
        delete(t.flow_run).where(
            run.deployment_id == deployment_id,
            run.state_type == StateType.SCHEDULED.value,
            run.state_name != AWAITING_CONCURRENCY_SLOT,
            run.run_count == 0,
        )
    )


async def filter_deployments(
    conn: Connection,
    filters: RelatedFilters,
    *,
    sort: DeploymentSort,
    offset: int,
    limit: int,
) -> list[Any]:
    query = (
        deployment_query()
        .where(*deployment_where(filters))
        .order_by(*_SORTS[sort], t.deployment.c.id)
        .offset(offset)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def count_deployments(conn: Connection, filters: RelatedFilters) -> int:
    query = select(func.count()).select_from(t.deployment).where(*deployment_where(filters))
    return int((await conn.execute(query)).scalar_one())


async def set_paused(
    conn: Connection,
    deployment_id: uuid.UUID,
    paused: bool,
    horizon: scheduler.Horizon,
    *,
    now: dt.datetime,
) -> None:
    """Pausing deletes the auto-scheduled runs still waiting (late ones too, as Prefect);
    resuming plans them again from now, so no burst of Late runs follows."""
    result = await conn.execute(
        update(t.deployment)
        .where(t.deployment.c.id == deployment_id)
        .values(paused=paused, updated=now)
    )
    if result.rowcount == 0:
        raise NotFound(DEPLOYMENT_NOT_FOUND)
    await scheduler.replan(conn, deployment_id, horizon, clear_late=paused, now=now)
