"""``POST /flow_runs/{id}/set_state``: read-decide-write under the run's lock.

The run row is locked for the whole transaction (``FOR UPDATE`` on PostgreSQL; the write
transaction's ``BEGIN IMMEDIATE`` on SQLite), so two workers proposing PENDING at once are
decided one after the other and exactly one wins. The decision itself is the pure
``orchestration.policy.decide``; this module loads the facts it needs, applies its effects
(deployment concurrency slots and leases), writes the state and the run's bookkeeping.

Typical cost: one SELECT of the run with its current state, one INSERT of the state, one
UPDATE of the run; plus one SELECT (and small writes) when a deployment concurrency slot is
involved.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update

from deputy.db import tables as t
from deputy.db.dialect import greatest, is_postgres
from deputy.errors import ObjectNotFound
from deputy.orchestration.bookkeeping import run_updates_for_state
from deputy.orchestration.flow_context import (
    DEFAULT_LEASE_SECONDS,
    DeploymentSlots,
    RunView,
    Transition,
)
from deputy.orchestration.policy import decide, needs_slots
from deputy.orchestration.states import CurrentState, Decision, Effects, StateDraft, default_name
from deputy.schemas.core import EMPTY_STATE_DETAILS, StateCreate, StateType, canonical_details
from deputy.schemas.flow_runs import state_to_wire
from deputy.services.common import Answer, json_details, orchestration_result, uuid7
from deputy.services.events import build as events
from deputy.services.task_runs.orchestrate import mirror_subflow_state

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_run = t.flow_run.c
_state = t.flow_run_state.c
_limit = t.concurrency_limit_v2.c
_lease = t.concurrency_lease.c

_RUN_COLUMNS = (
    _run.id,
    _run.deployment_id,
    _run.infrastructure_pid,
    _run.parent_task_run_id,
    _run.run_count,
    _run.empirical_policy,
    _run.start_time,
    _run.end_time,
    _run.total_run_time,
    _run.expected_start_time,
    _run.next_scheduled_start_time,
    # for the state-change event: names and tags of the run and what it belongs to
    _run.name,
    _run.flow_id,
    _run.tags,
    _run.work_queue_id,
    _run.created_by,
    t.flow.c.name.label("flow__name"),
    t.flow.c.tags.label("flow__tags"),
    t.deployment.c.name.label("deployment__name"),
    t.deployment.c.tags.label("deployment__tags"),
    t.work_queue.c.name.label("queue__name"),
    t.work_queue.c.work_pool_id.label("pool__id"),
    t.work_pool.c.name.label("pool__name"),
    t.work_pool.c.type.label("pool__type"),
    t.task_run.c.name.label("parent__name"),
    t.task_run.c.tags.label("parent__tags"),
    _state.id.label("state__id"),
    _state.type.label("state__type"),
    _state.name.label("state__name"),
    _state.timestamp.label("state__timestamp"),
    _state.message.label("state__message"),
    _state.data.label("state__data"),
    _state.state_details.label("state__state_details"),
    t.deployment.c.id.label("deployment__id"),
    t.deployment.c.concurrency_limit_id.label("deployment__limit_id"),
)
_READ_RUN = (
    select(*_RUN_COLUMNS)
    .select_from(t.flow_run)
    .outerjoin(t.flow_run_state, _state.id == _run.state_id)
    .outerjoin(t.deployment, t.deployment.c.id == _run.deployment_id)
    .outerjoin(t.flow, t.flow.c.id == _run.flow_id)
    .outerjoin(t.work_queue, t.work_queue.c.id == _run.work_queue_id)
    .outerjoin(t.work_pool, t.work_pool.c.id == t.work_queue.c.work_pool_id)
    .outerjoin(t.task_run, t.task_run.c.id == _run.parent_task_run_id)
    .where(_run.id == bindparam("run_id"))
)
_INSERT_STATE = t.flow_run_state.insert()


_LOCK_RUN = select(_run.id).where(_run.id == bindparam("run_id")).with_for_update()


async def read_run_for_update(conn: Connection, flow_run_id: uuid.UUID) -> Any:
    """The run with its current state and deployment limit, locked for this transaction.

    On PostgreSQL the row is locked by a statement of its own first: a ``FOR UPDATE`` that
    had to wait re-reads the locked row but joins the other tables from its old snapshot,
    so it would miss the state the previous holder just wrote. The read that follows is a
    new statement, with a snapshot that includes it. (SQLite's write transaction already
    excludes every other writer.)
    """
    parameters = {"run_id": flow_run_id}
    if is_postgres(conn):
        await conn.execute(_LOCK_RUN, parameters)
    return (await conn.execute(_READ_RUN, parameters)).first()


async def set_flow_run_state(
    conn: Connection,
    flow_run_id: uuid.UUID,
    proposed: StateCreate,
    *,
    force: bool = False,
    client_version: tuple[int, ...] | None = None,
    now: dt.datetime,
) -> Answer:
    """``now`` is read once the transaction has begun; on PostgreSQL the run's lock may be
    waited for after it, and ``_write`` keeps the run's state times in order all the same."""
    row = await read_run_for_update(conn, flow_run_id)
    if row is None:
        raise ObjectNotFound(f"Flow run with id {flow_run_id} not found")
    draft = StateDraft(
        type=proposed.type,
        name=proposed.name or default_name(proposed.type),
        timestamp=now,
        message=proposed.message,
        data=proposed.data,
        details=proposed.state_details.model_dump(mode="json"),
    )
    return await orchestrate(conn, row, draft, force=force, client_version=client_version, now=now)


