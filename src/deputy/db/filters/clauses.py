"""The pieces every filter is built from: JSON-array and case-insensitive LIKE tests compiled
per dialect, and Prefect's rules for combining a filter object's conditions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, bindparam, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnClause
from sqlalchemy.types import Boolean

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
    return bindparam(None, value, unique=True)


def _json_text(values: Sequence[str]) -> str:
    try:
        return orjson.dumps(list(values)).decode()
    except orjson.JSONEncodeError:
        # A lone surrogate: written as an escape, which PostgreSQL refuses (a clear 422).
        return json.dumps(list(values))


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


def is_empty_array(column: Any, is_null: bool) -> Clause:
    """Prefect's ``is_null_`` on tags means "has no tags"."""
    empty = or_(column.is_(None), column == [])
    # == [] compares JSON text on SQLite and JSONB on PostgreSQL; both store '[]' for no tags.
    return empty if is_null else ~empty


# --- combining conditions, as Prefect does -------------------------------------------------
#
# Prefect builds every filter the same way, and so does deputy: a filter object's
# conditions become ONE clause; a filter without an ``operator`` ANDs its conditions, one with
# an ``operator`` joins them with it; a filter with no condition at all is TRUE. The parent
# then joins its children's clauses with its own operator, so ``{"operator": "or_", "name":
# {"any_": [...], "like_": "x"}}`` means "name in [...] AND name like x", and an empty child
# under ``or_`` matches everything, exactly as in Prefect 3.9.1.


def all_of(conditions: list[Clause]) -> Clause:
    """A plain filter object: its conditions ANDed; no condition is TRUE."""
    return and_(*conditions) if conditions else true()


def combine(operator: f.Operator, clauses: list[Clause]) -> Clause:
    """A filter object with an ``operator``: its clauses joined with it; none is TRUE."""
    if not clauses:
        return true()
    return and_(*clauses) if operator == f.Operator.and_ else or_(*clauses)


def join_children(flt: f._Combined, clauses: list[Clause | None]) -> Clause:
    """A parent filter: the clauses of the children that were given, joined by its operator."""
    return combine(flt.operator, [clause for clause in clauses if clause is not None])


def null_check(column: Any, is_null: bool) -> Clause:
    clause: Clause = column.is_(None) if is_null else column.is_not(None)
    return clause


def ids(column: Any, flt: f.IdAny | f.IdOnlyAny | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if isinstance(flt, f.IdAny) and flt.not_any_:
        out.append(column.not_in(flt.not_any_))
    return all_of(out)


def names(column: Any, flt: f.NameAnyLike | f.NameAny | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.any_ is not None:
        out.append(column.in_(flt.any_))
    if isinstance(flt, f.NameAnyLike) and flt.like_:
        out.append(ilike_contains(column, flt.like_))
    return all_of(out)


def any_not_any(column: Any, any_: Sequence[Any] | None, not_any_: Sequence[Any] | None) -> Clause:
    """``any_`` (an empty list matches nothing) and ``not_any_`` (plain SQL ``NOT IN``, so a
    NULL value never matches it, as in Prefect)."""
    out: list[Clause] = []
    if any_ is not None:
        out.append(column.in_(any_))
    if not_any_:
        out.append(column.not_in(not_any_))
    return all_of(out)


def tags(column: Any, flt: f.TagsAllNull | None) -> Clause | None:
    if flt is None:
        return None
    out: list[Clause] = []
    if flt.all_:
        out.append(array_has_all(column, flt.all_))
    if isinstance(flt, f.TagsAllAnyNull) and flt.any_ is not None:
        out.append(array_has_any(column, flt.any_))
    if flt.is_null_ is not None:
        out.append(is_empty_array(column, flt.is_null_))
    return combine(flt.operator, out)


def window(
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
        out.append(null_check(column if null_column is None else null_column, flt.is_null_))
    return all_of(out)


def nullable_any(column: Any, flt: Any) -> Clause | None:
    """An operator filter with ``any_`` and ``is_null_`` on one column."""
    if flt is None:
        return None
    sub: list[Clause] = []
    if flt.any_ is not None:
        sub.append(column.in_(flt.any_))
    if flt.is_null_ is not None:
        sub.append(null_check(column, flt.is_null_))
    return combine(flt.operator, sub)
