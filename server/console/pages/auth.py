"""Log in, log out, switch language."""

from __future__ import annotations

from flask import make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.auth import service
from server.console import session
from server.console.blueprint import bp
from server.console.i18n import LANG_COOKIE, LANGUAGES
from server.errors import RateLimited, Unauthorized
from server.runtime import runtime

# The longest username and password the login form passes on (the API's limits).
MAX_FIELD = 1024


@bp.get("/login")
def login() -> Response | str:
    if session.console_actor() is not None:
        return redirect(session.safe_next(request.args.get("next")))
    return render_template("console/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_submit() -> Response | tuple[str, int]:
    username = request.form.get("username", "").strip()[:MAX_FIELD]
    password = request.form.get("password", "")[:MAX_FIELD]
    target = request.form.get("next", "")
    if not username or not password:
        return _login_again(_("Enter your username and password."), target, 422)
    rt = runtime()
    try:
        issued = service.login(
            rt.db,
            rt.settings,
            rt.passwords,
            username=username,
            password=password,
            device_id=None,
            address=request.remote_addr or "-",
            ttl=rt.settings.console_session_ttl,
        )
    except RateLimited as exc:
        message = _(
            "Too many failed attempts. Try again in %(seconds)s seconds.",
            seconds=exc.headers.get("Retry-After", "60"),
        )
        return _login_again(message, target, 429)
    except Unauthorized:
        return _login_again(
            _("Wrong username or password, or the account is disabled."), target, 401
        )
    return session.start(redirect(session.safe_next(target)), issued)


def _login_again(message: str, target: str, status: int) -> tuple[str, int]:
    page = render_template("console/login.html", next=target, error=message)
    return page, status


@bp.post("/logout")
def logout() -> Response:
    actor = session.console_actor()
    if actor is not None:
        with runtime().db.unit_of_work() as db_session:
            service.logout(db_session, actor)
    return session.end(redirect(url_for("console.login")))


@bp.get("/language/<code>")
def language(code: str) -> Response:
    """Switch language and go back where the user was (a path on this site only)."""
    response = make_response(redirect(session.safe_next(request.args.get("next"))))
    if code in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            code,
            max_age=365 * 24 * 3600,
            httponly=True,
            secure=session.cookie_secure(),
            samesite="Lax",
        )
    return response