async def orchestrate(
    conn: Connection,
    row: Any,
    draft: StateDraft,
    *,
    force: bool,
    client_version: tuple[int, ...] | None,
    now: dt.datetime,
) -> Answer:
    """Decide on ``draft`` for the run in ``row`` (read with ``_READ_RUN``) and apply it."""
    current = current_state(row)
    run = RunView(
        id=row.id,
        deployment_id=row.deployment_id,
        infrastructure_pid=row.infrastructure_pid,
        parent_task_run_id=row.parent_task_run_id,
        run_count=row.run_count,
        empirical_policy=row.empirical_policy or {},
    )
    slots = None
    if run.deployment_id is not None and needs_slots(
        current.type if current else None, draft.type, force
    ):
        if row.deployment__id is None:
            slots = DeploymentSlots(deployment_exists=False)
        elif row.deployment__limit_id is None:
            slots = DeploymentSlots(deployment_exists=True)  # no limit: nothing to load
        else:
            lease_id = current.details.get("deployment_concurrency_lease_id") if current else None
            slots = await _load_slots(conn, run.deployment_id, lease_id, now)
    decision = decide(
        Transition(
            run=run,
            current=current,
            proposed=draft,
            now=now,
            slots=slots,
            client_version=client_version,
        ),
        force=force,
    )
    if decision.state is None:
        if decision.effects.renew_lease and current is not None and slots is not None:
            await _renew_lease(conn, current.details, slots, now)
        return Answer(orchestration_result(decision, current_body(row)), created=False)
    state = await _write(conn, row, current, decision, slots, now=now)
    # Answered as Prefect's State: without the row's created, updated and flow_run_id.
    return Answer(orchestration_result(decision, state_to_wire(state)), created=True)


def current_state(row: Any) -> CurrentState | None:
    """The run's current state in a row read with ``read_run_for_update``."""
    if row.state__id is None:
        return None
    return CurrentState(
        type=StateType(row.state__type),
        name=row.state__name,
        timestamp=row.state__timestamp,
        data=row.state__data,
        details=row.state__state_details or {},
    )


