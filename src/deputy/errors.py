"""Domain errors, each knowing its HTTP status and Prefect's body shape.

Services raise these; one handler in ``deputy.app`` turns them into responses, so no
``HTTPException`` exists outside ``deputy.api``. Prefect 3.9.1 answers errors in three shapes,
and every class below states which one it uses::

    DeputyError                          (abstract)
    ├── DetailError                      {"detail": "<message>"}
    │   ├── BadRequest           400
    │   ├── Forbidden            403
    │   ├── NotFound             404
    │   ├── Conflict             409
    │   └── Unprocessable        422
    ├── ObjectNotFound           404     {"exception_message": "<message>"}
    └── ServiceUnavailable       503     {"exception_message": "Service Unavailable"}
                                         plus a Retry-After header

The fourth shape, request validation (422 ``{"exception_message": "Invalid request
received.", "exception_detail": [...], "request_body": ...}``), comes from pydantic and is
built in ``deputy.api.validation``.
"""

from __future__ import annotations

from typing import Any

INTEGRITY_CONFLICT = (
    "Data integrity conflict. This usually means a unique or foreign key constraint was "
    "violated. See server logs for details."
)


class DeputyError(Exception):
    """Base of every error deputy answers on purpose."""

    status_code: int = 500
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"exception_message": self.message}


class DetailError(DeputyError):
    """Prefect's ``HTTPException`` shape: ``{"detail": message}``."""

    def body(self) -> dict[str, Any]:
        return {"detail": self.message}


class BadRequest(DetailError):
    status_code = 400


class Forbidden(DetailError):
    status_code = 403


class NotFound(DetailError):
    status_code = 404


class Conflict(DetailError):
    status_code = 409


class Unprocessable(DetailError):
    status_code = 422


class ObjectNotFound(DeputyError):
    """Prefect's ``ObjectNotFoundError`` shape, used by set_state and a few others."""

    status_code = 404


class ServiceUnavailable(DeputyError):
    """A transient database failure: the client retries after ``Retry-After`` seconds."""

    status_code = 503

    def __init__(self, retry_after_seconds: int = 1) -> None:
        super().__init__("Service Unavailable")
        self.headers = {"Retry-After": str(retry_after_seconds)}


def integrity_conflict() -> Conflict:
    """The 409 Prefect answers when a unique or foreign key constraint is violated."""
    return Conflict(INTEGRITY_CONFLICT)
