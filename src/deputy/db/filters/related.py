"""The related filters a request carries (``flows``, ``flow_runs``, ``task_runs``,
``deployments``, work pools and queues), combined into conditions on the rows an endpoint
reads, as Prefect combines them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, exists, select

from deputy.db import tables as t
from deputy.db.filters.clauses import Clause
from deputy.db.filters.objects import (
    deployment_clause,
    flow_clause,
    flow_run_clause,
    task_run_clause,
    work_pool_clause,
    work_queue_clause,
)
from deputy.schemas import filters as f


def _has_matching_task_run(flt: f.TaskRunFilter) -> Clause:
    """A flow run with at least one task run matching ``flt`` (``{}``: any task run)."""
    return exists().where(t.task_run.c.flow_run_id == t.flow_run.c.id, task_run_clause(flt))


def flow_run_where(filters: f.RelatedFilters) -> list[Clause]:
    """Conditions on flow_run rows from every related filter the request carried."""
    run = t.flow_run.c
    where: list[Clause] = []
    if filters.flow_runs is not None:
        where.append(flow_run_clause(filters.flow_runs))
    if filters.task_runs is not None:
        where.append(_has_matching_task_run(filters.task_runs))
    if filters.flows is not None:
        where.append(run.flow_id.in_(select(t.flow.c.id).where(flow_clause(filters.flows))))
    if filters.deployments is not None:
        where.append(
            run.deployment_id.in_(
                select(t.deployment.c.id).where(deployment_clause(filters.deployments))
            )
        )
    if filters.work_pool_queues is not None:
        where.append(
            run.work_queue_id.in_(
                select(t.work_queue.c.id).where(work_queue_clause(filters.work_pool_queues))
            )
        )
    if filters.work_pools is not None:
        pools = select(t.work_pool.c.id).where(work_pool_clause(filters.work_pools))
        where.append(
            run.work_queue_id.in_(
                select(t.work_queue.c.id).where(t.work_queue.c.work_pool_id.in_(pools))
            )
        )
    return where


def flow_where(filters: f.FlowRelatedFilters) -> list[Clause]:
    """Conditions on flow rows: the flow's own filter, or having matching runs/deployments.

    As in Prefect, ``flow_runs`` and ``task_runs`` apply together (one of the flow's runs
    matches ``flow_runs`` and has a task run matching ``task_runs``), and so do
    ``deployments`` and ``work_pools`` (one of the flow's deployments matches
    ``deployments`` and is in a pool matching ``work_pools``).
    """
    where: list[Clause] = []
    if filters.flows is not None:
        where.append(flow_clause(filters.flows))
    if filters.flow_runs is not None or filters.task_runs is not None:
        run_filters = f.RelatedFilters(flow_runs=filters.flow_runs, task_runs=filters.task_runs)
        runs = select(t.flow_run.c.flow_id).where(*flow_run_where(run_filters))
        where.append(t.flow.c.id.in_(runs))
    if filters.deployments is not None or filters.work_pools is not None:
        deployment_filters = f.RelatedFilters(
            deployments=filters.deployments, work_pools=filters.work_pools
        )
        deployments = select(t.deployment.c.flow_id).where(*deployment_where(deployment_filters))
        where.append(t.flow.c.id.in_(deployments))
    return where


def deployment_where(filters: f.RelatedFilters) -> list[Clause]:
    """Conditions on deployment rows from the related filters (``flow_runs`` and
    ``task_runs`` together: a run of the deployment matching both, as in Prefect)."""
    d = t.deployment.c
    where: list[Clause] = []
    if filters.deployments is not None:
        where.append(deployment_clause(filters.deployments))
    if filters.flows is not None:
        where.append(d.flow_id.in_(select(t.flow.c.id).where(flow_clause(filters.flows))))
    if filters.flow_runs is not None or filters.task_runs is not None:
        run_where: list[Clause] = []
        if filters.flow_runs is not None:
            run_where.append(flow_run_clause(filters.flow_runs))
        if filters.task_runs is not None:
            run_where.append(_has_matching_task_run(filters.task_runs))
        runs = select(t.flow_run.c.deployment_id).where(*run_where)
        where.append(d.id.in_(runs))
    if filters.work_pool_queues is not None:
        where.append(
            d.work_queue_id.in_(
                select(t.work_queue.c.id).where(work_queue_clause(filters.work_pool_queues))
            )
        )
    if filters.work_pools is not None:
        pools = select(t.work_pool.c.id).where(work_pool_clause(filters.work_pools))
        where.append(
            d.work_queue_id.in_(
                select(t.work_queue.c.id).where(t.work_queue.c.work_pool_id.in_(pools))
            )
        )
    return where


def _only_flow_run_ids(flt: f.FlowRunFilter) -> list[Any] | None:
    """The ids when a flow-run filter says nothing but ``id.any_`` (Prefect's fast path)."""
    if flt.id is None or not flt.id.any_ or flt.id.not_any_:
        return None
    others = flt.model_dump(exclude={"id", "operator"}, exclude_none=True)
    return None if others else list(flt.id.any_)


def task_run_where(filters: f.TaskRunRelatedFilters) -> list[Clause]:
    """Conditions on task_run rows: its own filter, and (for any other filter given, even
    ``{}``) a flow run matching them all, which leaves out task runs without a flow run."""
    run = t.task_run.c
    where: list[Clause] = []
    if filters.task_runs is not None:
        where.append(task_run_clause(filters.task_runs))
    if filters.flow_runs is not None and filters.flows is None and filters.deployments is None:
        ids = _only_flow_run_ids(filters.flow_runs)
        if ids is not None:
            where.append(run.flow_run_id.in_(ids))
            return where
    runs = _matching_flow_run_ids(filters)
    if runs is not None:
        where.append(run.flow_run_id.in_(runs))
    return where


def _matching_flow_run_ids(filters: f.TaskRunRelatedFilters) -> Any:
    """The ids of flow runs matching ``flows``, ``flow_runs`` and ``deployments`` together;
    ``None`` when none of them was given."""
    if filters.flows is None and filters.flow_runs is None and filters.deployments is None:
        return None
    related = f.RelatedFilters(
        flows=filters.flows, flow_runs=filters.flow_runs, deployments=filters.deployments
    )
    return select(t.flow_run.c.id).where(*flow_run_where(related))


def artifact_where(table: Table, filters: f.TaskRunRelatedFilters) -> list[Clause]:
    """Conditions on ``artifact`` or ``artifact_collection`` rows from the related filters,
    as in Prefect: ``flows``, ``flow_runs`` and ``deployments`` together ask for the
    artifact's flow run to match them all; ``task_runs`` for its task run to match (any of
    them, even ``{}``, leaves out artifacts without such a run)."""
    c = table.c
    where: list[Clause] = []
    runs = _matching_flow_run_ids(filters)
    if runs is not None:
        where.append(c.flow_run_id.in_(runs))
    if filters.task_runs is not None:
        runs = select(t.task_run.c.id).where(task_run_clause(filters.task_runs))
        where.append(c.task_run_id.in_(runs))
    return where
