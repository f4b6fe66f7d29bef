"""Shapes of the household search API: its query arguments and a page of households as listed
(identity numbers masked)."""

from __future__ import annotations

from marshmallow import fields

from forms.register import Category, MonitoringStatus, MonitoringType
from server.request_body import MAX_PAGE_LIMIT
from server.users.schemas import region_code_field
from sync_protocol.messages import (
    ChoiceString,
    ProtocolNested,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    UuidString,
)

DEFAULT_SEARCH_LIMIT = 50


class HouseholdSearchQuerySchema(RequestSchema):
    """`GET /api/v1/households`: every argument given must hold. `household_no` a prefix,
    `head_name` a part of the head's name, `region` any region code within the caller's
    (its households and those below it), `status`/`monitoring_type`/`category` codes,
    `id_number` a member's identity number (found through its keyed hash; audited).
    `cursor` is the `next_cursor` of the previous page."""

    household_no = ProtocolString(max_length=64)
    head_name = ProtocolString(max_length=100)
    region = region_code_field()
    status = ChoiceString(tuple(MonitoringStatus.codes()))
    monitoring_type = ChoiceString(tuple(MonitoringType.codes()))
    category = ChoiceString(tuple(Category.codes()))
    id_number = ProtocolString(max_length=32)
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_SEARCH_LIMIT)
    cursor = ProtocolString(max_length=512)


class HouseholdHeadSchema(ResponseSchema):
    member_id = UuidString()
    name = fields.String(allow_none=True)
    id_number = fields.String(allow_none=True)


class HouseholdListingSchema(ResponseSchema):
    id = UuidString()
    household_no = fields.String(allow_none=True)
    village_code = fields.String()
    village_name = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    monitoring_type = fields.String(allow_none=True)
    monitoring_status = fields.String()
    head = ProtocolNested(HouseholdHeadSchema, allow_none=True)
    rev = fields.Integer()
    updated_at = Rfc3339DateTime()


class HouseholdSearchPageSchema(ResponseSchema):
    """`next_cursor` is null on the last page."""

    households = fields.List(ProtocolNested(HouseholdListingSchema))
    limit = fields.Integer()
    next_cursor = fields.String(allow_none=True)
