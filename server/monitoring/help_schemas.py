"""Shapes of the help and follow-up endpoints: assigning and changing helpers and measures, the
help of a household as callers see it, and the follow-up listing. Shape and cross-field rules
only; whether a household may receive help, or a user exists, is the service's to check."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from marshmallow import ValidationError, fields, validates_schema

from forms.register import MONEY_LIMIT, MONEY_SCALE
from server.monitoring.followups import FollowupState
from server.monitoring.help_models import (
    DESCRIPTION_LENGTH,
    NAME_LENGTH,
    NOTE_LENGTH,
    MeasureStatus,
    MeasureType,
)
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
    UuidString,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
REVEAL_WORDS = ("sensitive",)
EARLIEST_DATE = date(1990, 1, 1)
LATEST_DATE = date(2100, 12, 31)
# Digits, optionally a leading +, and the spaces or dashes people group numbers with.
PHONE_RE = re.compile(r"\+?[0-9][0-9 -]{4,22}[0-9]")
_REGION_CODE_RE = re.compile(r"(?:0[1-9]|[1-9][0-9])[0-9]{10}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _refusal(code: ItemErrorCode, text: str) -> ValidationError:
    return ValidationError(ProtocolMessage(code.value, text))


class DateString(JsonValue):
    """A calendar date `YYYY-MM-DD` between 1990 and 2100; loaded as `date`."""

    openapi: ClassVar[dict[str, Any]] = {"type": "string", "format": "date"}

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> date:
        if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
            raise _refusal(ItemErrorCode.INVALID_VALUE, "Not a date of the form YYYY-MM-DD.")
        try:
            day = date.fromisoformat(value)
        except ValueError as error:
            raise _refusal(ItemErrorCode.INVALID_VALUE, f"Not a valid date: {error}.") from error
        if not EARLIEST_DATE <= day <= LATEST_DATE:
            raise _refusal(
                ItemErrorCode.OUT_OF_RANGE,
                f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}.",
            )
        return day


class MoneyAmount(JsonValue):
    """Yuan: a JSON number from 0 to the register's money limit, at most two decimals; loaded as
    `Decimal`, sent as a number."""

    openapi: ClassVar[dict[str, Any]] = {"type": "number", "minimum": 0, "maximum": MONEY_LIMIT}

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return int(value) if value == value.to_integral_value() else float(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refusal(ItemErrorCode.INVALID_TYPE, "Not a number.")
        try:
            amount = Decimal(str(value))
        except InvalidOperation as error:
            raise _refusal(ItemErrorCode.INVALID_VALUE, "Not a finite number.") from error
        if not amount.is_finite() or not 0 <= amount <= MONEY_LIMIT:
            raise _refusal(ItemErrorCode.OUT_OF_RANGE, f"Must be between 0 and {MONEY_LIMIT}.")
        if amount != amount.quantize(Decimal(1).scaleb(-MONEY_SCALE)):
            raise _refusal(ItemErrorCode.INVALID_VALUE, "At most two digits after the point.")
        return amount


def _phone() -> PatternString:
    return PatternString(
        PHONE_RE,
        ItemErrorCode.INVALID_VALUE,
        "A phone number: digits, optionally grouped with spaces or dashes.",
        max_length=24,
        allow_none=True,
    )


# --- requests ----------------------------------------------------------------------------------


class HelperCreateSchema(RequestSchema):
    """`POST /api/v1/households/{id}/helpers`: a fieldsync user (`user`: the username), or a named
    person (`name` and `phone`)."""

    user = ProtocolString(max_length=64)
    name = ProtocolString(max_length=NAME_LENGTH)
    phone = _phone()
    note = ProtocolString(max_length=NOTE_LENGTH, allow_none=True)
    assigned_on = DateString()

    @validates_schema
    def _someone(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "user" in data:
            return
        missing = [name for name in ("name", "phone") if not data.get(name)]
        if missing:
            raise ValidationError(
                ProtocolMessage(
                    ItemErrorCode.REQUIRED.value,
                    'Give "user" (a fieldsync username), or "name" and "phone" of the helper.',
                ),
                missing[0],
            )


class HelperUpdateSchema(RequestSchema):
    """`PATCH /api/v1/monitoring/helpers/{id}`: the fields to change (`null` clears the phone or
    the note)."""

    name = ProtocolString(max_length=NAME_LENGTH)
    phone = _phone()
    note = ProtocolString(max_length=NOTE_LENGTH, allow_none=True)


class HelperEndSchema(RequestSchema):
    """`POST /api/v1/monitoring/helpers/{id}/end`: `{}` (today) or `{"ended_on": "YYYY-MM-DD"}`."""

    ended_on = DateString()


class MeasureCreateSchema(RequestSchema):
    """`POST /api/v1/households/{id}/measures`."""

    type = ChoiceString(tuple(MeasureType.codes()), required=True)
    description = ProtocolString(max_length=DESCRIPTION_LENGTH, allow_none=True)
    start_date = DateString(required=True)
    end_date = DateString(allow_none=True)
    amount = MoneyAmount(allow_none=True)
    status = ChoiceString(
        tuple(MeasureStatus.codes()), load_default=MeasureStatus.IN_PROGRESS.value
    )
    outcome = ProtocolString(max_length=NOTE_LENGTH, allow_none=True)

    @validates_schema
    def _dates_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        end, start = data.get("end_date"), data.get("start_date")
        if end is not None and start is not None and end < start:
            raise ValidationError(
                ProtocolMessage(ItemErrorCode.OUT_OF_RANGE.value, "Must not be before start_date."),
                "end_date",
            )


class MeasureUpdateSchema(RequestSchema):
    """`PATCH /api/v1/monitoring/measures/{id}`: the fields to change (`null` clears optional
    ones). The dates are checked against each other once merged with the stored ones."""

    type = ChoiceString(tuple(MeasureType.codes()))
    description = ProtocolString(max_length=DESCRIPTION_LENGTH, allow_none=True)
    start_date = DateString()
    end_date = DateString(allow_none=True)
    amount = MoneyAmount(allow_none=True)
    status = ChoiceString(tuple(MeasureStatus.codes()))
    outcome = ProtocolString(max_length=NOTE_LENGTH, allow_none=True)


class HelpQuerySchema(RequestSchema):
    """`GET /api/v1/households/{id}/help`: `reveal=sensitive` shows helpers' phones (audited)."""

    reveal = ChoiceString(REVEAL_WORDS)


