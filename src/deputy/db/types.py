"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

UTC = dt.UTC


class Timestamp(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime.

    PostgreSQL stores ``timestamptz``. SQLite stores naive UTC text in one fixed format, so
    text order is time order and indexes on these columns sort correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = (
            dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        )  # text arrives from func.* expressions on SQLite
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class JsonDocument(TypeDecorator[Any]):
    """JSON text on SQLite, JSONB on PostgreSQL.

    A decorator rather than ``JSON().with_variant(JSONB())`` so that the PostgreSQL dialect,
    over 2 MiB of memory, is imported only by a server that uses it.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, *, none_as_null: bool = False) -> None:
        super().__init__(none_as_null=none_as_null)
        self.none_as_null = none_as_null

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=self.none_as_null))
        return dialect.type_descriptor(JSON(none_as_null=self.none_as_null))


def json_type(*, nullable: bool = False) -> TypeEngine[Any]:
    """A JSON document column; ``None`` is SQL NULL when ``nullable``."""
    return JsonDocument(none_as_null=nullable)


#: Every digit as ``0``, so that 19 digits in a row are found as ``0`` * 19.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def has_long_number(document: bytes) -> bool:
    """Whether 19 digits follow each other: maybe an integer beyond 64 bits, which orjson
    reads as a float. (Translating then finding is about ten times faster than a regex.)"""
    return _NINETEEN_DIGITS in document.translate(_DIGITS_AS_ZERO)


def read_json(text: str) -> Any:
    """A JSON column's text as Python values, integers beyond 64 bits exact.

    orjson when it reads the text exactly; the standard library for text with a long run of
    digits (orjson turns such integers into floats) or that orjson refuses. Such documents
    were written by the standard library too (see ``_json_serializer`` in engine.py).
    """
    if not has_long_number(text.encode()):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)
