"""``POST /deployments/{id}/create_flow_run``: the product's hot path.

One read of the deployment (with its queue and pool), parameters merged, hydrated and checked,
job variables checked, the queue resolved, then one INSERT for the run and one for its first
state. With an idempotency key the run INSERT is ``ON CONFLICT DO NOTHING`` and a replay reads
the existing run back instead (200, unchanged, no new state).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sqlalchemy import bindparam, select

from deputy.db import tables as t
from deputy.db.dialect import insert_unless_exists
from deputy.errors import BadRequest, NotFound, integrity_conflict
from deputy.orchestration.bookkeeping import run_updates_for_state
from deputy.parameters.job_variables import validate_job_variables_for_run
from deputy.parameters.schema import enforce_flow_run_parameters
from deputy.schemas.core import (
    DEFAULT_POLICY,
    EMPTY_STATE_DETAILS,
    StateCreate,
    StateType,
    dump_policy,
)
from deputy.schemas.deployments import DeploymentFlowRunCreate
from deputy.schemas.flow_runs import FlowRunCreate, flow_run_to_wire
from deputy.services.common import Answer, json_time, uuid7
from deputy.services.events import build as events
from deputy.services.flow_runs.read import read_flow_run_by_idempotency_key
from deputy.services.names import generate_run_name
from deputy.services.parameters import hydrate
from deputy.services.task_runs.orchestrate import mirror_subflow_state
from deputy.services.work_pools import pools as work_pools
from deputy.services.work_pools import queues as work_queues

if TYPE_CHECKING:
    from deputy.db.connection import Connection

DEPLOYMENT_NOT_FOUND = "Deployment not found"

_d = t.deployment.c
_DEPLOYMENT_COLUMNS = (
    _d.id,
    _d.flow_id,
    _d.version,
    _d.parameters,
    _d.parameter_openapi_schema,
    _d.enforce_parameter_schema,
    _d.job_variables,
    _d.tags,
    _d.labels,
    _d.work_queue_id,
    _d.work_queue_name,
    _d.infrastructure_document_id,
    t.work_queue.c.name.label("queue_name"),
    t.work_queue.c.work_pool_id,
    t.work_pool.c.name.label("pool_name"),
    t.work_pool.c.base_job_template,
    # for the first state's event
    _d.name.label("deployment_name"),
    t.flow.c.name.label("flow_name"),
    t.flow.c.tags.label("flow_tags"),
    t.work_pool.c.type.label("pool_type"),
)


class RunLabelSource(Protocol):
    """What a deployment's run labels are made of (a deployment row, or one read for runs)."""

    id: uuid.UUID
    flow_id: uuid.UUID
    labels: dict[str, Any] | None


class DeploymentForRuns(RunLabelSource, Protocol):
    """A row of ``_READ_DEPLOYMENT``: the deployment with its queue, pool and flow (names
    and tags for the first state's event)."""

    version: str | None
    parameters: dict[str, Any]
    parameter_openapi_schema: dict[str, Any] | None
    enforce_parameter_schema: bool
    job_variables: dict[str, Any]
    tags: list[str]
    work_queue_id: uuid.UUID | None
    work_queue_name: str | None
    infrastructure_document_id: uuid.UUID | None
    queue_name: str | None
    work_pool_id: uuid.UUID | None
    pool_name: str | None
    base_job_template: dict[str, Any] | None
    deployment_name: str
    flow_name: str | None
    flow_tags: list[str] | None
    pool_type: str | None


class _Queue(NamedTuple):
    """Where a new run waits: its queue and that queue's pool (all ``None``: no queue)."""

    id: uuid.UUID | None
    name: str | None
    pool_id: uuid.UUID | None
    pool_name: str | None


