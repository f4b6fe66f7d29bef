"""Shapes of the warning endpoints: the list query, a warning with its history, the actions (refer,
handle, dismiss) and the configuration by year and province. Shape only: whether an action fits
the warning's status is the service's business."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from marshmallow import ValidationError, fields
from marshmallow.validate import Length

from forms.register import RiskCause
from server.monitoring.schemas import (
    _REGION_CODE_RE,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MAX_TEXT,
)
from server.warnings.config import BY_NAME, FIRST_YEAR, LAST_YEAR
from server.warnings.models import WarningStatus
from server.warnings.rules import BY_RULE, Source
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    JsonValue,
    PatternString,
    ProtocolList,
    ProtocolMessage,
    ProtocolNested,
    ProtocolString,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    StrictInteger,
    UuidString,
)

CAUSES = tuple(RiskCause.codes())
_PROVINCE_RE = re.compile(r"(?:\*|(?:0[1-9]|[1-9][0-9])0{10})")


class WarningListQuerySchema(RequestSchema):
    """`GET /api/v1/warnings` query arguments (all optional)."""

    region = PatternString(
        _REGION_CODE_RE, ItemErrorCode.INVALID_VALUE, "Must be a 12-digit division code."
    )
    rule = ChoiceString(tuple(BY_RULE))
    status = ChoiceString(tuple(WarningStatus.codes()))
    source = ChoiceString(tuple(s.value for s in Source))
    holds = ChoiceString(("true", "false"))
    household_id = UuidString()
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)
    offset = QueryInteger(minimum=0, load_default=0)
    # `sensitive`: health and disability values of the evidence in clear, for roles in
    # REVEAL_ROLES; each warning so shown is audited.
    reveal = ChoiceString(("sensitive",))


class WarningQuerySchema(RequestSchema):
    """`GET /api/v1/warnings/{warning_id}` query arguments: `reveal=sensitive` shows the
    evidence's health and disability values in clear (roles in REVEAL_ROLES; audited)."""

    reveal = ChoiceString(("sensitive",))


class ReferWarningSchema(RequestSchema):
    """`POST /api/v1/warnings/{id}/refer`: open (or join) a monitoring case for the household."""

    causes = ProtocolList(
        ChoiceString(CAUSES),
        max_items=len(CAUSES) * 2,
        validate=Length(min=1, error=ProtocolMessage("required", "Name at least one cause.")),
    )
    note = ProtocolString(max_length=MAX_TEXT)
    version = StrictInteger(minimum=0, maximum=1_000_000)


class HandleWarningSchema(RequestSchema):
    """`POST /api/v1/warnings/{id}/handle`: the risk was dealt with outside a referral."""

    note = ProtocolString(max_length=MAX_TEXT)
    version = StrictInteger(minimum=0, maximum=1_000_000)


class DismissWarningSchema(RequestSchema):
    """`POST /api/v1/warnings/{id}/dismiss`: not a risk, with the reason."""

    reason = ProtocolString(min_length=1, max_length=MAX_TEXT, required=True)
    version = StrictInteger(minimum=0, maximum=1_000_000)


class WarningEventSchema(ResponseSchema):
    kind = fields.String()
    at = Rfc3339DateTime()
    by = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    source = fields.Dict()


class WarningSummarySchema(ResponseSchema):
    id = UuidString()
    household_id = UuidString()
    member_id = UuidString(allow_none=True)
    village_code = fields.String()
    rule = fields.String()
    rule_label = fields.Dict(keys=fields.String(), values=fields.String())
    lifecycle = fields.Integer()
    is_current = fields.Boolean()
    holds = fields.Boolean()
    status = fields.String()
    source = fields.String()
    evidence = fields.Dict()
    first_seen = Rfc3339DateTime()
    last_seen = Rfc3339DateTime()
    cleared_at = Rfc3339DateTime(allow_none=True)
    status_reason = fields.String(allow_none=True)
    status_by = fields.String(allow_none=True)
    status_at = Rfc3339DateTime(allow_none=True)
    referral_id = UuidString(allow_none=True)
    version = fields.Integer()


class WarningSchema(WarningSummarySchema):
    """A warning with its history, oldest first."""

    events = fields.List(ProtocolNested(WarningEventSchema))


class WarningPageSchema(ResponseSchema):
    warnings = fields.List(ProtocolNested(WarningSummarySchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class ConfigNumber(JsonValue):
    """A setting's value: a JSON number (null clears the value set for this year and province)."""

    openapi: ClassVar[dict[str, Any]] = {"type": "number", "nullable": True}

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(
                ProtocolMessage(ItemErrorCode.INVALID_TYPE.value, "Not a number.")
            )
        try:
            number = Decimal(str(value))
        except InvalidOperation as error:
            raise ValidationError(
                ProtocolMessage(ItemErrorCode.INVALID_VALUE.value, "Not a finite number.")
            ) from error
        if not number.is_finite() or abs(number) >= Decimal(10) ** 10:
            raise ValidationError(
                ProtocolMessage(ItemErrorCode.OUT_OF_RANGE.value, "Not a finite number.")
            )
        return number


class ConfigQuerySchema(RequestSchema):
    """`GET /api/v1/warnings/config?year=2026&province=450000000000`."""

    year = QueryInteger(minimum=FIRST_YEAR, maximum=LAST_YEAR, required=True)
    province = PatternString(
        _PROVINCE_RE, ItemErrorCode.INVALID_VALUE, 'A province code (NN0000000000) or "*".'
    )


class ConfigUpdateSchema(RequestSchema):
    """`PUT /api/v1/warnings/config`: `{"year": 2026, "province": CODE or "*", "values": {…}}`."""

    year = StrictInteger(minimum=FIRST_YEAR, maximum=LAST_YEAR, required=True)
    province = PatternString(
        _PROVINCE_RE,
        ItemErrorCode.INVALID_VALUE,
        'A province code (NN0000000000) or "*".',
        required=True,
    )
    values = fields.Dict(
        keys=ChoiceString(tuple(BY_NAME)), values=ConfigNumber(allow_none=True), required=True
    )


class ConfigValueSchema(ResponseSchema):
    name = fields.String()
    value = ConfigNumber()
    default = ConfigNumber()
    minimum = ConfigNumber()
    maximum = ConfigNumber()
    label = fields.String()
    set_for = fields.String(allow_none=True)


class ConfigSchema(ResponseSchema):
    year = fields.Integer()
    province = fields.String()
    settings = fields.List(ProtocolNested(ConfigValueSchema))
    changed = fields.List(fields.String())
    reevaluated = fields.Dict(keys=fields.String(), values=fields.Integer())
