"""Prefect's 422 envelope for request validation errors."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

from deputy.api.responses import JSONResponse
from deputy.schemas.filters import FilterBody


def validation_error_body(errors: Any, body: Any) -> dict[str, Any]:
    encoded: dict[str, Any] = jsonable_encoder(
        {
            "exception_message": "Invalid request received.",
            "exception_detail": errors,
            "request_body": body,
        }
    )
    return encoded


async def request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if _takes_separate_body_keys(request):
        errors = [_as_separate_parameter(error) for error in errors]
    return JSONResponse(validation_error_body(errors, exc.body), status_code=422)


def _takes_separate_body_keys(request: Request) -> bool:
    """Whether the route's body is one whose top-level keys Prefect declares as separate
    body parameters (a :class:`FilterBody`)."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    if body_field is None:
        return False
    return any(
        isinstance(kind, type) and issubclass(kind, FilterBody)
        for kind in (body_field.field_info.annotation, *get_args(body_field.field_info.annotation))
    )


def _as_separate_parameter(error: Any) -> Any:
    """A missing top-level key as FastAPI reports a missing body parameter: its ``input`` is
    ``null``, not the whole body pydantic saw."""
    loc = error.get("loc", ())
    if error.get("type") == "missing" and len(loc) == 2 and loc[0] == "body":
        return {**error, "input": None}
    return error
