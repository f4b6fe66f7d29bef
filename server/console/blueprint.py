"""The console's blueprint. Pages in `server/console/pages/` add their routes to `bp`; errors
raised in them are answered as HTML pages (the API's JSON error shape is for API clients)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, render_template
from werkzeug.exceptions import HTTPException

from server.errors import AppError

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console/static",
)


def error_page(status: int, message: str) -> Response:
    response = make_response(
        render_template("console/error.html", status=status, message=message), status
    )
    return response


@bp.errorhandler(AppError)
def _app_error(exc: AppError) -> Response:
    response = error_page(exc.code.http_status, exc.message)
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error_page(exc.code or 500, exc.description or exc.name)


@bp.before_request
def _csrf() -> None:
    from server.console import csrf

    csrf.check()


@bp.after_request
def _page_headers(response: Response) -> Response:
    """Pages hold personal data: not cached, not framed, not sniffed, no referrer abroad."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
    )
    return response


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    from server.console import csrf, i18n, nav
    from server.console.session import console_actor

    actor = console_actor()
    language = i18n.current_language()
    return {
        "actor": actor,
        "menu": nav.menu(actor) if actor is not None else [],
        "csrf_token": csrf.token,
        "languages": i18n.LANGUAGES,
        "language": language,
        "html_lang": i18n.HTML_LANG[language],
        "label": lambda value: value.label(language) if hasattr(value, "label") else value,
    }
