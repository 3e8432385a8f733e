"""Rows read only to be answered: the driver's values turned straight into wire values.

The hot read endpoints (the worker and Runner polls, the flow-run filter and read) answer up
to 200 runs of some forty columns each. Decoded as usual, SQLAlchemy turns every UUID, time and JSON
document into Python objects, and orjson turns them back into text a moment later: under load
that round trip was most of the server's time. A :class:`WireSelect` selects the same columns
as ``NullType`` (no result processing) and turns what the driver hands back into the values
orjson writes exactly as it wrote the decoded ones. (On SQLite those endpoints go one step
further: :meth:`WireSelect.rendered` has the query write most of the JSON itself, see
:mod:`deputy.db.wire.sqlite_json`.)

=========  =============================================  ===================================
column     SQLite (sqlite3)                               PostgreSQL (asyncpg)
=========  =============================================  ===================================
Uuid       32 hex digits: dashed by slicing               asyncpg's UUID: ``str()``
Timestamp  naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``: aware UTC datetime, left to orjson
           ``T``, ``Z``, no fraction when it is zero
JSON       text: an ``orjson.Fragment``, written as is    decoded by the driver, left as is
           (bare numbers arrive as numbers, left as is)
Boolean    0 or 1: ``bool``                               bool
=========  =============================================  ===================================

PostgreSQL's JSON stays decoded: its text is JSONB's (spaces after ``:`` and ``,``), which
would change the answer's bytes. A JSON column the wire builders compute with (they merge
state details and policies with defaults) is named in ``parsed`` and read as Python values.

The rows are dicts with the same keys as the decoded rows, so one wire builder serves both;
times it computes with (the estimates) arrive as text on SQLite and are parsed there.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Float,
    Integer,
    Label,
    Select,
    String,
    Uuid,
    type_coerce,
)
from sqlalchemy.types import NullType, TypeEngine

from deputy.db.types import JsonDocument, Timestamp, read_json

if TYPE_CHECKING:
    from deputy.db.connection import Connection

#: Off, rows are decoded by SQLAlchemy as everywhere else: the reference the wire rows are
#: tested against, and a way to rule them out when something looks wrong.
ENABLED = True

Converter = Callable[[Any], Any]
Refinement = Callable[[Select[Any]], Select[Any]]


# --- SQLite ----------------------------------------------------------------------------------


def sqlite_uuid(value: str) -> str:
    """SQLAlchemy stores a Uuid as 32 lowercase hex digits; the wire has the dashed form."""
    if len(value) != 32:
        return str(uuid.UUID(value))
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def _sqlite_timestamp(value: str) -> str:
    """``2026-01-01 12:00:00.500000`` as orjson writes the aware datetime (``OPT_UTC_Z``):
    ``2026-01-01T12:00:00.500000Z``, and ``2026-01-01T12:00:00Z`` when the fraction is zero.

    That is the form :class:`~deputy.db.types.Timestamp` stores; any other text is parsed and
    written by orjson itself.
    """
    if len(value) == 26 and value[10] == " ":
        return value.replace(" ", "T").removesuffix(".000000") + "Z"
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return orjson.dumps(moment.astimezone(dt.UTC), option=orjson.OPT_UTC_Z)[1:-1].decode()


def _sqlite_json(value: Any) -> Any:
    """JSON text as a fragment orjson copies into the answer. Bare numbers were converted by
    the column's NUMERIC affinity and are answered as they are, as the decoded path does."""
    return orjson.Fragment(value) if isinstance(value, str) else value


def sqlite_parsed_json(value: Any) -> Any:
    """A JSON column's text as Python values; a bare number (NUMERIC affinity) as is."""
    return read_json(value) if isinstance(value, str) else value


_SQLITE: dict[str, Converter | None] = {
    "uuid": sqlite_uuid,
    "timestamp": _sqlite_timestamp,
    "json": _sqlite_json,
    "parsed_json": sqlite_parsed_json,
    "bool": bool,
    "plain": None,
}

# --- PostgreSQL ------------------------------------------------------------------------------

_POSTGRES: dict[str, Converter | None] = {
    "uuid": str,  # orjson does not know asyncpg's UUID class
    "timestamp": None,
    "json": None,
    "parsed_json": None,
    "bool": None,
    "plain": None,
}

_CONVERTERS = {"sqlite": _SQLITE, "postgresql": _POSTGRES}


