"""Shapes of the department endpoints: creating and changing a source, the source and import as
admins see them, and the listing queries. Shape only: whether a mapping fits its department and a
schedule parses is checked by `server.departments.sources` (422 with every problem)."""

from __future__ import annotations

import re

from marshmallow import fields

from server.departments.facts import Department
from server.departments.models import ImportOrigin, ImportStatus, ListKind
from server.departments.sources import NAME_RE, TOKEN_ENV_RE, URL_RE
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    JsonObject,
    PatternString,
    ProtocolNested,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    StrictInteger,
    UuidString,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_TIMEOUT = 600
_SCHEDULE_RE = re.compile(r"[0-9*/,\- A-Za-z]{9,64}")


def _url() -> PatternString:
    return PatternString(
        URL_RE, ItemErrorCode.INVALID_VALUE, "An http(s) URL.", max_length=512, allow_none=True
    )


def _token_env() -> PatternString:
    return PatternString(
        TOKEN_ENV_RE,
        ItemErrorCode.INVALID_VALUE,
        "The name of an environment variable FIELDSYNC_DEPARTMENT_… holding the bearer token.",
        max_length=64,
        allow_none=True,
    )


def _schedule() -> PatternString:
    return PatternString(
        _SCHEDULE_RE,
        ItemErrorCode.INVALID_VALUE,
        "A five-field cron schedule, e.g. '0 2 * * *' (UTC).",
        max_length=64,
        allow_none=True,
    )


class SourceCreateSchema(RequestSchema):
    name = PatternString(
        NAME_RE,
        ItemErrorCode.INVALID_VALUE,
        "2-64 lower-case letters, digits, '_', '.' or '-'.",
        max_length=64,
        required=True,
    )
    department = ChoiceString(tuple(Department.codes()), required=True)
    list_kind = ChoiceString(tuple(k.value for k in ListKind))
    mapping = JsonObject(required=True)
    url = _url()
    token_env = _token_env()
    schedule = _schedule()
    timeout_seconds = StrictInteger(minimum=1, maximum=MAX_TIMEOUT)


class SourceUpdateSchema(RequestSchema):
    department = ChoiceString(tuple(Department.codes()))
    list_kind = ChoiceString(tuple(k.value for k in ListKind))
    mapping = JsonObject()
    url = _url()
    token_env = _token_env()
    schedule = _schedule()
    timeout_seconds = StrictInteger(minimum=1, maximum=MAX_TIMEOUT)


class PageQuerySchema(RequestSchema):
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)
    offset = QueryInteger(minimum=0, load_default=0)


class ImportListQuerySchema(PageQuerySchema):
    source_id = UuidString()
    status = ChoiceString(tuple(s.value for s in ImportStatus))


class SourceSchema(ResponseSchema):
    id = UuidString(required=True)
    name = fields.String(required=True)
    department = fields.String(required=True)
    list_kind = fields.Function(lambda s: s.list_kind.value, required=True)
    mapping = fields.Dict(required=True)
    url = fields.String(allow_none=True, required=True)
    token_env = fields.String(allow_none=True, required=True)
    schedule = fields.String(allow_none=True, required=True)
    timeout_seconds = fields.Integer(required=True)
    last_fetch_at = Rfc3339DateTime(allow_none=True, required=True)
    created_at = Rfc3339DateTime(required=True)
    updated_at = Rfc3339DateTime(required=True)


class SourcePageSchema(ResponseSchema):
    sources = fields.List(ProtocolNested(SourceSchema), required=True)
    total = fields.Integer(required=True)


_COUNTS = (
    "size",
    "rows",
    "matched",
    "unmatched",
    "ambiguous",
    "mismatched",
    "duplicates",
    "conflicting",
    "facts_written",
    "facts_withdrawn",
)


class ImportSummarySchema(ResponseSchema):
    id = UuidString(required=True)
    source_id = UuidString(required=True)
    status = ChoiceString(tuple(s.value for s in ImportStatus), required=True)
    origin = ChoiceString(tuple(o.value for o in ImportOrigin), required=True)
    filename = fields.String(allow_none=True, required=True)
    content_hash = fields.String(allow_none=True, required=True)
    size = fields.Integer(required=True)
    rows = fields.Integer(required=True)
    matched = fields.Integer(required=True)
    unmatched = fields.Integer(required=True)
    ambiguous = fields.Integer(required=True)
    mismatched = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    conflicting = fields.Integer(required=True)
    facts_written = fields.Integer(required=True)
    facts_withdrawn = fields.Integer(required=True)
    error = fields.Dict(allow_none=True, required=True)
    imported_by = fields.Integer(allow_none=True, required=True)
    started_at = Rfc3339DateTime(required=True)


class ImportSchema(ImportSummarySchema):
    """One import with its report: rows by kind (`unmatched`, `ambiguous`, `mismatched`,
    `duplicate`, `conflicting`), each with its row number and masked identity number."""

    report = fields.Dict(required=True)
    unchanged = fields.Boolean(required=True)


class ImportPageSchema(ResponseSchema):
    imports = fields.List(ProtocolNested(ImportSummarySchema), required=True)
    total = fields.Integer(required=True)
