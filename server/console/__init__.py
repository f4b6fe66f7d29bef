"""The web console: server-rendered pages for county and township staff at `/`.

Same accounts, roles and region grants as the API; pages call the same service functions the API
routes call and add no domain logic of their own. Chinese by default, English on request, through
the message catalogue in `translations/` (never strings in templates without `_()`).

Layout:
- `blueprint.py` — the one blueprint every page registers on, and its HTML error pages;
- `session.py` — the session cookie (a revocable login token), `console_actor()` and
  `@console_page(...)`;
- `csrf.py` — every unsafe request must carry the form's CSRF token;
- `i18n.py` — locale choice and the catalogue, read from the `.po` file (no compile step);
- `nav.py` — the menu, by role;
- `pages/` — one module per area (dashboard, register, cases, review, forms, exports, users).
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import NotFound

from server.errors import error_response
from sync_protocol.errors import ErrorCode


def init_console(app: Flask) -> None:
    """Register the console on `app`: blueprint, locale, session cookie and CSRF checks."""
    from server.console import i18n, pages, session
    from server.console.blueprint import bp

    pages.load()
    i18n.init_app(app)
    session.init_app(app)
    app.register_blueprint(bp)
    app.register_error_handler(404, _not_found)


def _not_found(exc: NotFound) -> Response:
    """An address that is no page: the API's JSON error for API paths and for clients that do
    not ask for HTML, the console's page for a browser."""
    wants_page = request.accept_mimetypes.accept_html and not request.path.startswith("/api/")
    if wants_page:
        from server.console.blueprint import error_page

        return error_page(404, exc.description or "")
    return error_response(ErrorCode.NOT_FOUND, "no such resource")
