"""Shapes of the monitoring endpoints: referral, exit-case and step requests, the case as
reviewers see it, the case list query and the settings. Shape only: whether a step fits the
case (stage, dates against settings, attachments that exist) is the service's business."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields
from marshmallow.validate import Length

from forms.register import MonitoringType, RiskCause
from server.monitoring.settings import SETTINGS
from server.monitoring.terms import CaseDirection, CaseOutcome, CaseStage, StepDecision
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    JsonObject,
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

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_TEXT = 2000
_REGION_CODE_RE = re.compile(r"(?:0[1-9]|[1-9][0-9])[0-9]{10}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
CAUSES = tuple(RiskCause.codes())
REVIEW_STAGES = tuple(s.value for s in CaseStage if s is not CaseStage.CLOSED)


def _region() -> PatternString:
    return PatternString(
        _REGION_CODE_RE, ItemErrorCode.INVALID_VALUE, "Must be a 12-digit division code."
    )


class IsoDate(PatternString):
    """A calendar date `YYYY-MM-DD`, loaded as a `date` (2026-02-30 is refused)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(_DATE_RE, ItemErrorCode.INVALID_VALUE, "A date YYYY-MM-DD.", **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise ValidationError(
                ProtocolMessage(ItemErrorCode.INVALID_VALUE.value, "Not a calendar date.")
            ) from exc


def _causes(required: bool = True) -> ProtocolList:
    return ProtocolList(
        ChoiceString(CAUSES),
        max_items=len(CAUSES) * 2,
        required=required,
        validate=Length(min=1, error=ProtocolMessage("required", "Name at least one cause.")),
    )


class ScreeningReferralSchema(RequestSchema):
    """`POST /api/v1/monitoring/referrals`: a cadre's screening (基层干部排查)."""

    household_id = UuidString(required=True)
    causes = _causes()
    note = ProtocolString(max_length=MAX_TEXT, required=True)
    evidence = JsonObject()


class DepartmentReferralSchema(RequestSchema):
    """`POST /api/v1/monitoring/referrals/department`: a department's warning (部门筛查预警)."""

    household_id = UuidString(required=True)
    department = ProtocolString(max_length=64, required=True)
    causes = _causes()
    note = ProtocolString(max_length=MAX_TEXT)
    evidence = JsonObject(required=True)
    warning_id = UuidString()


class ReferralResultSchema(ResponseSchema):
    referral_id = UuidString()
    household_id = UuidString()
    channel = fields.Function(lambda r: r.channel.value)
    case_id = UuidString(allow_none=True)
    opened_case = fields.Boolean()


class ExitCaseRequestSchema(RequestSchema):
    """`POST /api/v1/monitoring/exit-cases`: open the exit chain (风险消除) with its evidence."""

    household_id = UuidString(required=True)
    income_months_above_line = StrictInteger(minimum=0, maximum=1200, required=True)
    causes_resolved = _causes()
    measure_outcomes = ProtocolString(max_length=MAX_TEXT, required=True)
    note = ProtocolString(max_length=MAX_TEXT)


class StepRequestSchema(RequestSchema):
    """`POST /api/v1/monitoring/cases/{id}/steps`: decide the stage the case waits at."""

    stage = ChoiceString(REVIEW_STAGES, required=True)
    decision = ChoiceString(tuple(StepDecision.codes()), required=True)
    comment = ProtocolString(max_length=MAX_TEXT)
    attachments = ProtocolList(
        PatternString(_DIGEST_RE, ItemErrorCode.INVALID_VALUE, "sha256:<64 hex>"), max_items=20
    )
    deliberation_date = IsoDate()
    notice_start = IsoDate()
    notice_end = IsoDate()
    objections = ProtocolList(ProtocolString(max_length=MAX_TEXT), max_items=100)
    monitoring_type = ChoiceString(tuple(MonitoringType.codes()))
    risk_causes = _causes(required=False)


class CaseListQuerySchema(RequestSchema):
    """`GET /api/v1/monitoring/cases` query arguments (all optional)."""

    stage = ChoiceString(tuple(CaseStage.codes()))
    direction = ChoiceString(tuple(CaseDirection.codes()))
    outcome = ChoiceString(tuple(CaseOutcome.codes()))
    region = _region()
    household_id = UuidString()
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_SIZE, load_default=DEFAULT_PAGE_SIZE)
    offset = QueryInteger(minimum=0, load_default=0)


class StepSchema(ResponseSchema):
    seq = fields.Integer()
    stage = fields.Function(lambda s: s.stage.value)
    decision = fields.Function(lambda s: s.decision.value)
    taken_by = fields.String(allow_none=True)
    taken_at = Rfc3339DateTime()
    comment = fields.String(allow_none=True)
    details = fields.Dict()
    attachments = fields.List(fields.String())
    submission_id = UuidString(allow_none=True)


class CaseReferralSchema(ResponseSchema):
    id = UuidString()
    channel = fields.String()
    referred_by = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    causes = fields.List(fields.String())
    note = fields.String(allow_none=True)
    evidence = fields.Dict()
    submission_id = UuidString(allow_none=True)
    warning_id = UuidString(allow_none=True)
    referred_at = Rfc3339DateTime()


class CaseSummarySchema(ResponseSchema):
    id = UuidString()
    household_id = UuidString()
    village_code = fields.String()
    direction = fields.Function(lambda c: c.direction.value)
    stage = fields.Function(lambda c: c.stage.value)
    stage_label = fields.Function(lambda c: c.stage.zh)
    outcome = fields.Function(lambda c: c.outcome.value)
    prior_status = fields.Function(lambda c: c.prior_status.value)
    monitoring_type = fields.Function(
        lambda c: None if c.monitoring_type is None else c.monitoring_type.value
    )
    risk_causes = fields.List(fields.String())
    evidence = fields.Dict()
    version = fields.Integer()
    opened_at = Rfc3339DateTime()
    opened_by = fields.String(allow_none=True)
    closed_at = Rfc3339DateTime(allow_none=True)
    waiting_for = fields.String(allow_none=True)


class CaseSchema(CaseSummarySchema):
    """A case with its full history: steps and referrals, oldest first."""

    steps = fields.List(ProtocolNested(StepSchema))
    referrals = fields.List(ProtocolNested(CaseReferralSchema))


class CasePageSchema(ResponseSchema):
    cases = fields.List(ProtocolNested(CaseSummarySchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class SettingsQuerySchema(RequestSchema):
    """`GET /api/v1/monitoring/settings?region=CODE` (default: installation-wide values)."""

    region = _region()


class SettingsUpdateSchema(RequestSchema):
    """`PUT /api/v1/monitoring/settings`: `{"region": CODE or "*", "values": {name: number}}`."""

    region = PatternString(
        re.compile(r"(?:\*|(?:0[1-9]|[1-9][0-9])[0-9]{10})"),
        ItemErrorCode.INVALID_VALUE,
        'A 12-digit division code, or "*" for everywhere.',
        required=True,
    )
    values = fields.Dict(
        keys=ChoiceString(tuple(SETTINGS)),
        values=StrictInteger(minimum=0, maximum=100000),
        required=True,
    )


class SettingSchema(ResponseSchema):
    name = fields.String()
    value = fields.Integer()
    default = fields.Integer()
    minimum = fields.Integer()
    maximum = fields.Integer()
    label = fields.String()
    set_on = fields.String(allow_none=True)


class SettingsSchema(ResponseSchema):
    region = fields.String()
    settings = fields.List(ProtocolNested(SettingSchema))
