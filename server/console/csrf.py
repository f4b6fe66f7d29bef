"""Every request that can change something (anything but GET, HEAD and OPTIONS) carries the CSRF
token of its form (`csrf_token` field) or, from the console's scripts, an `X-CSRF-Token` header.
Tokens come from Flask-WTF and are bound to the browser's session, which is renewed at login."""

from __future__ import annotations

from flask import request
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms import ValidationError

from server.errors import AppError
from sync_protocol.errors import ErrorCode

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


class CsrfRefused(AppError):
    code = ErrorCode.FORBIDDEN


def check() -> None:
    if request.method in SAFE_METHODS:
        return
    token = request.form.get(FIELD) or request.headers.get(HEADER, "")
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CsrfRefused(
            "the form has expired or did not come from this console: reload the page and try again",
            details={"reason": str(exc)},
        ) from None


def token() -> str:
    value: str = generate_csrf()
    return value
