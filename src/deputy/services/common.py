"""Small helpers every service uses: the clock, page limits, ids, the answer of a write,
and state details as stored.

Services never read the clock: each request reads it once at its boundary (a route, the fast
path, a background loop, the event bus) and hands the reading down as ``now``."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deputy.errors import Unprocessable
from deputy.orchestration.states import Decision, Status

#: Largest page any filter endpoint returns, as Prefect's ``api.default_limit``.
MAX_PAGE_SIZE = 200


#: A clock: the app's is :func:`now`; tests give ``create_app`` a fixed one.
Clock = Callable[[], dt.datetime]


def now() -> dt.datetime:
    """The real clock (UTC), the app's default :data:`Clock`."""
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


@dataclass(frozen=True, slots=True)
class Answer:
    """A write's body, and whether it created something (201) or not (200): a run found by
    its idempotency key or natural key, a proposed state not written."""

    body: dict[str, Any]
    created: bool

    @property
    def status_code(self) -> int:
        return 201 if self.created else 200


def json_time(value: dt.datetime) -> str:
    """A UTC time as Prefect's JSON writes it, with ``Z``."""
    return value.isoformat().replace("+00:00", "Z")


def json_details(details: dict[str, Any]) -> dict[str, Any]:
    """State details as stored: datetimes as ISO text with ``Z``, UUIDs as text."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, dt.datetime):
            out[key] = json_time(value.astimezone(dt.UTC))
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def orchestration_result(decision: Decision, state: dict[str, Any] | None) -> dict[str, Any]:
    """set_state's body (Prefect's ``OrchestrationResult``) for a flow or task decision."""
    details: dict[str, Any]
    if decision.status == Status.ACCEPT:
        details = {"type": "accept_details"}
    elif decision.status == Status.WAIT:
        details = {
            "type": "wait_details",
            "delay_seconds": decision.delay_seconds,
            "reason": decision.reason,
        }
    elif decision.status == Status.ABORT:
        details = {"type": "abort_details", "reason": decision.reason}
    else:
        details = {"type": "reject_details", "reason": decision.reason}
    return {"state": state, "status": decision.status.value, "details": details}
