"""Shapes of the stored daily figures: the query (region and a range of report days) and the
answers (summary snapshots; overdue follow-ups per day)."""

from __future__ import annotations

from marshmallow import fields

from server.monitoring.help_schemas import DateString
from server.monitoring.report_schemas import REGION_CODE_RE
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    JsonObject,
    PatternString,
    ProtocolNested,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
)


class DailyQuerySchema(RequestSchema):
    """`region` (any level) and the report days `from`..`to` (China Standard Time, at most 366
    days; default: the last 30 days to today)."""

    region = PatternString(
        REGION_CODE_RE,
        ItemErrorCode.INVALID_VALUE,
        "Must be a 12-digit division code.",
        required=True,
    )
    first = DateString(data_key="from")
    last = DateString(data_key="to")


class SnapshotSchema(ResponseSchema):
    """The summary as `GET /api/v1/monitoring/summary` answered it on `day`."""

    day = DateString()
    taken_at = Rfc3339DateTime()
    summary = JsonObject()


class SnapshotListSchema(ResponseSchema):
    region = fields.String()
    snapshots = fields.List(ProtocolNested(SnapshotSchema))


class OverdueDaySchema(ResponseSchema):
    """Households with an overdue follow-up on `day`, in all and by monitoring type."""

    day = DateString()
    households = fields.Integer()
    by_type = fields.Dict(keys=fields.String(), values=fields.Integer())


class OverdueTrendSchema(ResponseSchema):
    region = fields.String()
    days = fields.List(ProtocolNested(OverdueDaySchema))
