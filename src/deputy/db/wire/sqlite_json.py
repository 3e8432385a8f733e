"""Wire values rendered by SQLite: JSON text built in C by SQLite's JSON functions.

The polls and the flow-run filter answer 200 runs of some forty values each. Even undecoded
(:mod:`deputy.db.wire.rows`), turning each value into its wire form one Python call at a time
was most of their cost. On SQLite the same text can be produced by the query itself:
``json_object(...)`` over expressions that write each column as orjson writes its decoded
value, so Python receives a few ready JSON fragments per row
(:mod:`deputy.db.wire.rendered_runs`).

==========  ================================================================================
column      expression
==========  ================================================================================
Timestamp   ``YYYY-MM-DD HH:MM:SS.ffffff`` (how :class:`~deputy.db.types.Timestamp` stores
            it) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, without the fraction when it is zero
JSON        ``json(text)``: the stored document, embedded as JSON (SQLite keeps numbers and
            strings as written)
Boolean     ``true`` or ``false``
String      as is
Integer     as is
==========  ================================================================================

Floats and UUIDs are left to Python. SQLite writes 15 significant digits where orjson writes
the shortest text that reads back exactly; and cutting a UUID's 32 stored digits into the
dashed form with a ``substr`` chain cost SQLite about twice what slicing costs Python. The
tests compare every answer made this way with the same answer built from decoded rows, byte
for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    case,
    func,
    literal_column,
    type_coerce,
)

from deputy.db.wire.rows import column_kind


def _text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """The column as the text SQLite holds (no bind or result processing)."""
    return type_coerce(column, String())


def wire_time(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A stored time as orjson writes the aware datetime (``OPT_UTC_Z``); NULL stays NULL.

    ``2026-01-02 03:04:05.120000`` becomes ``2026-01-02T03:04:05.120000Z``, and a zero
    fraction is dropped: ``.000000Z`` can only be the end of the text.
    """
    with_t = func.replace(
        _text(column), literal_column("' '"), literal_column("'T'"), type_=String()
    )
    return func.replace(
        with_t + literal_column("'Z'"),
        literal_column("'.000000Z'"),
        literal_column("'Z'"),
        type_=String(),
    )


def wire_json(column: ColumnElement[Any], *, default: str | None = None) -> ColumnElement[Any]:
    """The stored document, embedded as JSON by ``json_object``; NULL stays null, or is
    ``default`` (JSON text) when one is given."""
    text = _text(column)
    if default is not None:
        text = func.coalesce(text, literal_column(f"'{default}'"), type_=String())
    return func.json(text, type_=String())


def wire_string(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A text column as a JSON string (``null`` for NULL), outside any ``json_object``."""
    return func.json_quote(column, type_=String())


def wire_bool(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """0 or 1 as JSON ``false`` or ``true``."""
    return func.json(
        case(
            (type_coerce(column, Integer()) != literal_column("0"), literal_column("'true'")),
            else_=literal_column("'false'"),
        ),
        type_=String(),
    )


_RENDER = {"timestamp": wire_time, "json": wire_json, "bool": wire_bool}


def wire_value(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The column written as its wire value, chosen by its type. Floats and UUIDs are
    refused: they are left to Python (see the module's documentation)."""
    kind = column_kind(column.type)
    if kind == "uuid" or isinstance(column.type, Float):
        raise TypeError(f"left to Python, not written by SQLite: {column!r}")
    render = _RENDER.get(kind)
    return render(column) if render is not None else column


def json_object(fields: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[str]:
    """``json_object('key', value, ...)``: one JSON object, keys in the order given."""
    arguments: list[ColumnElement[Any]] = []
    for key, value in fields:
        if not key.isidentifier():
            raise ValueError(f"not a plain key: {key!r}")
        arguments += [literal_column(f"'{key}'"), value]
    return func.json_object(*arguments, type_=String())
