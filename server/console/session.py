"""Console sessions. The session cookie holds a login token like the API's bearer tokens: random,
stored only as its hash, expiring after CONSOLE_SESSION_TTL and revoked at logout, so a session
ends everywhere at once and no state lives in a worker. Logging in always issues a new token and
a new CSRF secret (no session fixation). Cookies are HttpOnly and SameSite=Lax, and Secure on
HTTPS (or always, with CONSOLE_SECURE_COOKIES).

Flask's own signed `session` cookie holds only the CSRF secret.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response as WerkzeugResponse

from server.auth import service
from server.auth.actor import Actor
from server.auth.service import IssuedToken
from server.errors import Forbidden, Unauthorized
from server.runtime import runtime
from server.users.models import Role

P = ParamSpec("P")
R = TypeVar("R")

COOKIE = "fieldsync_console"


class _ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session (the CSRF secret), Secure whenever the console's is."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return cookie_secure()


def init_app(app: Flask) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="fieldsync_form",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.session_interface = _ConsoleSessionInterface()


def cookie_secure() -> bool:
    return runtime().settings.console_secure_cookies or request.is_secure


def console_actor() -> Actor | None:
    """The user of this console request, or None when not logged in (no, unknown, expired or
    revoked session). Looked up once per request."""
    if "console_actor" not in g:
        g.console_actor = _actor_from_cookie()
    actor: Actor | None = g.console_actor
    return actor


def _actor_from_cookie() -> Actor | None:
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    with runtime().db.unit_of_work(write=False) as db_session:
        try:
            return service.actor_for_token(db_session, token, address=request.remote_addr)
        except Unauthorized:
            return None


def current_user() -> Actor:
    """The logged-in user of a page behind `@console_page` (never None there)."""
    actor = console_actor()
    if actor is None:
        raise Unauthorized("not logged in")
    return actor


def console_page(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R | WerkzeugResponse]]:
    """A page that needs a login (else a redirect to the login page, coming back afterwards) and,
    with `roles`, one of them (else a 403 page)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | WerkzeugResponse]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | WerkzeugResponse:
            actor = console_actor()
            if actor is None:
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("console.login", next=target))
            if roles and actor.role not in roles:
                raise Forbidden("your role may not open this page")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (never another host)."""
    if not target:
        return url_for("console.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("console.home")
    if "\\" in target:
        return url_for("console.home")
    return target


def start(response: WerkzeugResponse, issued: IssuedToken) -> WerkzeugResponse:
    """Put a freshly issued token in the session cookie; a new CSRF secret goes with it."""
    session.clear()
    response.set_cookie(
        COOKIE,
        issued.token,
        max_age=runtime().settings.console_session_ttl,
        httponly=True,
        secure=cookie_secure(),
        samesite="Lax",
        path="/",
    )
    return response


def end(response: WerkzeugResponse) -> WerkzeugResponse:
    session.clear()
    response.delete_cookie(COOKIE, httponly=True, secure=cookie_secure(), samesite="Lax", path="/")
    return response
