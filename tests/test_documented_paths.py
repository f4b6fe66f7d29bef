"""What the README and docs/ name exists: every `/api/v1/…` path they mention is a route of the app
(placeholders such as `{id}` or `<hex>` match any value), so the docs cannot describe endpoints
that were never built, or keep ones that were removed."""

from __future__ import annotations

import re

from server.config import PROJECT_ROOT

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
_PATH_RE = re.compile(r"/api/v1/[A-Za-z0-9_/{}<>:.-]*[A-Za-z0-9_}>]")
_PLACEHOLDER_RE = re.compile(r"\{[^}]*\}|<[^>]*>")


def _shape(path: str) -> str:
    """`/api/v1/forms/{id}/draft` and `/api/v1/forms/<form_id>/draft` → `/api/v1/forms/*/draft`."""
    return _PLACEHOLDER_RE.sub("*", path)


def _matches(documented: str, route: str) -> bool:
    pattern = "".join(
        "[^/]+" if part == "*" else re.escape(part) for part in re.split(r"(\*)", route)
    )
    return re.fullmatch(pattern, _shape(documented).replace("*", "x")) is not None


def test_every_documented_api_path_is_a_route(app):
    routes = {_shape(rule.rule) for rule in app.url_map.iter_rules()}
    documented = {
        (document.name, path)
        for document in DOCUMENTS
        for path in _PATH_RE.findall(document.read_text(encoding="utf-8"))
    }
    assert len(documented) > 20
    missing = sorted(
        (name, path)
        for name, path in documented
        if not any(_matches(path, route) for route in routes)
    )
    assert missing == []
