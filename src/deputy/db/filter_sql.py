"""Filter objects to SQL ``WHERE`` clauses, and the JSON-array tests they need per dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ColumnClause
from sqlalchemy.types import Boolean

from deputy.db import tables as t
from deputy.errors import Unprocessable
from deputy.schemas import filters as f

Clause = ColumnElement[bool]


# --- JSON arrays of strings ---------------------------------------------------------------


class _JsonArrayHas(ColumnElement[bool]):
    """True when the JSON array ``column`` holds all (or any) of ``values``."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, column: ColumnClause[Any], values: Sequence[str], mode: str) -> None:
        self.column = column
        self.values = list(values)
        self.mode = mode


@compiles(_JsonArrayHas, "sqlite")
def _sqlite_array_has(element: _JsonArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    tests = []
    for value in element.values:
        bound = compiler.process(_literal(value), **kw)
        tests.append(f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {bound})")
    joiner = " AND " if element.mode == "all" else " OR "
    return "(" + joiner.join(tests) + ")" if tests else ("1" if element.mode == "all" else "0")


@compiles(_JsonArrayHas, "postgresql")
def _postgres_array_has(element: _JsonArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    if element.mode == "all":
        bound = compiler.process(_literal(_json_text(element.values)), **kw)
        return f"({column} @> CAST({bound} AS JSONB))"
    tests = [
        f"({column} @> CAST({compiler.process(_literal(_json_text([v])), **kw)} AS JSONB))"
        for v in element.values
    ]
    return "(" + " OR ".join(tests) + ")" if tests else "false"


def _literal(value: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(None, value, unique=True)


def _json_text(values: Sequence[str]) -> str:
    import orjson

    return orjson.dumps(list(values)).decode()


def array_has_all(column: Any, values: Sequence[str]) -> Clause:
    return _JsonArrayHas(column, values, "all")


def array_has_any(column: Any, values: Sequence[str]) -> Clause:
    return _JsonArrayHas(column, values, "any")


def _is_empty_array(column: Any, is_null: bool) -> Clause:
    """Prefect's ``is_null_`` on tags means "has no tags"."""
    empty = or_(column.is_(None), column == [])
    # == [] compares JSON text on SQLite and JSONB on PostgreSQL; both store '[]' for no tags.
    return empty if is_null else ~empty


# --- shared pieces ------------------------------------------------------------------------


def _combine(operator: f.Operator, clauses: list[Clause]) -> Clause:
    if not clauses:
        return true()
    return and_(*clauses) if operator == f.Operator.and_ else or_(*clauses)


def _ids(column: Any, flt: f.IdAny | f.IdOnlyAny | None) -> list[Clause]:
    if flt is None:
        return []
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if isinstance(flt, f.IdAny) and flt.not_any_ is not None:
        out.append(column.not_in(flt.not_any_))
    return out


def _names(column: Any, flt: f.NameAnyLike | f.NameAny | None) -> list[Clause]:
    if flt is None:
        return []
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if isinstance(flt, f.NameAnyLike) and flt.like_ is not None:
        out.append(column.ilike(f"%{flt.like_}%"))
    return out


def _tags(column: Any, flt: f.TagsAllNull | None) -> list[Clause]:
    if flt is None:
        return []
    out: list[Clause] = []
    if flt.all_ is not None:
        out.append(array_has_all(column, flt.all_))
    if isinstance(flt, f.TagsAllAnyNull) and flt.any_ is not None:
        out.append(array_has_any(column, flt.any_))
    if flt.is_null_ is not None:
        out.append(_is_empty_array(column, flt.is_null_))
    return [_combine(flt.operator, out)] if out else []


def _window(column: Any, flt: f.TimeWindow | None) -> list[Clause]:
    if flt is None:
        return []
    out: list[Clause] = []
    if flt.before_ is not None:
        out.append(column <= flt.before_)
    if flt.after_ is not None:
        out.append(column >= flt.after_)
    if isinstance(flt, f.TimeWindowNullable) and flt.is_null_ is not None:
        out.append(column.is_(None) if flt.is_null_ else column.is_not(None))
    return out


# --- per object ---------------------------------------------------------------------------


def flow_clause(flt: f.FlowFilter) -> Clause:
    c = t.flow.c
    out = [*_ids(c.id, flt.id), *_names(c.name, flt.name), *_tags(c.tags, flt.tags)]
    if flt.deployment is not None and flt.deployment.is_null_ is not None:
        has_deployment = exists().where(t.deployment.c.flow_id == c.id)
        out.append(~has_deployment if flt.deployment.is_null_ else has_deployment)
    return _combine(flt.operator, out)


def flow_run_clause(flt: f.FlowRunFilter) -> Clause:
    c = t.flow_run.c
    out = [
        *_ids(c.id, flt.id),
        *_names(c.name, flt.name),
        *_tags(c.tags, flt.tags),
        *_window(c.start_time, flt.start_time),
        *_window(c.end_time, flt.end_time),
        *_window(c.expected_start_time, flt.expected_start_time),
        *_window(c.next_scheduled_start_time, flt.next_scheduled_start_time),
    ]
    if flt.deployment_id is not None:
        sub: list[Clause] = []
        if flt.deployment_id.any_ is not None:
            sub.append(c.deployment_id.in_(flt.deployment_id.any_))
        if flt.deployment_id.is_null_ is not None:
            sub.append(
                c.deployment_id.is_(None)
                if flt.deployment_id.is_null_
                else c.deployment_id.is_not(None)
            )
        out.append(_combine(flt.deployment_id.operator, sub))
    if flt.work_queue_name is not None:
        sub = []
        if flt.work_queue_name.any_ is not None:
            sub.append(c.work_queue_name.in_(flt.work_queue_name.any_))
        if flt.work_queue_name.is_null_ is not None:
            sub.append(
                c.work_queue_name.is_(None)
                if flt.work_queue_name.is_null_
                else c.work_queue_name.is_not(None)
            )
        out.append(_combine(flt.work_queue_name.operator, sub))
    if flt.state is not None:
        sub = []
        if flt.state.type is not None:
            if flt.state.type.any_ is not None:
                sub.append(c.state_type.in_([s.value for s in flt.state.type.any_]))
            if flt.state.type.not_any_ is not None:
                sub.append(
                    or_(
                        c.state_type.not_in([s.value for s in flt.state.type.not_any_]),
                        c.state_type.is_(None),
                    )
                )
        if flt.state.name is not None:
            if flt.state.name.any_ is not None:
                sub.append(c.state_name.in_(flt.state.name.any_))
            if flt.state.name.not_any_ is not None:
                sub.append(
                    or_(c.state_name.not_in(flt.state.name.not_any_), c.state_name.is_(None))
                )
        out.append(_combine(flt.state.operator, sub))
    if flt.flow_version is not None and flt.flow_version.any_ is not None:
        out.append(c.flow_version.in_(flt.flow_version.any_))
    if flt.parent_task_run_id is not None:
        sub = []
        if flt.parent_task_run_id.any_ is not None:
            sub.append(c.parent_task_run_id.in_(flt.parent_task_run_id.any_))
        if flt.parent_task_run_id.is_null_ is not None:
            sub.append(
                c.parent_task_run_id.is_(None)
                if flt.parent_task_run_id.is_null_
                else c.parent_task_run_id.is_not(None)
            )
        out.append(_combine(flt.parent_task_run_id.operator, sub))
    if flt.parent_flow_run_id is not None and flt.parent_flow_run_id.any_ is not None:
        parents = select(t.task_run.c.id).where(
            t.task_run.c.flow_run_id.in_(flt.parent_flow_run_id.any_)
        )
        out.append(c.parent_task_run_id.in_(parents))
    if flt.idempotency_key is not None:
        if flt.idempotency_key.any_ is not None:
            out.append(c.idempotency_key.in_(flt.idempotency_key.any_))
        if flt.idempotency_key.not_any_ is not None:
            out.append(
                or_(
                    c.idempotency_key.not_in(flt.idempotency_key.not_any_),
                    c.idempotency_key.is_(None),
                )
            )
    if flt.created_by is not None:
        out.append(_created_by_clause(flt.created_by))
    return _combine(flt.operator, out)


def _created_by_clause(flt: f.FlowRunFilterCreatedBy) -> Clause:
    column = t.flow_run.c.created_by
    sub: list[Clause] = []
    if flt.id_ is not None:
        sub.append(column["id"].as_string().in_([str(i) for i in flt.id_]))
    if flt.type_ is not None:
        sub.append(column["type"].as_string().in_(flt.type_))
    if flt.is_null_ is not None:
        sub.append(column.is_(None) if flt.is_null_ else column.is_not(None))
    return _combine(flt.operator, sub)


def deployment_clause(flt: f.DeploymentFilter) -> Clause:
    c = t.deployment.c
    out = [*_ids(c.id, flt.id), *_names(c.name, flt.name), *_tags(c.tags, flt.tags)]
    if flt.flow_or_deployment_name is not None and flt.flow_or_deployment_name.like_:
        pattern = f"%{flt.flow_or_deployment_name.like_}%"
        flow_names = select(t.flow.c.id).where(t.flow.c.name.ilike(pattern))
        out.append(or_(c.name.ilike(pattern), c.flow_id.in_(flow_names)))
    if flt.paused is not None and flt.paused.eq_ is not None:
        out.append(c.paused.is_(flt.paused.eq_))
    out.extend(_names(c.work_queue_name, flt.work_queue_name))
    if flt.concurrency_limit is not None:
        limit = (
            select(t.concurrency_limit_v2.c.limit)
            .where(t.concurrency_limit_v2.c.id == c.concurrency_limit_id)
            .scalar_subquery()
        )
        if flt.concurrency_limit.ge_ is not None:
            out.append(limit >= flt.concurrency_limit.ge_)
        if flt.concurrency_limit.le_ is not None:
            out.append(limit <= flt.concurrency_limit.le_)
        if flt.concurrency_limit.is_null_ is not None:
            out.append(
                c.concurrency_limit_id.is_(None)
                if flt.concurrency_limit.is_null_
                else c.concurrency_limit_id.is_not(None)
            )
    return _combine(flt.operator, out)


def work_pool_clause(flt: f.WorkPoolFilter) -> Clause:
    c = t.work_pool.c
    out = [*_ids(c.id, flt.id), *_names(c.name, flt.name), *_names(c.type, flt.type)]
    return _combine(flt.operator, out)


def work_queue_clause(flt: f.WorkQueueFilter) -> Clause:
    c = t.work_queue.c
    out = [*_ids(c.id, flt.id)]
    if flt.name is not None:
        if flt.name.any_ is not None:
            out.append(c.name.in_(flt.name.any_))
        if flt.name.startswith_ is not None:
            out.append(or_(*(c.name.ilike(f"{p}%") for p in flt.name.startswith_)))
    return _combine(flt.operator, out)


def variable_clause(flt: f.VariableFilter) -> Clause:
    c = t.variable.c
    out = [*_ids(c.id, flt.id), *_names(c.name, flt.name)]
    if flt.tags is not None:
        sub: list[Clause] = []
        if flt.tags.all_ is not None:
            sub.append(array_has_all(c.tags, flt.tags.all_))
        if flt.tags.is_null_ is not None:
            sub.append(_is_empty_array(c.tags, flt.tags.is_null_))
        out.append(_combine(flt.tags.operator, sub))
    return _combine(flt.operator, out)


def reject_task_run_filter(task_runs: dict[str, Any] | None) -> None:
    """Task runs are not stored yet: a task-run condition cannot be honoured, so say so."""
    if task_runs and any(v is not None for k, v in task_runs.items() if k != "operator"):
        raise Unprocessable("Filtering by task runs is not supported by this server yet.")


# --- combining related filters ------------------------------------------------------------


def flow_run_where(filters: f.RelatedFilters) -> list[Clause]:
    """Conditions on flow_run rows from every related filter the request carried."""
    reject_task_run_filter(filters.task_runs)
    run = t.flow_run.c
    where: list[Clause] = []
    if filters.flow_runs is not None:
        where.append(flow_run_clause(filters.flow_runs))
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


def flow_where(filters: f.RelatedFilters) -> list[Clause]:
    """Conditions on flow rows: the flow's own filter, or having matching runs/deployments."""
    reject_task_run_filter(filters.task_runs)
    where: list[Clause] = []
    if filters.flows is not None:
        where.append(flow_clause(filters.flows))
    run_filters = f.RelatedFilters(flow_runs=filters.flow_runs, work_pools=filters.work_pools)
    if filters.flow_runs is not None or filters.work_pools is not None:
        runs = select(t.flow_run.c.flow_id).where(*flow_run_where(run_filters))
        where.append(t.flow.c.id.in_(runs))
    if filters.deployments is not None:
        deployments = select(t.deployment.c.flow_id).where(deployment_clause(filters.deployments))
        where.append(t.flow.c.id.in_(deployments))
    return where


def deployment_where(filters: f.RelatedFilters) -> list[Clause]:
    """Conditions on deployment rows from the related filters."""
    reject_task_run_filter(filters.task_runs)
    d = t.deployment.c
    where: list[Clause] = []
    if filters.deployments is not None:
        where.append(deployment_clause(filters.deployments))
    if filters.flows is not None:
        where.append(d.flow_id.in_(select(t.flow.c.id).where(flow_clause(filters.flows))))
    if filters.flow_runs is not None:
        runs = select(t.flow_run.c.deployment_id).where(flow_run_clause(filters.flow_runs))
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


__all__ = [
    "ClauseElement",
    "array_has_all",
    "array_has_any",
    "deployment_where",
    "false",
    "flow_run_where",
    "flow_where",
    "variable_clause",
    "work_pool_clause",
    "work_queue_clause",
]
