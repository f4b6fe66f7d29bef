"""The one error hierarchy of the service and the one place that turns errors into responses.

Services raise `AppError` subclasses carrying a protocol `ErrorCode`; `register_error_handlers`
maps those, Werkzeug's HTTP errors and anything unexpected to the JSON error shape of the sync
protocol. A client mistake must never become a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from server.db import is_retryable
from sync_protocol.errors import ErrorCode

log = logging.getLogger("fieldsync.errors")


class AppError(Exception):
    """A domain error with a stable machine code, a human message and optional details."""

    code: ErrorCode = ErrorCode.BAD_REQUEST
    # Commit the unit of work before propagating (the work that led to the error must persist).
    keeps_changes: bool = False

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(AppError):
    code = ErrorCode.BAD_REQUEST


class Unauthorized(AppError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(AppError):
    code = ErrorCode.FORBIDDEN


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND


class Conflict(AppError):
    code = ErrorCode.CONFLICT


class ResyncRequired(AppError):
    code = ErrorCode.RESYNC_REQUIRED


class TooLarge(AppError):
    code = ErrorCode.TOO_LARGE


class UnsupportedMediaType(AppError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class ValidationFailed(AppError):
    """Well-formed but invalid input; `errors` are `{path, code, message}` items."""

    code = ErrorCode.VALIDATION_ERROR

    def __init__(self, message: str, errors: Sequence[Mapping[str, object]]) -> None:
        super().__init__(message, details={"errors": [dict(error) for error in errors]})
        self.errors = [dict(error) for error in errors]


class RateLimited(AppError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int) -> None:
        retry_after = max(1, retry_after)
        super().__init__(
            message,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


_HTTP_CODES = {code.http_status: code for code in ErrorCode}


def error_response(
    code: ErrorCode,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify(
        {"error": {"code": code.value, "message": message, "details": details or {}}}
    )
    response.status_code = code.http_status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(exc: AppError) -> Response:
        return error_response(exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(
            status, ErrorCode.BAD_REQUEST if status < 500 else ErrorCode.INTERNAL_ERROR
        )
        headers: dict[str, str] = {}
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        message = {
            ErrorCode.TOO_LARGE: "request body is larger than the configured limit",
            ErrorCode.NOT_FOUND: "no such resource",
            ErrorCode.METHOD_NOT_ALLOWED: "method not allowed on this resource",
        }.get(code, exc.description or code.value)
        return error_response(code, message, headers=headers)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        if exc.connection_invalidated or is_retryable(exc):
            # The database went away (a restart, a failover), or ended the transaction to
            # break a deadlock: nothing was applied, and the same request later will go through.
            log.warning("event=database_unavailable error=%s", type(exc.orig).__name__)
            return error_response(
                ErrorCode.UNAVAILABLE,
                "the database cannot be reached just now; the request had no effect, retry later",
            )
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("event=unhandled_error error=%s", type(exc).__name__)
        return error_response(
            ErrorCode.INTERNAL_ERROR, "internal error; the request had no effect, retry later"
        )
