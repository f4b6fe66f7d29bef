"""Shapes of the devices API: the device listing, and tablet enrolment codes (make, list, the
tablet's redeem request)."""

from __future__ import annotations

from marshmallow import fields

from server.devices.enrolment import MAX_TTL, MIN_TTL, STATUSES
from server.request_body import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from sync_protocol.messages import (
    ChoiceString,
    ProtocolNested,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    StrictInteger,
    UuidString,
)


class DeviceListQuerySchema(RequestSchema):
    """`GET /api/v1/devices`: `owner` one account's devices, `revoked` `true`/`false`."""

    owner = ProtocolString(max_length=64)
    revoked = ChoiceString(("true", "false"))
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_PAGE_LIMIT)
    offset = QueryInteger(minimum=0, load_default=0)


class MissingSeqRangeSchema(ResponseSchema):
    first_seq = fields.Integer()
    last_seq = fields.Integer()
    noticed_at = Rfc3339DateTime()


class DeviceSchema(ResponseSchema):
    """A tablet: `missing` counts the `device_seq` numbers never received (the first ranges in
    `gaps`), `open_conflicts` the unresolved conflicts one of whose sides it sent."""

    device_id = UuidString()
    label = fields.String()
    owner = fields.String()
    owner_display_name = fields.String()
    registered_at = Rfc3339DateTime()
    last_seen_at = Rfc3339DateTime(allow_none=True)
    last_push_at = Rfc3339DateTime(allow_none=True)
    revoked_at = Rfc3339DateTime(allow_none=True)
    highest_seq = fields.Integer()
    missing = fields.Integer()
    gaps = fields.List(ProtocolNested(MissingSeqRangeSchema))
    open_conflicts = fields.Integer()


class DevicePageSchema(ResponseSchema):
    devices = fields.List(ProtocolNested(DeviceSchema))
    limit = fields.Integer()
    offset = fields.Integer()


class EnrolmentCreateSchema(RequestSchema):
    """`POST /api/v1/devices/enrolments`: for whom, an optional label for the tablet, and how
    long the code stays valid (`expires_in` seconds, 300 to 2592000; default `ENROLMENT_TTL`)."""

    username = ProtocolString(required=True, max_length=64)
    label = ProtocolString(min_length=0, max_length=100, load_default="")
    expires_in = StrictInteger(minimum=MIN_TTL, maximum=MAX_TTL)


class EnrolmentListQuerySchema(RequestSchema):
    """`GET /api/v1/devices/enrolments`: `username`, `status`, newest first."""

    username = ProtocolString(max_length=64)
    status = ChoiceString(STATUSES)
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_PAGE_LIMIT)
    offset = QueryInteger(minimum=0, load_default=0)


class EnrolmentSchema(ResponseSchema):
    """An enrolment (never its code): `status` pending, redeemed, revoked or expired."""

    id = UuidString()
    username = fields.String()
    label = fields.String()
    created_by = fields.String(allow_none=True)
    created_at = Rfc3339DateTime()
    expires_at = Rfc3339DateTime()
    revoked_at = Rfc3339DateTime(allow_none=True)
    redeemed_at = Rfc3339DateTime(allow_none=True)
    device_id = UuidString(allow_none=True)
    status = ChoiceString(STATUSES)


class NewEnrolmentSchema(ResponseSchema):
    """A new enrolment: `code` is shown this once; `qr_payload` is the QR code's text (JSON with
    `type`, `version`, `server` and `code`); `qr_svg` the URL drawing it while it is unused."""

    enrolment = ProtocolNested(EnrolmentSchema)
    code = fields.String()
    qr_payload = fields.String()
    qr_svg = fields.String()


class EnrolmentPageSchema(ResponseSchema):
    enrolments = fields.List(ProtocolNested(EnrolmentSchema))
    limit = fields.Integer()
    offset = fields.Integer()


class EnrolRequestSchema(RequestSchema):
    """`POST /api/v1/auth/enrol`: the code from the QR code, the tablet's id, and its label."""

    code = ProtocolString(required=True, max_length=128)
    device_id = UuidString(required=True)
    label = ProtocolString(min_length=0, max_length=100, load_default="")