def current_body(row: Any) -> dict[str, Any] | None:
    """The run's current state as set_state answers it (Prefect's State)."""
    if row.state__id is None:
        return None
    return {
        "id": row.state__id,
        "type": row.state__type,
        "name": row.state__name,
        "timestamp": row.state__timestamp,
        "message": row.state__message,
        "data": row.state__data,
        "state_details": canonical_details(row.state__state_details),
    }


async def _load_slots(
    conn: Connection,
    deployment_id: uuid.UUID,
    lease_id: str | None,
    timestamp: dt.datetime,
) -> DeploymentSlots:
    """The deployment's limit (locked on PostgreSQL) and whether the run's lease is alive."""
    lease_alive = select(func.count()).where(
        _lease.id == (uuid.UUID(lease_id) if lease_id else None),
        _lease.expiration > timestamp,
    )
    query = (
        select(
            t.deployment.c.concurrency_options,
            _limit.id,
            _limit.limit,
            _limit.active_slots,
            lease_alive.scalar_subquery().label("lease_alive"),
        )
        .select_from(t.deployment)
        .join(t.concurrency_limit_v2, _limit.id == t.deployment.c.concurrency_limit_id)
        .where(t.deployment.c.id == deployment_id)
    )
    if is_postgres(conn):
        # The limit row is the one every claimant of this deployment's slots waits on; the
        # values read from it after the wait are the committed ones.
        query = query.with_for_update(of=t.concurrency_limit_v2)
    row = (await conn.execute(query)).first()
    if row is None:  # the limit was removed since the run was read: nothing to enforce
        return DeploymentSlots(deployment_exists=True)
    options = row.concurrency_options or {}
    return DeploymentSlots(
        deployment_exists=True,
        limit_id=row.id,
        limit=row.limit,
        active_slots=row.active_slots or 0,
        collision_strategy=options.get("collision_strategy") or "ENQUEUE",
        grace_period_seconds=options.get("grace_period_seconds") or DEFAULT_LEASE_SECONDS,
        lease_alive=bool(row.lease_alive),
    )


async def _write(
    conn: Connection,
    row: Any,
    current: CurrentState | None,
    decision: Decision,
    slots: DeploymentSlots | None,
    *,
    now: dt.datetime,
) -> dict[str, Any]:
    """Apply the decision's effects, insert the state, update the run; returns the state."""
    draft = decision.state
    assert draft is not None
    details = {**EMPTY_STATE_DETAILS, **json_details(draft.details), "flow_run_id": str(row.id)}
    if row.parent_task_run_id is not None:  # a subflow's states name the task standing for it
        details["task_run_id"] = str(row.parent_task_run_id)
    await _apply_effects(conn, row, current, decision.effects, slots, details, draft.timestamp)
    timestamp = draft.timestamp
    if current is not None and timestamp <= current.timestamp:
        timestamp = current.timestamp + dt.timedelta(microseconds=1)  # unique per run
    state = {
        "id": uuid7(),
        "created": draft.timestamp,
        "updated": draft.timestamp,
        "flow_run_id": row.id,
        "type": draft.type.value,
        "name": draft.name,
        "timestamp": timestamp,
        "message": draft.message,
        "data": draft.data,
        "state_details": details,
    }
    # Bookkeeping sees the policy as it was before this transition (Prefect's global rules
    # run before the core rules' after-transition steps); the rules' own update then wins.
    policy = row.empirical_policy or {}
    run_fields = {
        "start_time": row.start_time,
        "end_time": row.end_time,
        "run_count": row.run_count,
        "total_run_time": row.total_run_time,
        "expected_start_time": row.expected_start_time,
        "next_scheduled_start_time": row.next_scheduled_start_time,
        "empirical_policy": policy,
    }
    changes = run_updates_for_state(
        run_fields, current.type if current else None, current.timestamp if current else None, state
    )
    if decision.effects.policy is not None:
        changes["empirical_policy"] = decision.effects.policy
    changes["updated"] = draft.timestamp
    await conn.execute(_INSERT_STATE, state)
    await conn.execute(update(t.flow_run).where(_run.id == row.id).values(**changes))
    events.flow_run_state_written(row, state, changes.get("run_count", row.run_count))
    if row.parent_task_run_id is not None:
        # The parent flow's task run for this subflow follows its states (Prefect's
        # UpdateSubflowParentTask).
        await mirror_subflow_state(conn, row.parent_task_run_id, row.id, state, now=now)
    return state


