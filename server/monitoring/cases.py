"""Monitoring cases: opening an exit case, taking a step of the review chain, the verification
visit recorded from sync, and reading cases with their full history.

The only writer of the register's server-owned fields (`monitoring_status`, `monitoring_type`,
`risk_causes`): each change is the result of a step, written in the step's transaction through
`apply_server_writes` (change log and clocks, so tablets pull it). A step locks its case row and
appends `(case_id, seq)`; a second reviewer deciding the same stage meets the moved case and gets
409 with its current state. Services flush; the caller's unit of work commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forms.register import MonitoringStatus, MonitoringType, RiskCause
from server.attachments.models import Attachment
from server.audit import service as audit
from server.auth.actor import Actor
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.households.models import Household
from server.monitoring import chain, settings
from server.monitoring.models import CaseStep, MonitoringCase, Referral
from server.monitoring.terms import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    ReferralChannel,
    StepDecision,
    member_of,
)
from server.regions.codes import is_valid_code
from server.regions.models import Region
from server.sensitive import SensitiveCodec
from server.submissions.payload import masked_value
from server.sync.apply import apply_server_writes, household_lock, lock_households
from server.users.models import User
from sync_protocol.clock import HybridClock

MAX_TEXT = 2000
MAX_OBJECTIONS = 100
MAX_ATTACHMENTS = 20
_CAUSES = frozenset(RiskCause.codes())


# --- what the service returns ------------------------------------------------------------------


@dataclass(frozen=True)
class StepView:
    seq: int
    stage: CaseStage
    decision: StepDecision
    taken_by: str | None
    taken_at: datetime
    comment: str | None
    details: dict[str, Any]
    attachments: list[str]
    submission_id: uuid.UUID | None


@dataclass(frozen=True)
class ReferralView:
    id: uuid.UUID
    channel: str
    referred_by: str | None
    department: str | None
    causes: list[str]
    note: str | None
    evidence: dict[str, Any]
    submission_id: uuid.UUID | None
    warning_id: uuid.UUID | None
    referred_at: datetime


@dataclass(frozen=True)
class CaseView:
    id: uuid.UUID
    household_id: uuid.UUID
    village_code: str
    direction: CaseDirection
    stage: CaseStage
    outcome: CaseOutcome
    prior_status: MonitoringStatus
    monitoring_type: MonitoringType | None
    risk_causes: list[str]
    evidence: dict[str, Any]
    version: int
    opened_at: datetime
    opened_by: str | None
    closed_at: datetime | None
    # Who may take the next step, in words (None once closed).
    waiting_for: str | None
    steps: list[StepView] = field(default_factory=list)
    referrals: list[ReferralView] = field(default_factory=list)


@dataclass(frozen=True)
class CasePage:
    cases: list[CaseView]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class CaseFilters:
    stage: str | None = None
    direction: str | None = None
    outcome: str | None = None
    region: str | None = None
    household_id: uuid.UUID | None = None
    # Cases with at least one referral from this channel (ReferralChannel code).
    channel: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class HouseholdPlace:
    """How people name a case's household: its number and its village's name."""

    household_no: str | None
    village_name: str | None


@dataclass(frozen=True)
class StepRequest:
    """One decision on a case, with the stage the reviewer means to decide (a stale screen gets a
    409 instead of deciding the stage after it)."""

    stage: CaseStage
    decision: StepDecision
    comment: str | None = None
    attachments: Sequence[str] = ()
    # village_review (approve): the deliberation and the public notice
    deliberation_date: date | None = None
    notice_start: date | None = None
    notice_end: date | None = None
    objections: Sequence[str] = ()
    # county_review (approve, entry): what the register will say
    monitoring_type: str | None = None
    risk_causes: Sequence[str] | None = None


@dataclass(frozen=True)
class ExitEvidence:
    """What an exit case opens with: income stably above the monitoring line for this many
    months, the causes now resolved (all of the household's), and the measures' outcomes."""

    income_months_above_line: int
    causes_resolved: Sequence[str]
    measure_outcomes: str
    note: str | None = None


def waiting_for(stage: CaseStage) -> str | None:
    rule = chain.RULES.get(stage)
    if rule is None:
        return None
    roles = " or ".join(sorted(rule.roles))
    return f"{stage.zh} ({stage.en}): a {roles} with a grant on the {rule.lowest_grant_level.value}"


# --- reading ------------------------------------------------------------------------------------


def _load_case(session: Session, case_id: uuid.UUID) -> MonitoringCase:
    case = session.get(MonitoringCase, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return case


def _usernames(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    return {user_id: username for user_id, username in rows}


def _summary(case: MonitoringCase, names: Mapping[int, str]) -> CaseView:
    return CaseView(
        id=case.id,
        household_id=case.household_id,
        village_code=case.village_code,
        direction=case.direction,
        stage=case.stage,
        outcome=case.outcome,
        prior_status=case.prior_status,
        monitoring_type=case.monitoring_type,
        risk_causes=list(case.risk_causes),
        evidence=masked_value(case.evidence),
        version=case.version,
        opened_at=case.opened_at,
        opened_by=names.get(case.opened_by_id) if case.opened_by_id is not None else None,
        closed_at=case.closed_at,
        waiting_for=waiting_for(case.stage) if case.outcome is CaseOutcome.OPEN else None,
    )


def case_view(session: Session, case: MonitoringCase) -> CaseView:
    """The case with its steps and referrals, oldest first (free texts masked): two queries, each
    with the usernames of who took or made them (a third only for an opener who did neither)."""
    taken = session.execute(
        select(CaseStep, User.username)
        .outerjoin(User, User.id == CaseStep.taken_by_id)
        .where(CaseStep.case_id == case.id)
        .order_by(CaseStep.seq)
    ).all()
    made = session.execute(
        select(Referral, User.username)
        .outerjoin(User, User.id == Referral.referred_by_id)
        .where(Referral.case_id == case.id)
        .order_by(Referral.referred_at)
    ).all()
    steps = [s for s, _ in taken]
    referrals = [r for r, _ in made]
    names = {s.taken_by_id: name for s, name in taken if name is not None}
    names.update((r.referred_by_id, name) for r, name in made if name is not None)
    if case.opened_by_id not in names:
        names.update(_usernames(session, {case.opened_by_id}))
    summary = _summary(case, names)
    return replace(
        summary,
        steps=[
            StepView(
                seq=s.seq,
                stage=s.stage,
                decision=s.decision,
                taken_by=names.get(s.taken_by_id) if s.taken_by_id is not None else None,
                taken_at=s.taken_at,
                comment=masked_value(s.comment),
                details=masked_value(s.details),
                attachments=list(s.attachments),
                submission_id=s.submission_id,
            )
            for s in steps
        ],
        referrals=[
            ReferralView(
                id=r.id,
                channel=r.channel.value,
                referred_by=names.get(r.referred_by_id) if r.referred_by_id is not None else None,
                department=r.department,
                causes=list(r.causes),
                note=masked_value(r.note),
                evidence=masked_value(r.evidence),
                submission_id=r.submission_id,
                warning_id=r.warning_id,
                referred_at=r.referred_at,
            )
            for r in referrals
        ],
    )


def get_case(session: Session, actor: Actor, case_id: uuid.UUID) -> CaseView:
    """404 for an unknown case, 403 outside the caller's regions."""
    case = _load_case(session, case_id)
    actor.ensure_covers(case.village_code, "this case")
    return case_view(session, case)


def list_cases(session: Session, actor: Actor, filters: CaseFilters) -> CasePage:
    """Cases in the caller's regions (and under `region`), newest first, without history."""
    conditions: list[Any] = [actor.region_filter(MonitoringCase.village_code)]
    if filters.region is not None:
        if not is_valid_code(filters.region):
            raise ValidationFailed(
                "bad region", [{"path": "region", "code": "invalid", "message": "12 digits"}]
            )
        conditions.append(_under(filters.region))
    if filters.stage is not None:
        conditions.append(MonitoringCase.stage == member_of(CaseStage, filters.stage))
    if filters.direction is not None:
        conditions.append(MonitoringCase.direction == member_of(CaseDirection, filters.direction))
    if filters.outcome is not None:
        conditions.append(MonitoringCase.outcome == member_of(CaseOutcome, filters.outcome))
    if filters.household_id is not None:
        conditions.append(MonitoringCase.household_id == filters.household_id)
    if filters.channel is not None:
        channel = member_of(ReferralChannel, filters.channel)
        conditions.append(
            MonitoringCase.id.in_(select(Referral.case_id).where(Referral.channel == channel))
        )
    where = and_(*conditions)
    total = session.scalar(select(func.count()).select_from(MonitoringCase).where(where)) or 0
    statement: Select[tuple[MonitoringCase]] = (
        select(MonitoringCase)
        .where(where)
        .order_by(MonitoringCase.opened_at.desc(), MonitoringCase.id)
        .limit(filters.limit)
        .offset(filters.offset)
    )
    cases = list(session.scalars(statement))
    names = _usernames(session, {c.opened_by_id for c in cases})
    return CasePage([_summary(c, names) for c in cases], total, filters.limit, filters.offset)


def household_places(
    session: Session, actor: Actor, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, HouseholdPlace]:
    """The household number and village name of each household the caller covers, in one
    statement (for lists of cases, which carry only the household's id)."""
    if not household_ids:
        return {}
    rows = session.execute(
        select(Household.id, Household.household_no, Region.name)
        .outerjoin(Region, Region.code == Household.village_code)
        .where(
            Household.id.in_(set(household_ids)),
            actor.region_filter(Household.village_code),
        )
    )
    return {row[0]: HouseholdPlace(row[1], row[2]) for row in rows}


def _under(region: str) -> Any:
    from server.regions.codes import code_range

    low, high = code_range(region)
    return and_(MonitoringCase.village_code >= low, MonitoringCase.village_code <= high)


# --- opening an exit case ----------------------------------------------------------------------


def open_exit_case(
    session: Session,
    actor: Actor,
    household_id: uuid.UUID,
    evidence: ExitEvidence,
    *,
    now: datetime,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> CaseView:
    """Open the exit case (风险消除) of a monitored household: it moves to `exit_review`.

    404 unknown household; 403 outside the caller's regions or for a role that may not verify;
    409 when the household is not monitored or already has an open case; 422 for evidence that
    does not make the case (too few months above the line, causes left unresolved)."""
    lock_households(session, {household_id})
    household = session.execute(
        select(Household.village_code, Household.monitoring_status, Household.risk_causes).where(
            Household.id == household_id, Household.deleted.is_(False)
        )
    ).one_or_none()
    if household is None:
        raise NotFound(f"no household {household_id}")
    village, status, causes = household
    refusal = chain.may_take(actor.role.value, actor.region_codes, CaseStage.VERIFICATION, village)
    if refusal is not None:
        raise Forbidden(
            "you may not open a case for this household", details={"refusal": refusal.value}
        )
    open_case = session.scalar(
        select(MonitoringCase.id).where(
            MonitoringCase.household_id == household_id,
            MonitoringCase.outcome == CaseOutcome.OPEN,
        )
    )
    if open_case is not None:
        raise Conflict(
            "the household already has an open case", details={"case_id": str(open_case)}
        )
    if member_of(MonitoringStatus, status) is not MonitoringStatus.MONITORED:
        raise Conflict(
            "only a monitored household can leave monitoring",
            details={"monitoring_status": member_of(MonitoringStatus, status).value},
        )
    months = settings.effective(session, village, "exit_stable_income_months")
    problems: list[dict[str, Any]] = []
    if evidence.income_months_above_line < months:
        problems.append(
            {
                "path": "income_months_above_line",
                "code": "below_min",
                "message": f"income must stay above the monitoring line for {months} months here",
            }
        )
    unknown = [c for c in evidence.causes_resolved if c not in _CAUSES]
    left = sorted(set(causes or []) - set(evidence.causes_resolved))
    if unknown:
        problems.append(
            {"path": "causes_resolved", "code": "invalid_choice", "message": "unknown causes"}
        )
    elif left:
        problems.append(
            {
                "path": "causes_resolved",
                "code": "incomplete",
                "message": "causes still unresolved: " + ", ".join(left),
            }
        )
    if not evidence.measure_outcomes.strip():
        problems.append(
            {"path": "measure_outcomes", "code": "required", "message": "say what the help did"}
        )
    if problems:
        raise ValidationFailed("the exit case cannot be opened", problems)
    case = MonitoringCase(
        id=uuid.uuid4(),
        household_id=household_id,
        village_code=village,
        direction=CaseDirection.EXIT,
        stage=CaseStage.VERIFICATION,
        outcome=CaseOutcome.OPEN,
        prior_status=MonitoringStatus.MONITORED,
        risk_causes=sorted(set(causes or [])),
        evidence={
            "income_months_above_line": evidence.income_months_above_line,
            "causes_resolved": sorted(set(evidence.causes_resolved)),
            "measure_outcomes": evidence.measure_outcomes,
            "note": evidence.note,
        },
        version=0,
        opened_at=now,
        opened_by_id=actor.user_id,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    apply_server_writes(
        session,
        actor,
        "household",
        {household_id: {"monitoring_status": MonitoringStatus.EXIT_REVIEW.value}},
        clock=clock,
        codec=codec,
    )
    audit.record(
        session,
        "open_exit_case",
        user_id=actor.user_id,
        object_type="monitoring_case",
        object_id=str(case.id),
        region_code=village,
        address=actor.address,
        details={"household": str(household_id)},
    )
    session.flush()
    return case_view(session, case)


# --- taking a step -----------------------------------------------------------------------------


def take_step(
    session: Session,
    actor: Actor,
    case_id: uuid.UUID,
    request: StepRequest,
    *,
    now: datetime,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> CaseView:
    """Decide `request.stage` of a case. 404 unknown case; 403 outside the caller's regions or
    a role/level that may not take the stage (`chain.may_take`); 409 (with the case) when the
    case is not waiting at that stage; 422 for a decision or details that do not fit."""
    approving_village = (
        request.stage is CaseStage.VILLAGE_REVIEW and request.decision is StepDecision.APPROVE
    )
    case, found = _lock_case(session, case_id, NOTICE_SETTINGS if approving_village else ())
    actor.ensure_covers(case.village_code, "this case")
    refusal = chain.may_take(actor.role.value, actor.region_codes, request.stage, case.village_code)
    if refusal is not None:
        raise Forbidden(
            f"you may not take the {request.stage.value} step of this case",
            details={"refusal": refusal.value, "stage": request.stage.value},
        )
    if case.outcome is not CaseOutcome.OPEN or case.stage is not request.stage:
        raise Conflict(
            f"the case is not waiting at {request.stage.value}",
            details={"case": _state(case)},
        )
    if request.stage is CaseStage.VERIFICATION and request.decision is StepDecision.APPROVE:
        raise ValidationFailed(
            "verification is recorded by the visit",
            [
                {
                    "path": "decision",
                    "code": "invalid_choice",
                    "message": "a verification is approved by the collector's visit form "
                    "arriving through sync; by API it can only be rejected",
                }
            ],
        )
    details = _step_details(session, case, request, now, found)
    transition = chain.next_after(case.stage, request.decision)
    writes: dict[str, Any] = {}
    if transition.outcome is CaseOutcome.REJECTED:
        writes["monitoring_status"] = case.prior_status.value
    elif transition.outcome is CaseOutcome.APPROVED:
        if case.direction is CaseDirection.ENTRY:
            case.monitoring_type = member_of(MonitoringType, str(request.monitoring_type))
            case.risk_causes = sorted(set(request.risk_causes or ()))
            writes = {
                "monitoring_status": MonitoringStatus.MONITORED.value,
                "monitoring_type": case.monitoring_type.value,
                "risk_causes": case.risk_causes,
            }
        else:
            writes["monitoring_status"] = MonitoringStatus.RISK_ELIMINATED.value
    _append_step(
        session,
        case,
        transition,
        decision=request.decision,
        actor_id=actor.user_id,
        now=now,
        comment=request.comment,
        details=details,
        attachments=sorted(set(request.attachments)),
        submission_id=None,
    )
    if writes:
        apply_server_writes(
            session, actor, "household", {case.household_id: writes}, clock=clock, codec=codec
        )
    audit.record(
        session,
        "take_case_step",
        user_id=actor.user_id,
        object_type="monitoring_case",
        object_id=str(case.id),
        region_code=case.village_code,
        address=actor.address,
        details={"seq": case.version, "stage": request.stage.value, "decision": request.decision},
    )
    session.flush()
    return case_view(session, case)


# What the village review checks a notice period against (`_notice_problems`).
NOTICE_SETTINGS = ("notice_min_days", "notice_days")


def _lock_case(
    session: Session, case_id: uuid.UUID, wanted: Sequence[str]
) -> tuple[MonitoringCase, dict[str, int]]:
    """The case, read under its household's lock and then its own row lock, and the settings
    `wanted` of its village, in one statement. The household's lock comes first: the order a
    push verifying the case takes too (it holds its households' locks), so a step and a push
    never wait for each other; what another reviewer committed meanwhile is what is read."""
    statement = (
        select(
            MonitoringCase,
            household_lock(session, MonitoringCase.household_id),
            *settings.effective_in_query(MonitoringCase.village_code, wanted),
        )
        .where(MonitoringCase.id == case_id)
        .with_for_update(of=MonitoringCase)
        .execution_options(populate_existing=True)
    )
    row = session.execute(statement).one_or_none()
    if row is None:
        raise NotFound(f"no case {case_id}")
    values = row[2:]
    found = {name: settings.or_default(name, values[i]) for i, name in enumerate(wanted)}
    return row[0], found


def _state(case: MonitoringCase) -> dict[str, Any]:
    return {
        "id": str(case.id),
        "stage": case.stage.value,
        "outcome": case.outcome.value,
        "version": case.version,
    }


def _append_step(
    session: Session,
    case: MonitoringCase,
    transition: chain.Transition,
    *,
    decision: StepDecision,
    actor_id: int | None,
    now: datetime,
    comment: str | None,
    details: dict[str, Any],
    attachments: list[str],
    submission_id: uuid.UUID | None,
) -> None:
    stage = case.stage
    case.version += 1
    case.stage = transition.stage
    case.outcome = transition.outcome
    case.updated_at = now
    if transition.is_closing:
        case.closed_at = now
    session.add(
        CaseStep(
            id=uuid.uuid4(),
            case_id=case.id,
            seq=case.version,
            stage=stage,
            decision=decision,
            taken_by_id=actor_id,
            taken_at=now,
            comment=comment,
            details=details,
            attachments=attachments,
            submission_id=submission_id,
        )
    )
    try:
        session.flush()
    except IntegrityError as exc:  # (case_id, seq) taken meanwhile: another reviewer won
        raise Conflict("the step was taken meanwhile", details={"case": _state(case)}) from exc


def _step_details(
    session: Session,
    case: MonitoringCase,
    request: StepRequest,
    now: datetime,
    found: Mapping[str, int],
) -> dict[str, Any]:
    """The stage's record, after checking every rule; 422 listing every problem at once."""
    problems: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    if request.decision not in chain.decisions_at(request.stage):
        problems.append(
            {
                "path": "decision",
                "code": "invalid_choice",
                "message": f"{request.decision.value} is not a decision at {request.stage.value}",
            }
        )
    if (
        request.decision in (StepDecision.RETURN, StepDecision.REJECT)
        and not (request.comment or "").strip()
    ):
        problems.append(
            {"path": "comment", "code": "required", "message": "give the reason in comment"}
        )
    if request.comment is not None and len(request.comment) > MAX_TEXT:
        problems.append(
            {"path": "comment", "code": "too_long", "message": f"at most {MAX_TEXT} characters"}
        )
    approving = request.decision is StepDecision.APPROVE
    if request.stage is CaseStage.VILLAGE_REVIEW and approving:
        problems += _notice_problems(found, request, now.date(), details)
    if (
        request.stage is CaseStage.COUNTY_REVIEW
        and approving
        and case.direction is CaseDirection.ENTRY
    ):
        if request.monitoring_type not in MonitoringType.codes():
            problems.append(
                {
                    "path": "monitoring_type",
                    "code": "required",
                    "message": "one of " + ", ".join(MonitoringType.codes()),
                }
            )
        causes = list(request.risk_causes or ())
        if not causes or any(c not in _CAUSES for c in causes):
            problems.append(
                {
                    "path": "risk_causes",
                    "code": "invalid_choice",
                    "message": "the confirmed causes, each one of " + ", ".join(sorted(_CAUSES)),
                }
            )
        details = {"monitoring_type": request.monitoring_type, "risk_causes": sorted(set(causes))}
    if len(request.attachments) > MAX_ATTACHMENTS:
        problems.append(
            {"path": "attachments", "code": "too_many", "message": f"at most {MAX_ATTACHMENTS}"}
        )
    elif request.attachments:
        known = set(
            session.scalars(
                select(Attachment.digest).where(Attachment.digest.in_(set(request.attachments)))
            )
        )
        missing = sorted(set(request.attachments) - known)
        if missing:
            problems.append(
                {
                    "path": "attachments",
                    "code": "unknown_attachment",
                    "message": "upload these first: " + ", ".join(missing),
                }
            )
    if problems:
        raise ValidationFailed("the step cannot be taken", problems)
    return details


def _notice_problems(
    found: Mapping[str, int],
    request: StepRequest,
    today: date,
    details: dict[str, Any],
) -> list[dict[str, Any]]:
    """村级评议 with 公示: the deliberation date, then a notice period of at least
    `notice_min_days` (default end: start + `notice_days`), over before it is approved; `found`
    holds the village's `NOTICE_SETTINGS`."""
    problems: list[dict[str, Any]] = []
    deliberation, start, end = request.deliberation_date, request.notice_start, request.notice_end
    if deliberation is None:
        problems.append(
            {"path": "deliberation_date", "code": "required", "message": "the date of 评议"}
        )
    elif deliberation > today:
        problems.append(
            {"path": "deliberation_date", "code": "in_future", "message": "not after today"}
        )
    if start is None:
        problems.append({"path": "notice_start", "code": "required", "message": "公示 start"})
        return problems
    if deliberation is not None and start < deliberation:
        problems.append(
            {
                "path": "notice_start",
                "code": "before_deliberation",
                "message": "the notice starts on or after the deliberation",
            }
        )
    minimum = found["notice_min_days"]
    if end is None:
        end = start + timedelta(days=found["notice_days"])
    if end <= start:
        problems.append(
            {"path": "notice_end", "code": "before_start", "message": "ends after it starts"}
        )
    elif (end - start).days < minimum:
        problems.append(
            {
                "path": "notice_end",
                "code": "too_short",
                "message": f"the notice lasts at least {minimum} days here",
            }
        )
    if end > today:
        problems.append(
            {
                "path": "notice_end",
                "code": "notice_not_over",
                "message": f"the notice runs until {end.isoformat()}: approve after it ends",
            }
        )
    if len(request.objections) > MAX_OBJECTIONS or any(
        len(o) > MAX_TEXT for o in request.objections
    ):
        problems.append(
            {"path": "objections", "code": "too_long", "message": "too many or too long"}
        )
    details.update(
        deliberation_date=None if deliberation is None else deliberation.isoformat(),
        notice_start=start.isoformat(),
        notice_end=end.isoformat(),
        notice_days=(end - start).days,
        objections=list(request.objections),
    )
    return problems


# --- the verification visit, from sync ---------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    instance_id: uuid.UUID
    household_id: uuid.UUID
    collected_at: datetime


def record_verification_visits(
    session: Session, actor: Actor, visits: Sequence[Visit], now: datetime
) -> list[uuid.UUID]:
    """Link accepted visits to the open cases waiting at verification for their households, as
    the verification step taken by the visit's collector: the visit must be collected after the
    referral (entry) or the opening (exit), by a collector whose grants cover the village. One
    query for every visit of a push; returns the cases that moved to the village review."""
    by_household: dict[uuid.UUID, Visit] = {}
    for visit in sorted(visits, key=lambda v: v.collected_at):
        by_household.setdefault(visit.household_id, visit)
    if not by_household:
        return []
    # Most pushes meet no case waiting at verification: one indexed look-up, and done.
    cases = list(
        session.scalars(
            select(MonitoringCase)
            .where(
                MonitoringCase.household_id.in_(list(by_household)),
                MonitoringCase.outcome == CaseOutcome.OPEN,
                MonitoringCase.stage == CaseStage.VERIFICATION,
            )
            .with_for_update()
        )
    )
    if not cases:
        return []
    referred: dict[uuid.UUID, datetime] = {
        case_id: moment
        for case_id, moment in session.execute(
            select(Referral.case_id, func.min(Referral.referred_at))
            .where(Referral.case_id.in_([case.id for case in cases]))
            .group_by(Referral.case_id)
        )
        if case_id is not None
    }
    moved: list[uuid.UUID] = []
    for case in cases:
        since = referred.get(case.id)
        if chain.may_take(
            actor.role.value, actor.region_codes, CaseStage.VERIFICATION, case.village_code
        ):
            continue
        after = since if case.direction is CaseDirection.ENTRY and since else case.opened_at
        eligible = [
            v
            for v in visits
            if v.household_id == case.household_id and _utc(v.collected_at) > _utc(after)
        ]
        if not eligible:
            continue
        visit = min(eligible, key=lambda v: v.collected_at)
        _append_step(
            session,
            case,
            chain.next_after(CaseStage.VERIFICATION, StepDecision.APPROVE),
            decision=StepDecision.APPROVE,
            actor_id=actor.user_id,
            now=now,
            comment=None,
            details={
                "visit": str(visit.instance_id),
                "collected_at": visit.collected_at.isoformat(),
            },
            attachments=[],
            submission_id=visit.instance_id,
        )
        moved.append(case.id)
    return moved


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
