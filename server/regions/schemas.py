"""Shapes of the region tree API: the children query and a region as the caller may see it."""

from __future__ import annotations

from marshmallow import fields

from server.regions.codes import RegionLevel
from server.users.schemas import region_code_field
from sync_protocol.messages import (
    ChoiceString,
    ProtocolNested,
    RequestSchema,
    ResponseSchema,
)

LEVEL_WORDS = tuple(RegionLevel.codes())
ACCESS_WORDS = ("granted", "ancestor")


class RegionListQuerySchema(RequestSchema):
    """`GET /api/v1/regions`: `parent` lists the regions directly below it; without it, the
    caller's roots (the top regions for an administrator, else the caller's grants)."""

    parent = region_code_field()


class RegionNodeSchema(ResponseSchema):
    """A region. `access` `granted`: inside the caller's grants, with `child_count` and
    `household_count` (live households in it and below it); `ancestor`: above a grant, by name
    only (both counts null)."""

    code = fields.String()
    name = fields.String()
    level = ChoiceString(LEVEL_WORDS)
    parent_code = fields.String(allow_none=True)
    access = ChoiceString(ACCESS_WORDS)
    child_count = fields.Integer(allow_none=True)
    household_count = fields.Integer(allow_none=True)


class RegionListSchema(ResponseSchema):
    parent = fields.String(allow_none=True)
    regions = fields.List(ProtocolNested(RegionNodeSchema))


class RegionPathSchema(ResponseSchema):
    """One region and the regions above it, from the top."""

    region = ProtocolNested(RegionNodeSchema)
    ancestors = fields.List(ProtocolNested(RegionNodeSchema))