async def _apply_effects(
    conn: Connection,
    row: Any,
    current: CurrentState | None,
    effects: Effects,
    slots: DeploymentSlots | None,
    details: dict[str, Any],
    timestamp: dt.datetime,
) -> None:
    """Take, renew, revoke or give back the deployment slot as the decision says, noting
    in the new state's ``details`` the lease it holds."""
    lease_id = details.get("deployment_concurrency_lease_id")
    if effects.acquire_slot and slots is not None and slots.limit_id is not None:
        details["deployment_concurrency_lease_id"] = str(
            await _acquire_slot(conn, slots, row.id, timestamp)
        )
    if effects.renew_lease and slots is not None:
        await _renew_lease(conn, details, slots, timestamp)
    if effects.revoke_lease and lease_id:
        await conn.execute(delete(t.concurrency_lease).where(_lease.id == uuid.UUID(lease_id)))
    if effects.release_slot and row.deployment_id is not None:
        held = current.details.get("deployment_concurrency_lease_id") if current else None
        await release_slot(conn, row.deployment_id, held)
        details["deployment_concurrency_lease_id"] = None


async def _renew_lease(
    conn: Connection,
    details: dict[str, Any],
    slots: DeploymentSlots,
    timestamp: dt.datetime,
) -> None:
    lease_id = details.get("deployment_concurrency_lease_id")
    if not lease_id:
        return
    await conn.execute(
        update(t.concurrency_lease)
        .where(_lease.id == uuid.UUID(str(lease_id)))
        .values(
            expiration=timestamp + dt.timedelta(seconds=slots.grace_period_seconds),
            updated=timestamp,
        )
    )


async def _acquire_slot(
    conn: Connection, slots: DeploymentSlots, flow_run_id: uuid.UUID, timestamp: dt.datetime
) -> uuid.UUID:
    """Take one slot (never beyond the limit) and record the lease that holds it."""
    await conn.execute(
        update(t.concurrency_limit_v2)
        .where(_limit.id == slots.limit_id)
        .values(active_slots=_limit.active_slots + 1, updated=timestamp)
    )
    lease_id = uuid.uuid4()
    await conn.execute(
        t.concurrency_lease.insert().values(
            id=lease_id,
            created=timestamp,
            updated=timestamp,
            concurrency_limit_id=slots.limit_id,
            slots=1,
            expiration=timestamp + dt.timedelta(seconds=slots.grace_period_seconds),
            holder={"type": "flow_run", "id": str(flow_run_id)},
        )
    )
    return lease_id


async def release_slot(conn: Connection, deployment_id: uuid.UUID, lease_id: str | None) -> None:
    """Give a deployment slot back: through its lease when it has one, never below zero."""
    released = 1
    if lease_id:
        deleted = (
            await conn.execute(
                delete(t.concurrency_lease)
                .where(_lease.id == uuid.UUID(lease_id))
                .returning(_lease.slots)
            )
        ).first()
        if deleted is None:
            return  # the lease expired and its slot was already reclaimed
        released = deleted.slots
    limit_id = (
        select(t.deployment.c.concurrency_limit_id)
        .where(t.deployment.c.id == deployment_id)
        .scalar_subquery()
    )
    await conn.execute(
        update(t.concurrency_limit_v2)
        .where(_limit.id == limit_id)
        .values(active_slots=greatest(conn, _limit.active_slots - released, 0))
    )