# Statements built once: executing a prepared construct with parameters skips SQLAlchemy's
# per-call statement building and cache-key work, most of this endpoint's CPU otherwise.
_READ_DEPLOYMENT = (
    select(*_DEPLOYMENT_COLUMNS)
    .select_from(t.deployment)
    .outerjoin(t.work_queue, t.work_queue.c.id == _d.work_queue_id)
    .outerjoin(t.work_pool, t.work_pool.c.id == t.work_queue.c.work_pool_id)
    .outerjoin(t.flow, t.flow.c.id == _d.flow_id)
    .where(_d.id == bindparam("deployment_id"))
)
_INSERT_RUN = t.flow_run.insert()
_INSERT_STATE = t.flow_run_state.insert()
_IDEMPOTENCY_KEY = ("flow_id", "idempotency_key")


async def read_deployment_for_runs(conn: Connection, deployment_id: uuid.UUID) -> DeploymentForRuns:
    """The deployment columns run creation needs (the bulk route reads them once)."""
    row = (await conn.execute(_READ_DEPLOYMENT, {"deployment_id": deployment_id})).first()
    if row is None:
        raise NotFound(DEPLOYMENT_NOT_FOUND)
    return row


async def create_flow_run_from_deployment(
    conn: Connection,
    deployment_id: uuid.UUID,
    body: DeploymentFlowRunCreate,
    *,
    created_by: dict[str, Any] | None = None,
    now: dt.datetime,
) -> Answer:
    deployment = await read_deployment_for_runs(conn, deployment_id)
    return await create_flow_run_for(conn, deployment, body, created_by=created_by, now=now)


async def create_flow_run_for(
    conn: Connection,
    deployment: DeploymentForRuns,
    body: DeploymentFlowRunCreate,
    *,
    created_by: dict[str, Any] | None = None,
    now: dt.datetime,
) -> Answer:
    """Every rule of Prefect's create_flow_run, for an already-read deployment."""
    parameters = await hydrate(conn, {**deployment.parameters, **body.parameters})
    enforce = (
        body.enforce_parameter_schema
        if body.enforce_parameter_schema is not None
        else deployment.enforce_parameter_schema
    )
    enforce_flow_run_parameters(parameters, deployment.parameter_openapi_schema, enforce=enforce)
    if deployment.work_pool_id is not None:
        validate_job_variables_for_run(
            deployment.base_job_template, deployment.job_variables, body.job_variables
        )
    queue = await _resolve_queue(conn, deployment, body, now=now)

    run = new_run_row(
        now,
        name=body.name,
        flow_id=deployment.flow_id,
        deployment_id=deployment.id,
        deployment_version=deployment.version,
        work_queue_id=queue.id,
        work_queue_name=queue.name,
        parameters=parameters,
        idempotency_key=body.idempotency_key,
        context=body.context,
        empirical_policy=(
            dump_policy(body.empirical_policy)
            if "empirical_policy" in body.model_fields_set
            else DEFAULT_POLICY
        ),
        tags=_union(deployment.tags, body.tags),
        labels=deployment_run_labels(deployment, body.labels),
        created_by=created_by,
        job_variables=body.job_variables if body.job_variables is not None else {},
        infrastructure_document_id=(
            body.infrastructure_document_id or deployment.infrastructure_document_id
        ),
        parent_task_run_id=body.parent_task_run_id,
    )
    state = initial_state(body.state, StateType.SCHEDULED, run["id"], now)
    names = {
        "flow_name": deployment.flow_name,
        "flow_tags": deployment.flow_tags,
        "deployment_name": deployment.deployment_name,
        "deployment_tags": deployment.tags,
        "pool_type": deployment.pool_type,  # a named queue is always in the deployment's pool
    }
    return await insert_run(
        conn,
        run,
        state,
        queue_name=queue.name,
        pool_id=queue.pool_id,
        pool_name=queue.pool_name,
        event_names=names,
        now=now,
    )


def deployment_run_labels(
    deployment: RunLabelSource, requested: dict[str, Any] | None
) -> dict[str, Any]:
    """A deployment's run labels: the deployment's, then the system ids, then the request's."""
    return {
        **(deployment.labels or {}),
        "prefect.flow.id": str(deployment.flow_id),
        "prefect.deployment.id": str(deployment.id),
        **(requested or {}),
    }


