"""What the review pages (cases, warnings, conflicts, quarantine) share: filter arguments read
with the API's query schemas, previous/next links, and the problems of a refused form shown next
to its fields. No domain rules here: those are the services'."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request
from flask_babel import lazy_gettext as _l
from marshmallow import Schema

from server.request_body import load_with

PAGE_SIZE = 50

# The problem codes services and schemas give, in words a reviewer reads (else their message).
PROBLEMS: Mapping[str, Any] = {
    "required": _l("Required."),
    "invalid_choice": _l("Choose one of the offered values."),
    "too_long": _l("Too long."),
    "in_future": _l("Not after today."),
    "before_deliberation": _l("The notice starts on or after the deliberation."),
    "before_start": _l("The notice ends after it starts."),
    "invalid_value": _l("Not a valid value."),
    "invalid_type": _l("Not a valid value."),
}


def filter_arguments(schema: Schema, names: Iterable[str]) -> dict[str, Any]:
    """The listing's filters from the query string, blanks left out, loaded with the API's own
    query schema (a bad value is the same 422 as in the API)."""
    wanted = set(names) | {"offset"}
    given = {k: v.strip() for k, v in request.args.items() if k in wanted and v.strip()}
    loaded: dict[str, Any] = load_with(schema, given)
    return loaded


@dataclass(frozen=True)
class Pager:
    total: int
    offset: int
    limit: int
    previous: str | None
    next: str | None

    @property
    def first(self) -> int:
        return self.offset + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.total, self.offset + self.limit)


def pager(
    total: int, offset: int, limit: int = PAGE_SIZE, *, filters: Mapping[str, Any] | None = None
) -> Pager:
    """Previous/next links of a listing, keeping the other query arguments (or `filters`, the
    ones in effect when the page chose them itself)."""
    if filters is not None:
        kept = [(k, str(v)) for k, v in filters.items() if k != "offset" and v not in (None, "")]
    else:
        kept = [(k, v) for k, v in request.args.items(multi=True) if k != "offset"]

    def link(at: int) -> str:
        return f"{request.path}?{urlencode([*kept, ('offset', str(at))])}"

    previous = link(max(0, offset - limit)) if offset > 0 else None
    following = link(offset + limit) if offset + limit < total else None
    return Pager(total, offset, limit, previous, following)


def problems_by_field(errors: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """`{path: [message, …]}` of a ValidationFailed's errors, in the reader's language where the
    code is known (the server's own message otherwise, and always for numbers it names)."""
    shown: dict[str, list[str]] = {}
    for error in errors:
        path = str(error.get("path") or "")
        code = str(error.get("code") or "")
        message = PROBLEMS.get(code)
        text = str(message) if message is not None else str(error.get("message") or code)
        shown.setdefault(path.split(".")[0].split("[")[0], []).append(text)
    return shown


def one_line(value: Any) -> str:
    """A stored value (JSON) as one line of text for a table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, list):
        return ", ".join(one_line(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {one_line(v)}" for k, v in value.items())
    return str(value)
