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

from flask import Flask


def init_console(app: Flask) -> None:
    """Register the console on `app`: blueprint, locale, session cookie and CSRF checks."""
    from server.console import i18n, pages, session
    from server.console.blueprint import bp

    pages.load()
    i18n.init_app(app)
    session.init_app(app)
    app.register_blueprint(bp)
