"""Prefect's 422 envelope for request validation errors."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

from deputy.api.responses import JSONResponse


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
    return JSONResponse(validation_error_body(exc.errors(), exc.body), status_code=422)