def new_run_row(timestamp: dt.datetime, **fields: Any) -> dict[str, Any]:
    """A flow-run row with every column at its starting value, then ``fields``."""
    run: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created": timestamp,
        "updated": timestamp,
        "flow_version": None,
        "deployment_id": None,
        "deployment_version": None,
        "work_queue_id": None,
        "work_queue_name": None,
        "idempotency_key": None,
        "created_by": None,
        "infrastructure_pid": None,
        "infrastructure_document_id": None,
        "parent_task_run_id": None,
        "auto_scheduled": False,
        "run_count": 0,
        "total_run_time": 0.0,
        "state_id": None,
        "state_type": None,
        "state_name": None,
        "state_timestamp": None,
        "expected_start_time": None,
        "next_scheduled_start_time": None,
        "start_time": None,
        "end_time": None,
        **fields,
    }
    if not run.get("name"):
        run["name"] = generate_run_name()
    return run


async def insert_run(
    conn: Connection,
    run: dict[str, Any],
    state: dict[str, Any],
    *,
    queue_name: str | None,
    pool_id: uuid.UUID | None,
    pool_name: str | None,
    event_names: dict[str, Any] | None = None,
    now: dt.datetime,
) -> Answer:
    """Insert the run with its first state (bookkeeping applied, no orchestration).

    With an idempotency key the insert is ``ON CONFLICT DO NOTHING``; a replay returns the
    existing run unchanged and writes no state. ``event_names`` are the names and tags the
    state's event names its flow, deployment and pool by (``events.flow_run_created``).
    """
    run.update(run_updates_for_state(run, None, None, state))
    key = run["idempotency_key"]
    if key is None:
        await conn.execute(_INSERT_RUN, run)
    else:
        statement = insert_unless_exists(conn.dialect.name, t.flow_run, _IDEMPOTENCY_KEY)
        if (await conn.execute(statement, run)).first() is None:
            existing = await read_flow_run_by_idempotency_key(conn, run["flow_id"], key, now=now)
            return Answer(existing, created=False)
    parent_task_run_id = run["parent_task_run_id"]
    if parent_task_run_id is not None:  # a subflow's states name the task standing for it
        state["state_details"]["task_run_id"] = str(parent_task_run_id)
    await conn.execute(_INSERT_STATE, state)
    if parent_task_run_id is not None:
        # As after any of a subflow's states (Prefect's global rules apply at creation too).
        await mirror_subflow_state(conn, parent_task_run_id, run["id"], state, now=now)
    events.flow_run_created(
        run, state, queue_name=queue_name, pool_id=pool_id, pool_name=pool_name, names=event_names
    )
    body = flow_run_to_wire(
        run, state, queue_name=queue_name, pool_id=pool_id, pool_name=pool_name, now=run["created"]
    )
    return Answer(body, created=True)


async def _resolve_queue(
    conn: Connection,
    deployment: DeploymentForRuns,
    body: DeploymentFlowRunCreate,
    *,
    now: dt.datetime,
) -> _Queue:
    """The run's queue: the deployment's, or the requested one inside the deployment's pool,
    created there when it does not exist yet."""
    if not body.work_queue_name:
        return _Queue(
            deployment.work_queue_id,
            deployment.queue_name
            if deployment.queue_name is not None
            else deployment.work_queue_name,
            deployment.work_pool_id,
            deployment.pool_name,
        )
    if deployment.work_pool_id is None:
        raise BadRequest(
            f"Cannot create flow run in work queue {body.work_queue_name} because deployment "
            f"{deployment.id} is not associated with a work pool. Please remove work_pool_name "
            "and try again."
        )
    queue = await work_queues.get_or_create_work_queue(
        conn, deployment.work_pool_id, body.work_queue_name, now=now
    )
    return _Queue(queue.id, queue.name, deployment.work_pool_id, deployment.pool_name)


