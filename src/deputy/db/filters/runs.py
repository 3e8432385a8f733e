"""Filter objects to SQL ``WHERE`` clauses, and the JSON-array tests they need per dialect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, exists, false, func, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ColumnClause
from sqlalchemy.types import Boolean

from deputy.db import tables as t
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


# --- case-insensitive LIKE ----------------------------------------------------------------

#: Longer patterns are matched as plain text on SQLite, whose LIKE refuses patterns over
#: 50,000 bytes ("pattern too complex"); 10,000 characters stay under it in any encoding.
_SQLITE_LIKE_LIMIT = 10_000


class _ILike(ColumnElement[bool]):
    """``column ILIKE '%text%'`` (``contains``) or ``'text%'`` (prefix), like Prefect's
    ``ilike``: ``%`` and ``_`` in the text stay wildcards."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, column: Any, text: str, *, prefix: bool) -> None:
        self.column = column
        self.text = text
        self.prefix = prefix

    def pattern(self) -> str:
        return f"{self.text}%" if self.prefix else f"%{self.text}%"


@compiles(_ILike)
def _default_ilike(element: _ILike, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.ilike(element.pattern()), **kw)


@compiles(_ILike, "sqlite")
def _sqlite_ilike(element: _ILike, compiler: SQLCompiler, **kw: Any) -> str:
    if len(element.text) <= _SQLITE_LIKE_LIMIT:
        return compiler.process(element.column.ilike(element.pattern()), **kw)
    column = compiler.process(element.column, **kw)
    bound = compiler.process(_literal(element.text), **kw)
    found = f"instr(lower({column}), lower({bound}))"
    return f"({found} = 1)" if element.prefix else f"({found} > 0)"


def ilike_contains(column: Any, text: str) -> Clause:
    return _ILike(column, text, prefix=False)


def ilike_prefix(column: Any, text: str) -> Clause:
    return _ILike(column, text, prefix=True)


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
#
# Prefect builds every filter the same way, and so does this module: a filter object's
# conditions become ONE clause; a filter without an ``operator`` ANDs its conditions, one with
# an ``operator`` joins them with it; a filter with no condition at all is TRUE. The parent
# then joins its children's clauses with its own operator, so ``{"operator": "or_", "name":
# {"any_": [...], "like_": "x"}}`` means "name in [...] AND name like x", and an empty child
# under ``or_`` matches everything, exactly as in Prefect 3.9.1.


def _all(conditions: list[Clause]) -> Clause:
    """A plain filter object: its conditions ANDed; no condition is TRUE."""
    return and_(*conditions) if conditions else true()


def _combine(operator: f.Operator, clauses: list[Clause]) -> Clause:
    """A filter object with an ``operator``: its clauses joined with it; none is TRUE."""
    if not clauses:
        return true()
    return and_(*clauses) if operator == f.Operator.and_ else or_(*clauses)


def _children(flt: f._Combined, clauses: list[Clause | None]) -> Clause:
    """A parent filter: the clauses of the children that were given, joined by its operator."""
    return _combine(flt.operator, [clause for clause in clauses if clause is not None])


def _null(column: Any, is_null: bool) -> Clause:
    clause: Clause = column.is_(None) if is_null else column.is_not(None)
    return clause