class FollowupQuerySchema(RequestSchema):
    """`GET /api/v1/monitoring/followups` query arguments."""

    region = PatternString(
        _REGION_CODE_RE, ItemErrorCode.INVALID_VALUE, "Must be a 12-digit division code."
    )
    state = ChoiceString(
        (FollowupState.OVERDUE.value, FollowupState.DUE.value),
        load_default=FollowupState.OVERDUE.value,
    )
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)
    offset = QueryInteger(minimum=0, load_default=0)


# --- responses ---------------------------------------------------------------------------------


class HelperSchema(ResponseSchema):
    """A helper; `phone` masked unless revealed; `user` the username of a fieldsync helper."""

    id = UuidString()
    household_id = UuidString()
    user = fields.String(allow_none=True)
    name = fields.String()
    phone = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    assigned_on = DateString()
    ended_on = DateString(allow_none=True)
    created_at = Rfc3339DateTime()


class MeasureSchema(ResponseSchema):
    id = UuidString()
    household_id = UuidString()
    type = fields.String()
    type_label = fields.Dict(keys=fields.String(), values=fields.String())
    description = fields.String(allow_none=True)
    start_date = DateString()
    end_date = DateString(allow_none=True)
    amount = MoneyAmount(allow_none=True)
    status = fields.String()
    outcome = fields.String(allow_none=True)
    created_at = Rfc3339DateTime()
    updated_at = Rfc3339DateTime()


class HouseholdHelpSchema(ResponseSchema):
    """`GET /api/v1/households/{id}/help`: current and former helpers, every measure."""

    household_id = UuidString()
    monitoring_status = fields.String()
    helpers = ProtocolList(ProtocolNested(HelperSchema))
    measures = ProtocolList(ProtocolNested(MeasureSchema))
    revealed = fields.Boolean()


class FollowupSchema(ResponseSchema):
    """One monitored household's follow-up: `due_at` is null when it was never visited."""

    household_id = UuidString()
    household_no = fields.String(allow_none=True)
    village_code = fields.String()
    monitoring_type = fields.String(allow_none=True)
    interval_days = fields.Integer()
    last_visit_at = Rfc3339DateTime(allow_none=True)
    due_at = Rfc3339DateTime(allow_none=True)
    state = fields.String()


class FollowupPageSchema(ResponseSchema):
    """`GET /api/v1/monitoring/followups`: most overdue first; `total` counts every match."""

    region = fields.String(allow_none=True)
    state = fields.String()
    as_of = Rfc3339DateTime()
    followups = ProtocolList(ProtocolNested(FollowupSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
