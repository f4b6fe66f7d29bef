"""Referrals (发现): the one way a household comes to the monitoring workflow, from any of the three
channels — its own application through sync, a cadre's screening (API or visit form), a
department warning (API, and the early-warning rules). `refer` is the function other code calls;
`refer_many` is the same for a whole push batch, in a fixed number of statements.

A household with no open case gets a new entry case at verification and moves to `entry_review`
(a server write through the change log, so tablets pull it); a household already under review or
monitored is never referred twice: the referral is attached to its open (or latest) case as more
evidence. Never commits: the caller's unit of work does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forms.register import MonitoringStatus, RiskCause
from server.audit import service as audit
from server.auth.actor import Actor
from server.errors import NotFound, ValidationFailed
from server.households.models import Household
from server.monitoring.models import MonitoringCase, Referral
from server.monitoring.terms import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    ReferralChannel,
    member_of,
)
from server.sensitive import SensitiveCodec
from server.sync.apply import apply_server_writes, lock_households
from sync_protocol.clock import HybridClock

MAX_NOTE = 2000
MAX_DEPARTMENT = 64
_CAUSES = frozenset(RiskCause.codes())
# Statuses a new referral opens an entry case from (the others already have, or had, one).
_OPENS_FROM = {
    MonitoringStatus.NOT_MONITORED: MonitoringStatus.NOT_MONITORED,
    MonitoringStatus.RISK_ELIMINATED: MonitoringStatus.RISK_ELIMINATED,
    # Under entry review with no open case (a register loaded with statuses): a rejection
    # restores "not monitored", the status the household had before anyone reviewed it.
    MonitoringStatus.ENTRY_REVIEW: MonitoringStatus.NOT_MONITORED,
}


@dataclass(frozen=True)
class ReferralRequest:
    household_id: uuid.UUID
    channel: ReferralChannel
    causes: Sequence[str]
    note: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    department: str | None = None
    submission_id: uuid.UUID | None = None
    warning_id: uuid.UUID | None = None
    referred_at: datetime | None = None  # None: now


@dataclass(frozen=True)
class ReferralResult:
    referral_id: uuid.UUID
    household_id: uuid.UUID
    channel: ReferralChannel
    case_id: uuid.UUID | None
    # True when this referral opened the case; False when it was attached to an existing one.
    opened_case: bool


def refer(
    session: Session,
    actor: Actor,
    household_id: uuid.UUID,
    channel: ReferralChannel,
    causes: Sequence[str],
    *,
    note: str | None,
    evidence: Mapping[str, Any],
    department: str | None = None,
    submission_id: uuid.UUID | None = None,
    warning_id: uuid.UUID | None = None,
    now: datetime,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> ReferralResult:
    """Refer one household. 422 for unknown causes, a department warning without a department or
    an over-long note; 404 for an unknown household; 403 when the actor does not cover its village.
    Audited (a referral by sync is recorded by its submission instead)."""
    request = ReferralRequest(
        household_id=household_id,
        channel=channel,
        causes=causes,
        note=note,
        evidence=evidence,
        department=department,
        submission_id=submission_id,
        warning_id=warning_id,
    )
    problems = referral_problems(request)
    if problems:
        raise ValidationFailed("the referral cannot be recorded", problems)
    village = session.scalar(
        select(Household.village_code).where(
            Household.id == household_id, Household.deleted.is_(False)
        )
    )
    if village is None:
        raise NotFound(f"no household {household_id}")
    actor.ensure_covers(village, "this household")
    (result,) = refer_many(session, actor, [request], now=now, clock=clock, codec=codec)
    audit.record(
        session,
        "refer_household",
        user_id=actor.user_id,
        object_type="household",
        object_id=str(household_id),
        region_code=village,
        address=actor.address,
        details={
            "referral": str(result.referral_id),
            "channel": channel.value,
            "case": None if result.case_id is None else str(result.case_id),
            "department": department,
        },
    )
    return result


def referral_problems(request: ReferralRequest) -> list[dict[str, Any]]:
    """What is wrong with a referral request, as `{path, code, message}` items."""
    problems: list[dict[str, Any]] = []
    unknown = [c for c in request.causes if c not in _CAUSES]
    if unknown or not request.causes:
        problems.append(
            {
                "path": "causes",
                "code": "invalid_choice",
                "message": "one or more risk causes, each one of: " + ", ".join(sorted(_CAUSES)),
            }
        )
    if request.note is not None and len(request.note) > MAX_NOTE:
        problems.append(
            {"path": "note", "code": "too_long", "message": f"at most {MAX_NOTE} characters"}
        )
    if request.channel is ReferralChannel.DEPARTMENT_WARNING and not (request.department or ""):
        problems.append(
            {"path": "department", "code": "required", "message": "name the department"}
        )
    if request.department is not None and len(request.department) > MAX_DEPARTMENT:
        problems.append(
            {
                "path": "department",
                "code": "too_long",
                "message": f"at most {MAX_DEPARTMENT} characters",
            }
        )
    return problems


def refer_many(
    session: Session,
    actor: Actor,
    requests: Sequence[ReferralRequest],
    *,
    now: datetime,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> list[ReferralResult]:
    """Record `requests` (already checked) in order; households not in the register are skipped.
    The households are locked first, so two transactions never open two cases for one."""
    if not requests:
        return []
    household_ids = {r.household_id for r in requests}
    lock_households(session, household_ids)
    households = {
        row.id: row
        for row in session.execute(
            select(Household.id, Household.village_code, Household.monitoring_status).where(
                Household.id.in_(household_ids), Household.deleted.is_(False)
            )
        )
    }
    # The open case of each household, else its latest one (a monitored household's entry case).
    cases: dict[uuid.UUID, uuid.UUID] = {}
    open_ids: set[uuid.UUID] = set()
    for found_id, household_id, outcome in session.execute(
        select(MonitoringCase.id, MonitoringCase.household_id, MonitoringCase.outcome)
        .where(MonitoringCase.household_id.in_(list(households)))
        .order_by(MonitoringCase.opened_at)
    ):
        if household_id not in open_ids:
            cases[household_id] = found_id
        if outcome is CaseOutcome.OPEN:
            open_ids.add(household_id)
    results: list[ReferralResult] = []
    new_cases: list[MonitoringCase] = []
    referrals: list[Referral] = []
    for request in requests:
        household = households.get(request.household_id)
        if household is None:
            continue
        status = member_of(MonitoringStatus, household.monitoring_status)
        opened = request.household_id not in open_ids and status in _OPENS_FROM
        if opened:
            case = MonitoringCase(
                id=uuid.uuid4(),
                household_id=request.household_id,
                village_code=household.village_code,
                direction=CaseDirection.ENTRY,
                stage=CaseStage.VERIFICATION,
                outcome=CaseOutcome.OPEN,
                prior_status=_OPENS_FROM[status],
                risk_causes=[],
                version=0,
                opened_at=now,
                opened_by_id=actor.user_id,
                updated_at=now,
            )
            new_cases.append(case)
            case_id: uuid.UUID | None = case.id
            cases[request.household_id] = case.id
            open_ids.add(request.household_id)
        else:
            case_id = cases.get(request.household_id)
        referral = Referral(
            id=uuid.uuid4(),
            household_id=request.household_id,
            village_code=household.village_code,
            case_id=case_id,
            channel=request.channel,
            referred_by_id=actor.user_id,
            department=request.department,
            causes=sorted(set(request.causes)),
            note=request.note,
            evidence=dict(request.evidence),
            submission_id=request.submission_id,
            warning_id=request.warning_id,
            referred_at=request.referred_at or now,
            created_at=now,
        )
        referrals.append(referral)
        results.append(
            ReferralResult(referral.id, request.household_id, request.channel, case_id, opened)
        )
    session.add_all(new_cases)
    session.flush()
    session.add_all(referrals)
    session.flush()
    if new_cases:
        apply_server_writes(
            session,
            actor,
            "household",
            {
                case.household_id: {"monitoring_status": MonitoringStatus.ENTRY_REVIEW.value}
                for case in new_cases
            },
            clock=clock,
            codec=codec,
        )
    return results
