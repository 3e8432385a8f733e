"""Each filter object to one SQL ``WHERE`` clause on its own table: flows, flow runs, task
runs, deployments, work pools and queues, variables, artifacts (``related.py`` combines them
per endpoint)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, exists, func, or_, select, true

from deputy.db import tables as t
from deputy.db.filters.clauses import (
    Clause,
    all_of,
    any_not_any,
    array_has_all,
    combine,
    ids,
    ilike_contains,
    ilike_prefix,
    is_empty_array,
    join_children,
    names,
    null_check,
    nullable_any,
    tags,
    window,
)
from deputy.schemas import filters as f


def flow_clause(flt: f.FlowFilter) -> Clause:
    c = t.flow.c
    deployment = None
    if flt.deployment is not None:
        sub: list[Clause] = []
        if flt.deployment.is_null_ is not None:
            has_deployment = exists().where(t.deployment.c.flow_id == c.id)
            sub.append(~has_deployment if flt.deployment.is_null_ else has_deployment)
        deployment = combine(flt.deployment.operator, sub)
    return join_children(
        flt, [ids(c.id, flt.id), deployment, names(c.name, flt.name), tags(c.tags, flt.tags)]
    )


def _state_clause(flt: f.FlowRunFilterState | None) -> Clause | None:
    """Prefect drops a state ``type``/``name`` child that has no condition (instead of TRUE)."""
    if flt is None:
        return None
    c = t.flow_run.c
    sub: list[Clause] = []
    if flt.type is not None and (flt.type.any_ is not None or flt.type.not_any_):
        any_ = None if flt.type.any_ is None else [s.value for s in flt.type.any_]
        not_any = [s.value for s in flt.type.not_any_ or []]
        sub.append(any_not_any(c.state_type, any_, not_any))
    if flt.name is not None and (flt.name.any_ is not None or flt.name.not_any_):
        sub.append(any_not_any(c.state_name, flt.name.any_, flt.name.not_any_))
    return combine(flt.operator, sub)


def flow_run_clause(flt: f.FlowRunFilter) -> Clause:
    c = t.flow_run.c
    parent_flow_run = None
    if flt.parent_flow_run_id is not None:
        sub: list[Clause] = []
        if flt.parent_flow_run_id.any_ is not None:
            parents = select(t.task_run.c.id).where(
                t.task_run.c.flow_run_id.in_(flt.parent_flow_run_id.any_)
            )
            sub.append(c.parent_task_run_id.in_(parents))
        parent_flow_run = combine(flt.parent_flow_run_id.operator, sub)
    idempotency_key = None
    if flt.idempotency_key is not None:
        idempotency_key = any_not_any(
            c.idempotency_key, flt.idempotency_key.any_, flt.idempotency_key.not_any_
        )
    flow_version = None
    if flt.flow_version is not None:
        flow_version = any_not_any(c.flow_version, flt.flow_version.any_, None)
    return join_children(
        flt,
        [
            ids(c.id, flt.id),
            names(c.name, flt.name),
            tags(c.tags, flt.tags),
            nullable_any(c.deployment_id, flt.deployment_id),
            nullable_any(c.work_queue_name, flt.work_queue_name),
            flow_version,
            _state_clause(flt.state),
            # Prefect compares start_time windows on COALESCE(start_time, expected_start_time).
            window(
                c.start_time,
                flt.start_time,
                compared=func.coalesce(c.start_time, c.expected_start_time),
            ),
            window(c.end_time, flt.end_time),
            window(c.expected_start_time, flt.expected_start_time),
            window(c.next_scheduled_start_time, flt.next_scheduled_start_time),
            parent_flow_run,
            nullable_any(c.parent_task_run_id, flt.parent_task_run_id),
            idempotency_key,
            None if flt.created_by is None else _created_by_clause(flt.created_by),
        ],
    )


def _created_by_clause(flt: f.FlowRunFilterCreatedBy) -> Clause:
    column = t.flow_run.c.created_by
    sub: list[Clause] = []
    if flt.id_ is not None:
        sub.append(column["id"].as_string().in_([str(i) for i in flt.id_]))
    if flt.type_ is not None:
        sub.append(column["type"].as_string().in_(flt.type_))
    if flt.is_null_ is not None:
        sub.append(null_check(column, flt.is_null_))
    return combine(flt.operator, sub)


def deployment_clause(flt: f.DeploymentFilter) -> Clause:
    """``concurrency_limit`` is accepted and ignored, as in Prefect 3.9.1 (deprecated there)."""
    c = t.deployment.c
    flow_or_deployment_name = None
    if flt.flow_or_deployment_name is not None:
        sub: list[Clause] = []
        if flt.flow_or_deployment_name.like_:
            text = flt.flow_or_deployment_name.like_
            flow_names = select(t.flow.c.id).where(ilike_contains(t.flow.c.name, text))
            sub.append(or_(ilike_contains(c.name, text), c.flow_id.in_(flow_names)))
        flow_or_deployment_name = all_of(sub)
    paused = None
    if flt.paused is not None:
        paused = all_of([] if flt.paused.eq_ is None else [c.paused.is_(flt.paused.eq_)])
    return join_children(
        flt,
        [
            ids(c.id, flt.id),
            names(c.name, flt.name),
            flow_or_deployment_name,
            paused,
            tags(c.tags, flt.tags),
            names(c.work_queue_name, flt.work_queue_name),
        ],
    )


def work_pool_clause(flt: f.WorkPoolFilter) -> Clause:
    c = t.work_pool.c
    return join_children(flt, [ids(c.id, flt.id), names(c.name, flt.name), names(c.type, flt.type)])


def work_queue_clause(flt: f.WorkQueueFilter) -> Clause:
    c = t.work_queue.c
    name = None
    if flt.name is not None:
        sub: list[Clause] = []
        if flt.name.any_ is not None:
            sub.append(c.name.in_(flt.name.any_))
        if flt.name.startswith_:  # Prefect's empty ``or_()`` for [] filters nothing
            sub.append(or_(*(ilike_prefix(c.name, p) for p in flt.name.startswith_)))
        name = all_of(sub)
    return join_children(flt, [ids(c.id, flt.id), name])


def variable_clause(flt: f.VariableFilter) -> Clause:
    c = t.variable.c
    tag_test = None
    if flt.tags is not None:
        sub: list[Clause] = []
        if flt.tags.all_:
            sub.append(array_has_all(c.tags, flt.tags.all_))
        if flt.tags.is_null_ is not None:
            sub.append(is_empty_array(c.tags, flt.tags.is_null_))
        tag_test = combine(flt.tags.operator, sub)
    return join_children(flt, [ids(c.id, flt.id), names(c.name, flt.name), tag_test])


def _artifact_key(column: Any, flt: f.ArtifactFilterKey | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if flt.like_:
        out.append(ilike_contains(column, flt.like_))
    if flt.exists_ is not None:
        out.append(null_check(column, not flt.exists_))
    return all_of(out)


def artifact_clause(table: Table, flt: f.ArtifactFilter | f.ArtifactCollectionFilter) -> Clause:
    """An artifact filter on ``artifact``, or a latest-artifact filter on
    ``artifact_collection`` (the same conditions, with ``latest_id`` for ``id``)."""
    c = table.c
    own_id = (
        ids(c.id, flt.id) if isinstance(flt, f.ArtifactFilter) else ids(c.latest_id, flt.latest_id)
    )
    kind = None if flt.type is None else any_not_any(c.type, flt.type.any_, flt.type.not_any_)
    return join_children(
        flt,
        [
            own_id,
            _artifact_key(c.key, flt.key),
            ids(c.flow_run_id, flt.flow_run_id),
            ids(c.task_run_id, flt.task_run_id),
            kind,
        ],
    )


def _task_run_state_clause(flt: f.TaskRunFilterState | None) -> Clause | None:
    """As Prefect: a ``type``/``name`` child without ``any_`` is dropped (not TRUE)."""
    if flt is None:
        return None
    c = t.task_run.c
    sub: list[Clause] = []
    if flt.type is not None and flt.type.any_ is not None:
        sub.append(c.state_type.in_([s.value for s in flt.type.any_]))
    if flt.name is not None and flt.name.any_ is not None:
        sub.append(c.state_name.in_(flt.name.any_))
    return combine(flt.operator, sub)


def _task_run_flow_run_id(flt: f.TaskRunFilterFlowRunId | None) -> Clause | None:
    """Prefect's rules: ``is_null_`` true wins; false (the default) with no ``any_`` means
    "has a flow run"; otherwise ``any_``."""
    if flt is None:
        return None
    column = t.task_run.c.flow_run_id
    sub: list[Clause] = []
    if flt.is_null_ is True:
        sub.append(column.is_(None))
    elif flt.is_null_ is False and flt.any_ is None:
        sub.append(column.is_not(None))
    elif flt.any_ is not None:
        sub.append(column.in_(flt.any_))
    return combine(flt.operator, sub)


def _subflow_runs(flt: f.TaskRunFilterSubFlowRuns | None) -> Clause | None:
    if flt is None:
        return None
    if flt.exists_ is None:
        return true()
    is_parent = exists().where(t.flow_run.c.parent_task_run_id == t.task_run.c.id)
    return is_parent if flt.exists_ else ~is_parent


def task_run_clause(flt: f.TaskRunFilter) -> Clause:
    c = t.task_run.c
    tag_test = None
    if flt.tags is not None:
        sub: list[Clause] = []
        if flt.tags.all_:
            sub.append(array_has_all(c.tags, flt.tags.all_))
        if flt.tags.is_null_ is not None:
            sub.append(is_empty_array(c.tags, flt.tags.is_null_))
        tag_test = combine(flt.tags.operator, sub)
    return join_children(
        flt,
        [
            ids(c.id, flt.id),
            names(c.name, flt.name),
            tag_test,
            _task_run_state_clause(flt.state),
            window(c.start_time, flt.start_time),
            window(c.end_time, flt.end_time),
            window(c.expected_start_time, flt.expected_start_time),
            _subflow_runs(flt.subflow_runs),
            _task_run_flow_run_id(flt.flow_run_id),
        ],
    )
