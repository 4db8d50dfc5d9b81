"""How domain errors become HTTP statuses and JSON bodies (and WebSocket denials)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from claudenest.errors import (
    AuthError,
    ClaudenestError,
    Conflict,
    Forbidden,
    Gone,
    InvalidField,
    LockConflict,
    NotFound,
    ProtocolError,
    RateLimited,
)

_STATUS: list[tuple[type[ClaudenestError], int, str]] = [
    (InvalidField, 422, "invalid_request"),
    (Forbidden, 403, "forbidden"),
    (AuthError, 401, "unauthorized"),
    (NotFound, 404, "not_found"),
    (Gone, 410, "gone"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "rate_limited"),
    (ProtocolError, 400, "bad_request"),
]


def status_for(exc: ClaudenestError) -> tuple[int, str]:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def error_response(status: int, code: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def domain_error_response(exc: ClaudenestError) -> JSONResponse:
    status, code = status_for(exc)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, InvalidField):
        return error_response(status, code, [{"field": exc.field, "message": exc.message}])
    if isinstance(exc, LockConflict):
        body = {"error": code, "detail": str(exc), "holder": exc.holder, "expires_at": exc.expires_at, "lock": exc.lock}
        return JSONResponse(body, status_code=status)
    return error_response(status, code, str(exc), headers)
