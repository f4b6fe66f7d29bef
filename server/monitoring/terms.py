"""The words of the monitoring workflow: referral channels, case directions, stages, outcomes and
decisions, each with its Chinese and English label. Pure enumerations, shared by the tables, the
chain rules and the API; no database here."""

from __future__ import annotations

from typing import TypeVar

from forms.register import LabelledEnum

E = TypeVar("E", bound=LabelledEnum)


class ReferralChannel(LabelledEnum):
    """发现渠道 — how a household came to notice."""

    SELF_APPLICATION = ("self_application", "农户自主申报", "Household's own application")
    CADRE_SCREENING = ("cadre_screening", "基层干部排查", "Cadre's screening")
    DEPARTMENT_WARNING = ("department_warning", "部门筛查预警", "Department warning")


class CaseDirection(LabelledEnum):
    ENTRY = ("entry", "纳入监测", "Entry into monitoring")
    EXIT = ("exit", "风险消除", "Exit: risk eliminated")


class CaseStage(LabelledEnum):
    """Where an open case waits, in chain order; `closed` after the county approves or a reject."""

    VERIFICATION = ("verification", "入户核查", "Household verification visit")
    VILLAGE_REVIEW = ("village_review", "村级评议公示", "Village deliberation and public notice")
    TOWNSHIP_REVIEW = ("township_review", "乡镇初审", "Township first review")
    COUNTY_REVIEW = ("county_review", "县级审定", "County approval")
    CLOSED = ("closed", "已办结", "Closed")


class CaseOutcome(LabelledEnum):
    OPEN = ("open", "办理中", "Open")
    APPROVED = ("approved", "已批准", "Approved")
    REJECTED = ("rejected", "未通过", "Rejected")


class StepDecision(LabelledEnum):
    APPROVE = ("approve", "通过", "Approve")
    RETURN = ("return", "退回", "Return to the previous step")
    REJECT = ("reject", "不予通过", "Reject")


def member_of(kind: type[E], code: object) -> E:
    """The member of `kind` with value `code` (a member passes through); ValueError if none."""
    if isinstance(code, kind):
        return code
    for member in kind:
        if member.value == code:
            return member
    raise ValueError(f"{code!r} is not a {kind.__name__}")
