"""Shapes of the monitoring reports: the timeline and summary queries, and the timeline page.
The summary's answer is described as plain JSON Schema in `server/openapi.py` (its sections are
declared in `server/monitoring/summary.py`, each with its own dimensions)."""

from __future__ import annotations

import re

from marshmallow import fields

from server.monitoring.summary import FIRST_YEAR, LAST_YEAR
from server.monitoring.timeline import DEFAULT_LIMIT, MAX_LIMIT
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    JsonObject,
    PatternString,
    ProtocolNested,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    UuidString,
)

# Twelve digits whose province part is not 00 (`server.regions.codes.is_valid_code`).
REGION_CODE_RE = re.compile(r"(?:0[1-9]|[1-9][0-9])[0-9]{10}")
MAX_CURSOR_LENGTH = 512


class TimelineQuerySchema(RequestSchema):
    """`GET /api/v1/households/{id}/timeline`: `cursor` is the `next_cursor` of the previous
    page (absent: the newest events); `limit` events per page."""

    cursor = ProtocolString(min_length=1, max_length=MAX_CURSOR_LENGTH)
    limit = QueryInteger(minimum=1, maximum=MAX_LIMIT, load_default=DEFAULT_LIMIT)


class SummaryQuerySchema(RequestSchema):
    """`GET /api/v1/monitoring/summary`: the region (any level) and the report year (default:
    the current year in China Standard Time)."""

    region = PatternString(
        REGION_CODE_RE,
        ItemErrorCode.INVALID_VALUE,
        "Must be a 12-digit division code.",
        required=True,
    )
    year = QueryInteger(minimum=FIRST_YEAR, maximum=LAST_YEAR)


class TimelineEventSchema(ResponseSchema):
    """One event: when (server time), what kind, who did it (a username, or null for the
    system or an import), and the kind's own details."""

    at = Rfc3339DateTime()
    kind = fields.String()
    who = fields.String(allow_none=True)
    data = JsonObject()


class TimelinePageSchema(ResponseSchema):
    """Newest first; `next_cursor` is null on the last page."""

    household_id = UuidString()
    village_code = fields.String()
    events = fields.List(ProtocolNested(TimelineEventSchema))
    next_cursor = fields.String(allow_none=True)
    limit = fields.Integer()
