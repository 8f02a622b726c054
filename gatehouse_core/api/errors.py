"""The one place that turns an error into OpenAI's error shape and an honest status code.

Every error answer is `{"error": {"message", "type", "code", ...}}`; validation errors add
`fields` (field → message), gateway failures add `attempts`. Messages are GateHouse's own
(they say what to do) and pass the key scrubber once more; no traceback reaches a client.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AllProvidersFailed,
    BudgetExceeded,
    ConfigError,
    DatabaseUnavailable,
    GatehouseError,
    GatewayError,
    InvalidRequest,
    NotFound,
    RateLimited,
    ReadOnlyProvider,
    SecretsError,
    StreamInterrupted,
    ValidationError,
)
from ..telemetry import scrub
from ..tokens import TokenError, TokenForbidden, TokenRateLimited

log = logging.getLogger("gatehouse.api")

REQUEST_ID_HEADER = "X-GateHouse-Request-Id"
PROVIDER_HEADER = "X-GateHouse-Provider"

# (exception class, HTTP status, OpenAI error type, code); the first match wins.
ERROR_TABLE: tuple[tuple[type[Exception], int, str, str], ...] = (
    (TokenError, 401, "authentication_error", "invalid_token"),
    (TokenForbidden, 403, "permission_error", "forbidden"),
    (BudgetExceeded, 402, "insufficient_quota", "budget_exceeded"),
    (TokenRateLimited, 429, "rate_limit_error", "token_rate_limited"),
    (RateLimited, 429, "rate_limit_error", "rate_limited"),
    (InvalidRequest, 400, "invalid_request_error", "invalid_request"),
    (StreamInterrupted, 502, "api_error", "stream_interrupted"),
    (AllProvidersFailed, 502, "api_error", "all_providers_failed"),
    (GatewayError, 502, "api_error", "gateway_error"),
    (ValidationError, 422, "invalid_request_error", "validation_error"),
    (NotFound, 404, "invalid_request_error", "not_found"),
    (ReadOnlyProvider, 409, "invalid_request_error", "read_only"),
    (ConfigError, 400, "invalid_request_error", "invalid_request"),
    (DatabaseUnavailable, 503, "api_error", "database_unavailable"),
    (SecretsError, 503, "api_error", "secrets_unavailable"),
    (GatehouseError, 500, "api_error", "internal_error"),
)


def error_body(message: str, type: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"message": scrub(message), "type": type, "code": code, **extra}}


def error_response(
    status: int,
    message: str,
    type: str,
    code: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, type, code, **extra), status_code=status, headers=headers
    )


def describe(
    exc: Exception, *, retry_after: float = 1.0
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) for any exception; used for plain answers and SSE error events."""
    match = next((row for row in ERROR_TABLE if isinstance(exc, row[0])), None)
    if match is None:
        log.error("unexpected error in the HTTP API", exc_info=exc)
        return (
            500,
            error_body(
                f"Internal error ({type(exc).__name__}); the server log has the details.",
                "server_error",
                "internal_error",
            ),
            {},
        )
    _, status, kind, code = match
    code = getattr(exc, "code", None) or code
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        extra["fields"] = {k: scrub(v) for k, v in exc.errors.items()}
    if isinstance(exc, GatewayError):
        extra["attempts"] = [_attempt(a) for a in exc.attempts]
        if exc.request_id:
            headers[REQUEST_ID_HEADER] = exc.request_id
        if exc.attempts:
            headers[PROVIDER_HEADER] = exc.attempts[-1].provider
        if isinstance(exc, AllProvidersFailed) and all(
            a.status == "rejected" for a in exc.attempts
        ):
            status = 503  # nothing was sent upstream: no provider, no keys, no rate-limit slot
    if isinstance(exc, TokenRateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if isinstance(exc, TokenError):
        headers["WWW-Authenticate"] = "Bearer"
    return status, error_body(str(exc), kind, code, **extra), headers


def _attempt(a: Any) -> dict[str, Any]:
    data = a.to_json()
    if data.get("error_message"):
        data["error_message"] = scrub(data["error_message"])
    return data


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the OpenAI shape."""

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        queue_timeout = getattr(getattr(request.app.state, "gatehouse", None), "queue_timeout", 1.0)
        status, body, headers = describe(exc, retry_after=queue_timeout)
        return JSONResponse(body, status_code=status, headers=headers)

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: f"No such endpoint: {request.method} {request.url.path}; see /api/docs.",
            405: f"{request.method} is not allowed on {request.url.path}; see /api/docs.",
        }.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, "invalid_request_error", code, exc.headers)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = {_location(e.get("loc", ())): str(e.get("msg", "invalid")) for e in exc.errors()}
        message = "Invalid request body: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
        return error_response(
            422, message, "invalid_request_error", "validation_error", fields=fields
        )

    app.add_exception_handler(Exception, on_error)
    app.add_exception_handler(GatehouseError, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"