def initial_state(
    proposed: StateCreate | None,
    default_type: StateType,
    run_id: uuid.UUID,
    timestamp: dt.datetime,
) -> dict[str, Any]:
    """The first state: the one requested (forced, no orchestration) or ``default_type``;
    a SCHEDULED state without a time is scheduled for now."""
    state_type = proposed.type if proposed is not None else default_type
    details = (
        proposed.state_details.model_dump(mode="json")
        if proposed is not None
        else {**EMPTY_STATE_DETAILS}
    )
    if state_type == StateType.SCHEDULED and details.get("scheduled_time") is None:
        details["scheduled_time"] = json_time(timestamp)
    details["flow_run_id"] = str(run_id)
    return {
        "id": uuid7(),
        "created": timestamp,
        "updated": timestamp,
        "flow_run_id": run_id,
        "type": state_type.value,
        "name": (proposed.name if proposed is not None and proposed.name else None)
        or state_type.value.title(),
        "timestamp": timestamp,
        "message": proposed.message if proposed is not None else None,
        "data": proposed.data if proposed is not None else None,
        "state_details": details,
    }


def _union(first: list[str], second: list[str]) -> list[str]:
    """Tags of both, each once, in first-seen order (Prefect's set order is unspecified)."""
    return list(dict.fromkeys([*first, *second]))


async def create_flow_run(
    conn: Connection,
    body: FlowRunCreate,
    *,
    created_by: dict[str, Any] | None = None,
    now: dt.datetime,
) -> Answer:
    """``POST /flow_runs/``: a run of a flow, optionally in a pool's queue; PENDING by default.

    Unlike create_flow_run from a deployment, a named queue must exist (404), no parameter
    schema applies, and the flow's labels are inherited directly.
    """
    flow = (
        await conn.execute(
            select(t.flow.c.labels, t.flow.c.name, t.flow.c.tags).where(t.flow.c.id == body.flow_id)
        )
    ).first()
    if flow is None:
        raise integrity_conflict()  # Prefect answers an unknown flow_id with the FK conflict
    queue_id = queue_name = pool_id = pool_name = pool_type = None
    if body.work_pool_name:
        pool = await work_pools.read_work_pool_by_name(conn, body.work_pool_name)
        queue = (
            await work_queues.read_work_queue_in_pool(conn, pool.id, body.work_queue_name)
            if body.work_queue_name
            else (
                await conn.execute(
                    select(t.work_queue).where(t.work_queue.c.id == pool.default_queue_id)
                )
            ).first()
        )
        if queue is None:
            raise NotFound(
                f"Work pool queue '{body.work_pool_name}/{body.work_queue_name}' not found."
            )
        queue_id, queue_name, pool_id, pool_name = queue.id, queue.name, pool.id, pool.name
        pool_type = pool.type
    labels = {**(flow.labels or {}), "prefect.flow.id": str(body.flow_id)}
    if body.deployment_id is not None:
        labels["prefect.deployment.id"] = str(body.deployment_id)
    run = new_run_row(
        now,
        name=body.name,
        flow_id=body.flow_id,
        flow_version=body.flow_version,
        deployment_id=body.deployment_id,
        work_queue_id=queue_id,
        work_queue_name=queue_name if queue_name is not None else body.work_queue_name,
        parameters=body.parameters,
        idempotency_key=body.idempotency_key,
        context=body.context,
        empirical_policy=dump_policy(body.empirical_policy),
        tags=list(dict.fromkeys(body.tags)),
        labels={**labels, **(body.labels or {})},
        created_by=created_by,
        job_variables=body.job_variables if body.job_variables is not None else {},
        infrastructure_document_id=body.infrastructure_document_id,
        parent_task_run_id=body.parent_task_run_id,
    )
    state = initial_state(body.state, StateType.PENDING, run["id"], now)
    names = {"flow_name": flow.name, "flow_tags": flow.tags, "pool_type": pool_type}
    return await insert_run(
        conn,
        run,
        state,
        queue_name=queue_name,
        pool_id=pool_id,
        pool_name=pool_name,
        event_names=names,
        now=now,
    )