def column_kind(type_: TypeEngine[Any]) -> str:
    """How a column's driver value becomes its wire value: one of ``timestamp``, ``uuid``,
    ``json``, ``bool`` or ``plain``."""
    # Timestamp before anything else: it is a TypeDecorator, not one of the types below.
    if isinstance(type_, Timestamp):
        return "timestamp"
    if isinstance(type_, Uuid):
        return "uuid"
    if isinstance(type_, (JSON, JsonDocument)):
        return "json"
    if isinstance(type_, Boolean):
        return "bool"
    if isinstance(type_, (String, Integer, Float)):
        return "plain"  # no result processing on either driver
    raise TypeError(f"no wire conversion for a {type_!r} column")


def _undecoded(column: ColumnElement[Any], key: str) -> Label[Any]:
    """The column as the driver hands it back (no result processing), under its key."""
    inner = column.element if isinstance(column, Label) else column
    return type_coerce(inner, NullType()).label(key)


class WireSelect:
    """A SELECT whose rows are answered as read: see the module's documentation.

    Built once from the columns (``select(...)``, its FROM clause optional); the rest of the
    statement is added by :meth:`refined`. ``parsed`` names JSON columns (by their key in the
    result) read as Python values because the wire builder computes with them.
    """

    def __init__(self, query: Select[Any], *, parsed: Collection[str] = ()) -> None:
        columns = list(query.selected_columns.items())
        unknown = set(parsed) - {key for key, _ in columns}
        if unknown:
            raise ValueError(f"parsed names no selected column: {sorted(unknown)}")
        raw_columns = [_undecoded(column, key) for key, column in columns]
        self.raw: Select[Any] = query.with_only_columns(*raw_columns)
        self._decoded = query
        self._refinements: tuple[Refinement, ...] = ()
        self._keys = tuple(key for key, _ in columns)
        self._kinds = tuple(
            (key, "parsed_json" if kind == "json" and key in parsed else kind)
            for key, kind in ((key, column_kind(column.type)) for key, column in columns)
        )
        self._converters: dict[str, list[tuple[str, Converter]]] = {}  # shared by refinements
        self._rendered_bases: dict[Callable[..., Any], Select[Any]] = {}  # likewise

    def refined(self, refinement: Refinement) -> WireSelect:
        """The same columns with the FROM, WHERE, ORDER BY... clauses ``refinement`` adds.

        ``refinement`` receives the raw SELECT (and the decoded one when :data:`ENABLED` is
        off), so it must name tables' columns, not the SELECT's.
        """
        refined = copy.copy(self)
        refined.raw = refinement(self.raw)
        refined._refinements = (*self._refinements, refinement)
        return refined

    def rendered(self, columns: Callable[[Mapping[str, Any]], Sequence[Any]]) -> Select[Any]:
        """The same statement with other columns, built by ``columns`` from the selected
        ones (by key): for answers SQLite renders itself (:mod:`deputy.db.wire.sqlite_json`).

        The columns are built once per ``columns`` function (refinements share them): they
        are dozens of expressions, dearer to build than the clauses a request adds.
        """
        query = self._rendered_bases.get(columns)
        if query is None:
            selected = dict(self._decoded.selected_columns.items())
            query = self._decoded.with_only_columns(*columns(selected))
            self._rendered_bases[columns] = query
        for refinement in self._refinements:
            query = refinement(query)
        return query

    @property
    def decoded(self) -> Select[Any]:
        """The statement with its columns decoded by SQLAlchemy, as everywhere else."""
        query = self._decoded
        for refinement in self._refinements:
            query = refinement(query)
        return query

    def _converters_for(self, dialect: str) -> list[tuple[str, Converter]]:
        converters = self._converters.get(dialect)
        if converters is None:
            table = _CONVERTERS[dialect]
            converters = [
                (key, convert) for key, kind in self._kinds if (convert := table[kind]) is not None
            ]
            self._converters[dialect] = converters
        return converters

    async def rows(
        self, conn: Connection, parameters: Mapping[str, Any] | None = None
    ) -> list[Mapping[str, Any]]:
        """The rows as mappings of wire values (decoded values when :data:`ENABLED` is off)."""
        if not ENABLED:
            result = await conn.execute(self.decoded, parameters)
            return [dict(row._mapping) for row in result]
        keys = self._keys
        converters = self._converters_for(conn.dialect.name)
        rows: list[Mapping[str, Any]] = []
        for row in (await conn.execute(self.raw, parameters)).all():
            values = dict(zip(keys, row, strict=True))
            for key, convert in converters:
                value = values[key]
                if value is not None:
                    values[key] = convert(value)
            rows.append(values)
        return rows