def _ids(column: Any, flt: f.IdAny | f.IdOnlyAny | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if isinstance(flt, f.IdAny) and flt.not_any_:
        out.append(column.not_in(flt.not_any_))
    return _all(out)


def _names(column: Any, flt: f.NameAnyLike | f.NameAny | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if isinstance(flt, f.NameAnyLike) and flt.like_:
        out.append(ilike_contains(column, flt.like_))
    return _all(out)


def _any_not_any(column: Any, any_: Sequence[Any] | None, not_any_: Sequence[Any] | None) -> Clause:
    """``any_`` (an empty list matches nothing) and ``not_any_`` (plain SQL ``NOT IN``, so a
    NULL value never matches it, as in Prefect)."""
    out: list[Clause] = []
    if any_ is not None:
        out.append(column.in_(any_))
    if not_any_:
        out.append(column.not_in(not_any_))
    return _all(out)


def _tags(column: Any, flt: f.TagsAllNull | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.all_:
        out.append(array_has_all(column, flt.all_))
    if isinstance(flt, f.TagsAllAnyNull) and flt.any_ is not None:
        out.append(array_has_any(column, flt.any_))
    if flt.is_null_ is not None:
        out.append(_is_empty_array(column, flt.is_null_))
    return _combine(flt.operator, out)


def _window(
    column: Any, flt: f.TimeWindow | None, *, compared: Any = None, null_column: Any = None
) -> Clause | None:
    """``before_``/``after_`` (inclusive) on ``compared`` (default: the column itself), and
    ``is_null_`` on ``null_column`` (default: the column)."""
    if flt is None:
        return None
    compared = column if compared is None else compared
    out: list[Clause] = []
    if flt.before_ is not None:
        out.append(compared <= flt.before_)
    if flt.after_ is not None:
        out.append(compared >= flt.after_)
    if isinstance(flt, f.TimeWindowNullable) and flt.is_null_ is not None:
        out.append(_null(column if null_column is None else null_column, flt.is_null_))
    return _all(out)


# --- per object ---------------------------------------------------------------------------


def flow_clause(flt: f.FlowFilter) -> Clause:
    c = t.flow.c
    deployment = None
    if flt.deployment is not None:
        sub: list[Clause] = []
        if flt.deployment.is_null_ is not None:
            has_deployment = exists().where(t.deployment.c.flow_id == c.id)
            sub.append(~has_deployment if flt.deployment.is_null_ else has_deployment)
        deployment = _combine(flt.deployment.operator, sub)
    return _children(
        flt, [_ids(c.id, flt.id), deployment, _names(c.name, flt.name), _tags(c.tags, flt.tags)]
    )


def _nullable_any(column: Any, flt: Any) -> Clause | None:
    """An operator filter with ``any_`` and ``is_null_`` on one column."""
    if flt is None:
        return None
    sub: list[Clause] = []
    if flt.any_ is not None:
        sub.append(column.in_(flt.any_))
    if flt.is_null_ is not None:
        sub.append(_null(column, flt.is_null_))
    return _combine(flt.operator, sub)


def _state_clause(flt: f.FlowRunFilterState | None) -> Clause | None:
    """Prefect drops a state ``type``/``name`` child that has no condition (instead of TRUE)."""
    if flt is None:
        return None
    c = t.flow_run.c
    sub: list[Clause] = []
    if flt.type is not None and (flt.type.any_ is not None or flt.type.not_any_):
        any_ = None if flt.type.any_ is None else [s.value for s in flt.type.any_]
        not_any = [s.value for s in flt.type.not_any_ or []]
        sub.append(_any_not_any(c.state_type, any_, not_any))
    if flt.name is not None and (flt.name.any_ is not None or flt.name.not_any_):
        sub.append(_any_not_any(c.state_name, flt.name.any_, flt.name.not_any_))
    return _combine(flt.operator, sub)


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
        parent_flow_run = _combine(flt.parent_flow_run_id.operator, sub)
    idempotency_key = None
    if flt.idempotency_key is not None:
        idempotency_key = _any_not_any(
            c.idempotency_key, flt.idempotency_key.any_, flt.idempotency_key.not_any_
        )
    flow_version = None
    if flt.flow_version is not None:
        flow_version = _any_not_any(c.flow_version, flt.flow_version.any_, None)
    return _children(
        flt,
        [
            _ids(c.id, flt.id),
            _names(c.name, flt.name),
            _tags(c.tags, flt.tags),
            _nullable_any(c.deployment_id, flt.deployment_id),
            _nullable_any(c.work_queue_name, flt.work_queue_name),
            flow_version,
            _state_clause(flt.state),
            # Prefect compares start_time windows on COALESCE(start_time, expected_start_time).
            _window(
                c.start_time,
                flt.start_time,
                compared=func.coalesce(c.start_time, c.expected_start_time),
            ),
            _window(c.end_time, flt.end_time),
            _window(c.expected_start_time, flt.expected_start_time),
            _window(c.next_scheduled_start_time, flt.next_scheduled_start_time),
            parent_flow_run,
            _nullable_any(c.parent_task_run_id, flt.parent_task_run_id),
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
        sub.append(_null(column, flt.is_null_))
    return _combine(flt.operator, sub)


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
        flow_or_deployment_name = _all(sub)
    paused = None
    if flt.paused is not None:
        paused = _all([] if flt.paused.eq_ is None else [c.paused.is_(flt.paused.eq_)])
    return _children(
        flt,
        [
            _ids(c.id, flt.id),
            _names(c.name, flt.name),
            flow_or_deployment_name,
            paused,
            _tags(c.tags, flt.tags),
            _names(c.work_queue_name, flt.work_queue_name),
        ],
    )


def work_pool_clause(flt: f.WorkPoolFilter) -> Clause:
    c = t.work_pool.c
    return _children(flt, [_ids(c.id, flt.id), _names(c.name, flt.name), _names(c.type, flt.type)])


def work_queue_clause(flt: f.WorkQueueFilter) -> Clause:
    c = t.work_queue.c
    name = None
    if flt.name is not None:
        sub: list[Clause] = []
        if flt.name.any_ is not None:
            sub.append(c.name.in_(flt.name.any_))
        if flt.name.startswith_:  # Prefect's empty ``or_()`` for [] filters nothing
            sub.append(or_(*(ilike_prefix(c.name, p) for p in flt.name.startswith_)))
        name = _all(sub)
    return _children(flt, [_ids(c.id, flt.id), name])


def variable_clause(flt: f.VariableFilter) -> Clause:
    c = t.variable.c
    tags = None
    if flt.tags is not None:
        sub: list[Clause] = []
        if flt.tags.all_:
            sub.append(array_has_all(c.tags, flt.tags.all_))
        if flt.tags.is_null_ is not None:
            sub.append(_is_empty_array(c.tags, flt.tags.is_null_))
        tags = _combine(flt.tags.operator, sub)
    return _children(flt, [_ids(c.id, flt.id), _names(c.name, flt.name), tags])


def _artifact_key(column: Any, flt: f.ArtifactFilterKey | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if flt.like_:
        out.append(ilike_contains(column, flt.like_))
    if flt.exists_ is not None:
        out.append(_null(column, not flt.exists_))
    return _all(out)


def artifact_clause(table: Table, flt: f.ArtifactFilter | f.ArtifactCollectionFilter) -> Clause:
    """An artifact filter on ``artifact``, or a latest-artifact filter on
    ``artifact_collection`` (the same conditions, with ``latest_id`` for ``id``)."""
    c = table.c
    own_id = (
        _ids(c.id, flt.id)
        if isinstance(flt, f.ArtifactFilter)
        else _ids(c.latest_id, flt.latest_id)
    )
    kind = None if flt.type is None else _any_not_any(c.type, flt.type.any_, flt.type.not_any_)
    return _children(
        flt,
        [
            own_id,
            _artifact_key(c.key, flt.key),
            _ids(c.flow_run_id, flt.flow_run_id),
            _ids(c.task_run_id, flt.task_run_id),
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
    return _combine(flt.operator, sub)


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
    return _combine(flt.operator, sub)


def _subflow_runs(flt: f.TaskRunFilterSubFlowRuns | None) -> Clause | None:
    if flt is None:
        return None
    if flt.exists_ is None:
        return true()
    is_parent = exists().where(t.flow_run.c.parent_task_run_id == t.task_run.c.id)
    return is_parent if flt.exists_ else ~is_parent


def task_run_clause(flt: f.TaskRunFilter) -> Clause:
    c = t.task_run.c
    tags = None
    if flt.tags is not None:
        sub: list[Clause] = []
        if flt.tags.all_:
            sub.append(array_has_all(c.tags, flt.tags.all_))
        if flt.tags.is_null_ is not None:
            sub.append(_is_empty_array(c.tags, flt.tags.is_null_))
        tags = _combine(flt.tags.operator, sub)
    return _children(
        flt,
        [
            _ids(c.id, flt.id),
            _names(c.name, flt.name),
            tags,
            _task_run_state_clause(flt.state),
            _window(c.start_time, flt.start_time),
            _window(c.end_time, flt.end_time),
            _window(c.expected_start_time, flt.expected_start_time),
            _subflow_runs(flt.subflow_runs),
            _task_run_flow_run_id(flt.flow_run_id),
        ],
    )


def _has_matching_task_run(flt: f.TaskRunFilter) -> Clause:
    """A flow run with at least one task run matching ``flt`` (``{}``: any task run)."""
    return exists().where(t.task_run.c.flow_run_id == t.flow_run.c.id, task_run_clause(flt))


# --- combining related filters ------------------------------------------------------------


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


__all__ = [
    "ClauseElement",
    "array_has_all",
    "array_has_any",
    "artifact_clause",
    "artifact_where",
    "deployment_where",
    "false",
    "flow_run_where",
    "flow_where",
    "task_run_clause",
    "task_run_where",
    "variable_clause",
    "work_pool_clause",
    "work_queue_clause",
]
