"""Log filters to SQL, and the text-search conditions the log and event filters share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, true

from deputy.db import tables as t
from deputy.schemas import filters as f
from deputy.schemas.logs import LogFilter, LogSort, TextSearch
from deputy.text_search import parse

Clause = ColumnElement[bool]
_log = t.log.c


def text_search_conditions(searchable: Any, search: TextSearch) -> list[Clause]:
    """Prefect's text search over ``searchable`` (a text expression), as conditions to AND."""
    parsed = parse(search.query)
    lowered = func.lower(searchable)

    def contains(term: str) -> Clause:
        clause: Clause = lowered.contains(term.lower(), autoescape=True)
        return clause

    out: list[Clause] = []
    if parsed.include:
        out.append(or_(*(contains(term) for term in parsed.include)))
    out.extend(not_(contains(term)) for term in parsed.exclude)
    out.extend(contains(term) for term in parsed.required)
    return out


def log_filter_clause(flt: LogFilter | None) -> Clause:
    """One WHERE clause for a ``LogFilter``; its parts joined with its ``operator``."""
    if flt is None:
        return true()
    parts: list[Clause] = []
    if flt.level is not None:
        level = [
            *([_log.level >= flt.level.ge_] if flt.level.ge_ is not None else []),
            *([_log.level <= flt.level.le_] if flt.level.le_ is not None else []),
        ]
        parts.append(and_(true(), *level))
    if flt.timestamp is not None:
        window = [
            *([_log.timestamp <= flt.timestamp.before_] if flt.timestamp.before_ else []),
            *([_log.timestamp >= flt.timestamp.after_] if flt.timestamp.after_ else []),
        ]
        parts.append(and_(true(), *window))
    if flt.flow_run_id is not None:
        runs = flt.flow_run_id.any_
        parts.append(_log.flow_run_id.in_(runs) if runs is not None else true())
    if flt.task_run_id is not None:
        task = []
        if flt.task_run_id.any_ is not None:
            task.append(_log.task_run_id.in_(flt.task_run_id.any_))
        if flt.task_run_id.is_null_ is not None:
            task.append(
                _log.task_run_id.is_(None)
                if flt.task_run_id.is_null_
                else _log.task_run_id.is_not(None)
            )
        parts.append(and_(true(), *task))
    if flt.text is not None:
        parts.extend(text_search_conditions(_log.message + " " + _log.name, flt.text))
    if not parts:
        return true()
    return and_(*parts) if flt.operator == f.Operator.and_ else or_(*parts)


def log_order(sort: LogSort) -> list[Any]:
    """Prefect's sort by timestamp; ties broken by id (time-ordered), so pages are stable."""
    if sort == LogSort.TIMESTAMP_DESC:
        return [_log.timestamp.desc(), _log.id.desc()]
    return [_log.timestamp.asc(), _log.id.asc()]
