"""Small helpers every service uses: the clock, page limits, and row-or-404."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from typing import Any

from deputy.errors import Unprocessable

#: Largest page any filter endpoint returns, as Prefect's ``api.default_limit``.
MAX_PAGE_SIZE = 200


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def page_limit(limit: int | None) -> int:
    """The limit to apply: the default page when missing, refused above the maximum."""
    if limit is None:
        return MAX_PAGE_SIZE
    if limit > MAX_PAGE_SIZE:
        raise Unprocessable(f"Invalid limit: must be less than or equal to {MAX_PAGE_SIZE}.")
    if limit < 0:
        raise Unprocessable("Invalid limit: must be greater than or equal to 0.")
    return limit


def pages(count: int, limit: int) -> int:
    return (count + limit - 1) // limit if limit else 0


def pagination(results: list[Any], count: int, limit: int, page: int) -> dict[str, Any]:
    return {
        "results": results,
        "count": count,
        "limit": limit,
        "pages": pages(count, limit),
        "page": page,
    }


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7), as Prefect gives states, so ids sort by creation."""
    unix_ms = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((random_bits >> 62) & 0xFFF) << 64
    value |= 0b10 << 62  # variant
    value |= random_bits & ((1 << 62) - 1)
    return uuid.UUID(int=value)
