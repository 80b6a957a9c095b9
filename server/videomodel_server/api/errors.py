"""The one place errors become HTTP: the OpenAI envelope for every error the API returns.

``{"error": {"message", "type", "param", "code"}}`` for the server's own tree
(:class:`~videomodel_server.errors.ServerError`), pydantic/FastAPI validation errors (400, with
the field path and pydantic's message but never the offending input), unknown routes and methods,
and anything unexpected (500, logged with the request id, no details to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InvalidRequest, RoutingError, ServerError, Unavailable
from .protocol import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)

# pydantic error types whose stock message quotes the input; replaced by a neutral one.
_ECHOING_TYPES = {
    "union_tag_invalid": "unsupported type; expected one of: {expected_tags}",
    "string_pattern_mismatch": "value does not match the expected pattern",
    "enum": "value is not one of the allowed values",
    "extra_forbidden": "unknown field",
}


def error_body(err: ServerError) -> dict[str, Any]:
    return ErrorResponse(
        error=ErrorBody(message=err.message, type=err.type, param=err.param, code=err.code)
    ).model_dump()


def error_response(err: ServerError, headers: dict[str, str] | None = None) -> JSONResponse:
    all_headers = dict(headers or {})
    if isinstance(err, Unavailable):
        all_headers["Retry-After"] = str(err.retry_after)
    # The OpenAI SDKs read this before their status rule: no retry of what a retry cannot fix.
    all_headers["x-should-retry"] = "true" if err.retryable else "false"
    return JSONResponse(error_body(err), status_code=err.status, headers=all_headers)


def validation_error(errors: Sequence[Any]) -> InvalidRequest:
    """A 400 naming the first invalid field and why, without the input itself."""
    parts = []
    for e in list(errors)[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",))
        kind = e.get("type", "")
        template = _ECHOING_TYPES.get(kind)
        if template is not None:
            ctx = e.get("ctx") or {}
            try:
                msg = template.format(**ctx)
            except (KeyError, IndexError):
                msg = template.split(";")[0]
        else:
            msg = str(e.get("msg", "invalid value"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    first_loc = ".".join(str(p) for p in (errors[0].get("loc", ()) if errors else ()) if p != "body")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidRequest("invalid request: " + "; ".join(parts) + more, param=first_loc or None)


def from_pydantic(exc: ValidationError) -> InvalidRequest:
    return validation_error(exc.errors(include_input=False, include_url=False))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the envelope."""

    async def on_server_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServerError)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc.errors()))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        err = RoutingError(
            str(exc.detail) if exc.status_code < 500 else "internal error",
            status=exc.status_code,
            code=_http_code(exc.status_code),
        )
        return error_response(err, headers=dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"request_id": getattr(request.state, "request_id", None)})
        return error_response(ServerError("internal server error"))

    app.add_exception_handler(ServerError, on_server_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _http_code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(status, "http_error")
