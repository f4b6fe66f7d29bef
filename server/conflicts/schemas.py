"""Shapes of the conflicts endpoints: the list query, the resolve request, and the conflict as
supervisors see it (both values with their origins, and the resolution). Shape only: whether a
value suits its register field is checked by the service, which knows the field."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from server.conflicts.models import ConflictStatus
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    JsonValue,
    PatternString,
    ProtocolMessage,
    ProtocolNested,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    UuidString,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
ENTITY_TYPES = ("household", "member")
CHOICES = ("winner", "loser")
REVEAL_WORDS = ("sensitive",)
# Twelve digits whose province part is not 00 (`server.regions.codes.is_valid_code`), as a
# pattern, so that the OpenAPI description refuses what the service would.
_REGION_CODE_RE = re.compile(r"(?:0[1-9]|[1-9][0-9])[0-9]{10}")


class ConflictListQuerySchema(RequestSchema):
    """`GET /api/v1/conflicts` query arguments (all optional; unknown ones are refused)."""

    status = ChoiceString(tuple(ConflictStatus.codes()))
    region = PatternString(
        _REGION_CODE_RE, ItemErrorCode.INVALID_VALUE, "Must be a 12-digit division code."
    )
    entity = ChoiceString(ENTITY_TYPES)
    entity_id = UuidString()
    field = ProtocolString(max_length=64)
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)
    offset = QueryInteger(minimum=0, load_default=0)
    reveal = ChoiceString(REVEAL_WORDS)


class ConflictQuerySchema(RequestSchema):
    """`GET /api/v1/conflicts/{id}` query arguments."""

    reveal = ChoiceString(REVEAL_WORDS)


class ResolveRequestSchema(RequestSchema):
    """`POST /api/v1/conflicts/{id}/resolve`: `{"value": <any JSON>}` or
    `{"choose": "winner" | "loser"}`, exactly one of them (`"value": null` clears the field)."""

    value = JsonValue(allow_none=True)
    choose = ChoiceString(CHOICES)

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "value" in data and "choose" in data:
            raise ValidationError(
                ProtocolMessage(
                    ItemErrorCode.INVALID_VALUE.value,
                    'Give "choose" or "value", not both.',
                ),
                "choose",
            )
        if "value" not in data and "choose" not in data:
            raise ValidationError(
                ProtocolMessage(
                    ItemErrorCode.REQUIRED.value,
                    'Give "choose": "winner" or "loser" (the side to keep), '
                    'or "value": the value to keep.',
                ),
                "value",
            )


class ConflictSideSchema(ResponseSchema):
    """One of the two writes: its value (masked if sensitive), clock, and where it came from.
    Origin fields are null when the value did not come from a submission (e.g. an import)."""

    value = JsonValue(allow_none=True)
    clock = fields.String()
    instance_id = UuidString(allow_none=True)
    device_id = UuidString(allow_none=True)
    user = fields.String(allow_none=True)
    collected_at = Rfc3339DateTime(allow_none=True)
    received_at = Rfc3339DateTime(allow_none=True)


class ResolutionSchema(ResponseSchema):
    value = JsonValue(allow_none=True)
    clock = fields.String(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolved_at = Rfc3339DateTime()


class ConflictSchema(ResponseSchema):
    """A conflict as supervisors see it."""

    id = UuidString()
    entity = fields.String()
    entity_id = UuidString()
    field = fields.String()
    village_code = fields.String()
    status = fields.String()
    created_at = Rfc3339DateTime()
    sensitive = fields.Boolean()
    winner = ProtocolNested(ConflictSideSchema)
    loser = ProtocolNested(ConflictSideSchema)
    resolution = ProtocolNested(ResolutionSchema, allow_none=True)


class ConflictPageSchema(ResponseSchema):
    """`GET /api/v1/conflicts`: newest first; `total` counts every match of the filters."""

    conflicts = fields.List(ProtocolNested(ConflictSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
    revealed = fields.Boolean()


class ResolvedConflictSchema(ConflictSchema):
    """`POST /api/v1/conflicts/{id}/resolve`: the resolved conflict and the entity's new rev."""

    entity_rev = fields.Integer()
