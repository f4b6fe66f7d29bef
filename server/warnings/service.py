"""Warnings for people: list them by region, rule, status, source and whether they hold; show one
with its history; act on it (refer to the monitoring workflow, handle, dismiss with a reason);
change the rules' configuration and re-evaluate what it affects; the full re-evaluation.

Services take the actor and a session and only flush, except `reevaluate`, which runs a whole
re-evaluation in chunks, each in its own unit of work (the nightly job and the CLI call it).
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.db import Database, utcnow
from server.departments.models import DepartmentFact
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.households.models import Household, Member
from server.monitoring import referrals
from server.monitoring.terms import ReferralChannel, member_of
from server.regions.codes import code_range, is_valid_code
from server.sensitive import SensitiveCodec
from server.users.models import Role, User
from server.warnings import config, set_based
from server.warnings.evaluation import (
    Outcome,
    Trigger,
    household_ids_in,
    range_scope,
)
from server.warnings.models import (
    RiskWarning,
    RiskWarningEvent,
    WarningReevaluation,
    WarningSetting,
    WarningStatus,
)
from server.warnings.rules import BY_RULE, Source
from sync_protocol.clock import HybridClock

MAX_REASON = 2000
# Households a unit of work re-evaluates set-based. Large: a range of household ids (random UUIDs)
# touches members and facts all over their tables, so each slice statement costs about a read of
# its table whatever the range (measured on 500,000 households: 5 s of statements per 50,000,
# 9.5 s per 250,000); memory is bounded by what fires and the current warnings of a chunk.
SET_CHUNK = 250_000
# Evidence keys about health and disability: masked in every answer (the register's own reveal,
# which is audited, shows them).
SENSITIVE_EVIDENCE = frozenset(
    {"health", "disabled", "register_disability", "department_disability"}
)
# Where each status may go next.
_NEXT: Mapping[WarningStatus, frozenset[WarningStatus]] = {
    WarningStatus.OPEN: frozenset(
        {WarningStatus.REFERRED, WarningStatus.HANDLED, WarningStatus.DISMISSED}
    ),
    WarningStatus.REFERRED: frozenset({WarningStatus.HANDLED, WarningStatus.DISMISSED}),
    WarningStatus.HANDLED: frozenset(),
    WarningStatus.DISMISSED: frozenset(),
}


@dataclass(frozen=True)
class WarningFilters:
    region: str | None = None
    rule: str | None = None
    status: str | None = None
    source: str | None = None
    holds: bool | None = None
    household_id: uuid.UUID | None = None
    current_only: bool = True
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class EventView:
    kind: str
    at: datetime
    by: str | None
    status: str | None
    reason: str | None
    source: dict[str, Any]


@dataclass(frozen=True)
class WarningView:
    id: uuid.UUID
    household_id: uuid.UUID
    member_id: uuid.UUID | None
    village_code: str
    rule: str
    rule_label: dict[str, str]
    lifecycle: int
    is_current: bool
    holds: bool
    status: str
    source: str
    evidence: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    cleared_at: datetime | None
    status_reason: str | None
    status_by: str | None
    status_at: datetime | None
    referral_id: uuid.UUID | None
    version: int
    events: list[EventView] | None = None


@dataclass(frozen=True)
class WarningPage:
    warnings: list[WarningView]
    total: int
    limit: int
    offset: int


def masked_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    values = evidence.get("values") or {}
    shown = {k: ("***" if k in SENSITIVE_EVIDENCE else v) for k, v in values.items()}
    return {**evidence, "values": shown}


def _view(
    w: RiskWarning,
    names: Mapping[int, str],
    events: list[EventView] | None = None,
    *,
    shown: dict[str, Any] | None = None,
) -> WarningView:
    rule = BY_RULE.get(w.rule)
    return WarningView(
        id=w.id,
        household_id=w.household_id,
        member_id=w.member_id,
        village_code=w.village_code,
        rule=w.rule,
        rule_label={"zh": rule.zh if rule else w.rule, "en": rule.en if rule else w.rule},
        lifecycle=w.lifecycle,
        is_current=w.is_current,
        holds=w.holds,
        status=w.status.value,
        source=w.source,
        evidence=shown if shown is not None else masked_evidence(w.evidence),
        first_seen=w.first_seen,
        last_seen=w.last_seen,
        cleared_at=w.cleared_at,
        status_reason=w.status_reason,
        status_by=names.get(w.status_by_id) if w.status_by_id is not None else None,
        status_at=w.status_at,
        referral_id=w.referral_id,
        version=w.version,
        events=events,
    )


def _usernames(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {
        row[0]: row[1]
        for row in session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    }


def _bad(path: str, message: str) -> ValidationFailed:
    return ValidationFailed("bad filter", [{"path": path, "code": "invalid", "message": message}])


def _check_reveal(actor: Actor, reveal: bool, settings: Settings | None) -> None:
    if reveal and (settings is None or actor.role.value not in settings.reveal_roles):
        raise Forbidden("your role may not reveal health or disability values")


def _shown(
    session: Session, actor: Actor, w: RiskWarning, names: Mapping[int, str], *, reveal: bool
) -> dict[str, Any] | None:
    """The evidence in clear when revealed and it holds a sensitive value (audited), else None
    (the view masks it)."""
    values = (w.evidence or {}).get("values") or {}
    if not reveal or not SENSITIVE_EVIDENCE & set(values):
        return None
    audit.record(
        session,
        "reveal_sensitive",
        user_id=actor.user_id,
        object_type="risk_warning",
        object_id=str(w.id),
        region_code=w.village_code,
        address=actor.address,
        details={"fields": sorted(SENSITIVE_EVIDENCE & set(values)), "rule": w.rule},
    )
    return dict(w.evidence)


def list_warnings(
    session: Session,
    actor: Actor,
    filters: WarningFilters,
    *,
    reveal: bool = False,
    settings: Settings | None = None,
) -> WarningPage:
    """Warnings in the caller's regions (and under `region`), most recently seen first. Health
    and disability values in evidence are masked unless `reveal` (roles in the settings'
    `reveal_roles`, else 403; each warning revealed is audited)."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    _check_reveal(actor, reveal, settings)
    conditions: list[Any] = [actor.region_filter(RiskWarning.village_code)]
    if filters.region is not None:
        if not is_valid_code(filters.region):
            raise _bad("region", "a 12-digit region code")
        low, high = code_range(filters.region)
        conditions.append(RiskWarning.village_code.between(low, high))
    if filters.rule is not None:
        if filters.rule not in BY_RULE:
            raise _bad("rule", "one of: " + ", ".join(BY_RULE))
        conditions.append(RiskWarning.rule == filters.rule)
    if filters.status is not None:
        conditions.append(RiskWarning.status == member_of(WarningStatus, filters.status))
    if filters.source is not None:
        conditions.append(RiskWarning.source == Source(filters.source).value)
    if filters.holds is not None:
        conditions.append(RiskWarning.holds.is_(filters.holds))
    if filters.household_id is not None:
        conditions.append(RiskWarning.household_id == filters.household_id)
    if filters.current_only:
        conditions.append(RiskWarning.is_current.is_(True))
    where = and_(*conditions)
    total = session.scalar(select(func.count()).select_from(RiskWarning).where(where)) or 0
    rows = list(
        session.scalars(
            select(RiskWarning)
            .where(where)
            .order_by(RiskWarning.last_seen.desc(), RiskWarning.id)
            .limit(filters.limit)
            .offset(filters.offset)
        )
    )
    names = _usernames(session, {w.status_by_id for w in rows})
    views = [_view(w, names, shown=_shown(session, actor, w, names, reveal=reveal)) for w in rows]
    return WarningPage(views, total, filters.limit, filters.offset)


def _find(session: Session, actor: Actor, warning_id: uuid.UUID) -> RiskWarning:
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    warning = session.get(RiskWarning, warning_id)
    if warning is None:
        raise NotFound(f"no warning {warning_id}")
    actor.ensure_covers(warning.village_code, "this warning")
    return warning


def get_warning(
    session: Session,
    actor: Actor,
    warning_id: uuid.UUID,
    *,
    reveal: bool = False,
    settings: Settings | None = None,
) -> WarningView:
    """One warning with its history, oldest event first; its evidence masked unless `reveal`
    (as in `list_warnings`)."""
    warning = _find(session, actor, warning_id)
    _check_reveal(actor, reveal, settings)
    rows = list(
        session.scalars(
            select(RiskWarningEvent)
            .where(RiskWarningEvent.warning_id == warning_id)
            .order_by(RiskWarningEvent.at, RiskWarningEvent.kind)
        )
    )
    names = _usernames(session, {e.by_id for e in rows} | {warning.status_by_id})
    events = [
        EventView(
            e.kind,
            e.at,
            names.get(e.by_id) if e.by_id is not None else None,
            e.status,
            e.reason,
            e.source,
        )
        for e in rows
    ]
    shown = _shown(session, actor, warning, names, reveal=reveal)
    return _view(warning, names, events, shown=shown)


def _transition(
    session: Session,
    actor: Actor,
    warning: RiskWarning,
    to: WarningStatus,
    *,
    reason: str | None,
    now: datetime,
    version: int | None,
    referral_id: uuid.UUID | None = None,
) -> None:
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationFailed(
            "the reason is too long",
            [{"path": "reason", "code": "too_long", "message": f"at most {MAX_REASON} characters"}],
        )
    if to not in _NEXT[warning.status]:
        raise Conflict(
            f"a warning that is {warning.status.value} cannot become {to.value}",
            details={"status": warning.status.value},
        )
    if version is not None and version != warning.version:
        raise Conflict(
            "the warning changed since you read it", details={"version": warning.version}
        )
    values: dict[str, Any] = {
        "status": to,
        "status_reason": reason,
        "status_by_id": actor.user_id,
        "status_at": now,
        "version": warning.version + 1,
        "updated_at": now,
    }
    if referral_id is not None:
        values["referral_id"] = referral_id
    # Compare-and-set on the version: two supervisors acting at once cannot both succeed.
    result = session.execute(
        update(RiskWarning)
        .where(RiskWarning.id == warning.id, RiskWarning.version == warning.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the warning changed since you read it")
    session.add(
        RiskWarningEvent(
            warning_id=warning.id,
            kind=to.value,
            at=now,
            by_id=actor.user_id,
            status=to.value,
            reason=reason,
            source={} if referral_id is None else {"referral_id": str(referral_id)},
        )
    )
    audit.record(
        session,
        f"warning_{to.value}",
        user_id=actor.user_id,
        object_type="risk_warning",
        object_id=str(warning.id),
        region_code=warning.village_code,
        address=actor.address,
        details={"rule": warning.rule, "household": str(warning.household_id), "reason": reason},
    )
    session.flush()
    session.expire(warning)


def refer_warning(
    session: Session,
    actor: Actor,
    warning_id: uuid.UUID,
    *,
    causes: Sequence[str] | None,
    note: str | None,
    version: int | None,
    now: datetime,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> WarningView:
    """Refer the warning's household to the monitoring workflow (发现) through
    `server.monitoring.referrals.refer`: a department rule as a department warning naming its
    department, a register rule as a screening (the values came from cadres' visits)."""
    warning = _find(session, actor, warning_id)
    if warning.status is not WarningStatus.OPEN:
        raise Conflict(
            f"a warning that is {warning.status.value} cannot be referred",
            details={"status": warning.status.value},
        )
    rule = BY_RULE.get(warning.rule)
    department = rule.department.value if rule and rule.department else None
    result = referrals.refer(
        session,
        actor,
        warning.household_id,
        ReferralChannel.DEPARTMENT_WARNING if department else ReferralChannel.CADRE_SCREENING,
        list(causes) if causes else list(rule.risk_causes if rule else ("other",)),
        note=note,
        evidence={
            "warning": str(warning.id),
            "rule": warning.rule,
            **masked_evidence(warning.evidence),
        },
        department=department,
        warning_id=warning.id,
        now=now,
        clock=clock,
        codec=codec,
    )
    _transition(
        session,
        actor,
        warning,
        WarningStatus.REFERRED,
        reason=note,
        now=now,
        version=version,
        referral_id=result.referral_id,
    )
    return get_warning(session, actor, warning_id)


def handle_warning(
    session: Session,
    actor: Actor,
    warning_id: uuid.UUID,
    *,
    note: str | None,
    version: int | None,
    now: datetime,
) -> WarningView:
    warning = _find(session, actor, warning_id)
    _transition(
        session, actor, warning, WarningStatus.HANDLED, reason=note, now=now, version=version
    )
    return get_warning(session, actor, warning_id)


def dismiss_warning(
    session: Session,
    actor: Actor,
    warning_id: uuid.UUID,
    *,
    reason: str,
    version: int | None,
    now: datetime,
) -> WarningView:
    if not reason.strip():
        raise ValidationFailed(
            "a dismissal needs a reason",
            [{"path": "reason", "code": "required", "message": "say why"}],
        )
    warning = _find(session, actor, warning_id)
    _transition(
        session, actor, warning, WarningStatus.DISMISSED, reason=reason, now=now, version=version
    )
    return get_warning(session, actor, warning_id)


# -- configuration and re-evaluation --------------------------------------------------------------


def evaluate_region(
    session: Session,
    *,
    now: datetime,
    trigger: Trigger,
    region: str | None,
    chunk: int = SET_CHUNK,
) -> Outcome:
    """Re-evaluate every household under `region` (None: all) set-based inside the caller's unit
    of work, a range of households at a time (memory stays flat)."""
    outcome = Outcome()
    span = None if region is None or region == config.EVERY_PROVINCE else code_range(region)
    limits = set_based.bounds(session, now.date())
    after: uuid.UUID | None = None
    while True:
        ids = household_ids_in(session, after=after, limit=chunk, code_range=span)
        if not ids:
            return outcome
        outcome.add(_evaluate_range(session, ids, span, after, now, trigger, limits=limits))
        session.expunge_all()
        after = ids[-1]


def _evaluate_range(
    session: Session,
    ids: list[uuid.UUID],
    span: tuple[str, str] | None,
    after: uuid.UUID | None,
    now: datetime,
    trigger: Trigger,
    *,
    limits: set_based.Bounds,
    revisited: Collection[uuid.UUID] | None = None,
) -> Outcome:
    """The households `ids` (by id, the next after `after`, within `span`) set-based; with
    `revisited` (the households with previous values) the history rules too."""
    by_id = range_scope(after, ids[-1])

    def scope(column: Any) -> Any:
        if span is None:
            return by_id(column)
        within = select(Household.id).where(Household.village_code.between(*span))
        return by_id(column) & column.in_(within)

    wanted = set(ids)
    outcome = set_based.evaluate_scope(
        session,
        scope,
        now=now,
        trigger=trigger,
        with_history=revisited is not None,
        revisited_ids=[] if revisited is None else [i for i in ids if i in revisited],
        fallback_ids=lambda: wanted,
        limits=limits,
    )
    outcome.households = len(ids)
    return outcome


def change_config(
    session: Session,
    actor: Actor,
    year: int,
    province: str,
    values: Mapping[str, Decimal | None],
    *,
    now: datetime,
) -> tuple[list[str], Outcome]:
    """Set the configuration of `year` and `province` (audited) and re-evaluate the province's
    households in the same unit of work, so the change and its warnings commit together. Each
    household is evaluated with the configuration of its own record's year, so a change for a
    year other than its record's leaves it as it was."""
    changed = config.set_values(session, actor, year, province, values, now=now)
    if not changed:
        return changed, Outcome()
    trigger = Trigger(
        Source.CONFIGURATION,
        {"year": year, "province": province, "settings": sorted(changed)},
    )
    return changed, evaluate_region(session, now=now, trigger=trigger, region=province)


# Transactions still open when a run started may have written with an earlier clock: the next
# run looks back this much before the last one's start.
WATERMARK_MARGIN = timedelta(hours=1)
# A run further apart than this from the last one evaluates everything (birthdays are matched by
# day of the year, within one year).
MAX_INCREMENTAL_GAP = timedelta(days=31)
# Oldest member whose birthday can move them into or out of school age (school_age_max ≤ 20).
_YOUNGEST_YEARS = 22


@dataclass
class RunOutcome(Outcome):
    """A re-evaluation's counts, with how it chose the households: `full` (every household: no
    earlier complete run of the scope, another year, other rules, `full=True`) or `changed` (only
    households whose inputs changed since the last run; the others were `skipped`)."""

    mode: str = "full"
    skipped: int = 0
    still_seen: int = 0  # holding warnings of skipped households whose last_seen moved on


def _rules_fingerprint() -> str:
    return ",".join(sorted(BY_RULE))


def _changed_since(
    session: Session, since: datetime, last_day: date, today: date, span: tuple[str, str] | None
) -> set[uuid.UUID]:
    """Households whose rule inputs may have changed since `since` (the last run's start less
    the margin), or whose time-dependent rules may say otherwise today: a household or member
    row written since, a department fact written since, a child's birthday since the last run's
    day (school age), a 低保 fact whose gradual-exit period may have ended, a province whose
    configuration changed. A handful of statements, each set-based."""
    found: set[uuid.UUID] = set()
    live = Household.deleted.is_(False)

    def scoped(statement: Any) -> Any:
        if span is None:
            return statement
        return statement.where(Household.village_code.between(*span))

    found.update(session.scalars(scoped(select(Household.id).where(Household.updated_at >= since))))
    found.update(
        session.scalars(
            scoped(
                select(Member.household_id)
                .join(Household, Household.id == Member.household_id)
                .where(Member.updated_at >= since)
                .distinct()
            )
        )
    )
    found.update(
        session.scalars(
            scoped(
                select(DepartmentFact.household_id)
                .join(Household, Household.id == DepartmentFact.household_id)
                .where(DepartmentFact.updated_at >= since)
                .distinct()
            )
        )
    )
    days = [last_day + timedelta(days=n) for n in range(1, (today - last_day).days + 1)]
    if days:
        if session.get_bind().dialect.name == "postgresql":
            month_day = func.to_char(Member.birth_date, "MMDD")
        else:
            month_day = func.strftime("%m%d", Member.birth_date)
        youngest = date(today.year - _YOUNGEST_YEARS, 1, 1)
        found.update(
            session.scalars(
                scoped(
                    select(Member.household_id)
                    .join(Household, Household.id == Member.household_id)
                    .where(
                        live,
                        Member.deleted.is_(False),
                        Member.birth_date >= youngest,
                        month_day.in_(sorted({d.strftime("%m%d") for d in days})),
                    )
                    .distinct()
                )
            )
        )
    # 低保 no longer listed: flagged once the gradual exit (≤ 36 months from the list's date) ends.
    exit_from = date(today.year - 4, today.month, 1)
    found.update(
        session.scalars(
            scoped(
                select(DepartmentFact.household_id)
                .join(Household, Household.id == DepartmentFact.household_id)
                .where(
                    live,
                    DepartmentFact.fact == "minimum_allowance",
                    DepartmentFact.present.is_(True),
                    DepartmentFact.as_of >= exit_from,
                )
                .distinct()
            )
        )
    )
    provinces = set(
        session.scalars(
            select(WarningSetting.province_code).where(WarningSetting.updated_at >= since)
        )
    )
    for province in provinces:
        statement = select(Household.id)
        if province != config.EVERY_PROVINCE:
            statement = statement.where(Household.village_code.between(*code_range(province)))
        found.update(session.scalars(scoped(statement)))
    return found


def reevaluate(
    db: Database,
    *,
    now: datetime,
    region: str | None = None,
    chunk: int = SET_CHUNK,
    full: bool = False,
    workers: int = 1,
) -> RunOutcome:
    """The nightly re-evaluation (`fieldsync warnings reevaluate`) of every household (under
    `region`), each chunk in its own unit of work, so memory stays flat and a failure loses one
    chunk's work at most.

    Incremental after a complete run of the same scope (same rules, same year, at most
    `MAX_INCREMENTAL_GAP` ago, not `full`): only the households `_changed_since` its start are
    evaluated; every other household's inputs are as they were, so its warnings hold as they
    did, and their `last_seen` moves on in one statement. The evaluation reads previous values
    (the change log), so income drops and expenditure spikes are re-judged with the current
    configuration too."""
    if region is not None and region != config.EVERY_PROVINCE and not is_valid_code(region):
        raise _bad("region", "a 12-digit region code")
    span = None if region is None or region == config.EVERY_PROVINCE else code_range(region)
    scope = config.EVERY_PROVINCE if span is None else str(region)
    trigger = Trigger(Source.REEVALUATION, {"at": now.isoformat()})
    outcome = RunOutcome()
    with db.unit_of_work(write=False) as session:
        last = session.get(WarningReevaluation, scope)
        incremental = (
            not full
            and last is not None
            and last.rules == _rules_fingerprint()
            and last.started_at.year == now.year
            and timedelta(0) <= now - last.started_at <= MAX_INCREMENTAL_GAP
        )
        candidates: list[uuid.UUID] | None = None
        # The households with previous values (the history rules find nothing on the others).
        revisited = set_based.revisited(session, None, span)
        if incremental:
            assert last is not None
            since = last.started_at - WATERMARK_MARGIN
            candidates = sorted(
                _changed_since(session, since, last.started_at.date(), now.date(), span)
            )
            outcome.mode = "changed"
    if candidates is not None:
        for start in range(0, len(candidates), chunk):
            with db.unit_of_work() as session:
                ids = candidates[start : start + chunk]
                outcome.add(
                    set_based.evaluate_ids(
                        session,
                        ids,
                        now=now,
                        trigger=trigger,
                        with_history=True,
                        revisited_ids=revisited,
                    )
                )
        with db.unit_of_work() as session:
            total = session.scalar(_in_span(select(func.count()).select_from(Household), span))
            outcome.skipped = max(0, (total or 0) - len(candidates))
            bump = (
                update(RiskWarning)
                .where(
                    RiskWarning.is_current.is_(True),
                    RiskWarning.holds.is_(True),
                    RiskWarning.last_seen < now,
                )
                .values(last_seen=now)
                .execution_options(synchronize_session=False)
            )
            if span is not None:
                bump = bump.where(RiskWarning.village_code.between(*span))
            outcome.still_seen = session.execute(bump).rowcount  # type: ignore[attr-defined]
    elif workers > 1 and db.kind == "postgresql":
        outcome.add(_full_in_processes(db, now=now, span=span, chunk=chunk, workers=workers))
    else:
        outcome.add(_full_range(db, now, span, chunk, after=None, upto=None, revisited=revisited))
    with db.unit_of_work() as session:
        mark = session.get(WarningReevaluation, scope)
        if mark is None:
            mark = WarningReevaluation(scope=scope)
            session.add(mark)
        mark.started_at = now
        mark.rules = _rules_fingerprint()
        mark.finished_at = utcnow()
    return outcome


def _full_range(
    db: Database,
    now: datetime,
    span: tuple[str, str] | None,
    chunk: int,
    *,
    after: uuid.UUID | None,
    upto: uuid.UUID | None,
    revisited: Collection[uuid.UUID] | None = None,
) -> Outcome:
    """Every household with an id in (`after`, `upto`], set-based, a range of `chunk` households
    per unit of work, with the history rules on `revisited` (None: read here)."""
    trigger = Trigger(Source.REEVALUATION, {"at": now.isoformat()})
    outcome = Outcome()
    if revisited is None:
        with db.unit_of_work(write=False) as session:
            revisited = set_based.revisited(session, None, span)
    while True:
        with db.unit_of_work() as session:
            ids = household_ids_in(session, after=after, limit=chunk, code_range=span, upto=upto)
            if not ids:
                return outcome
            limits = set_based.bounds(session, now.date())
            outcome.add(
                _evaluate_range(
                    session, ids, span, after, now, trigger, limits=limits, revisited=revisited
                )
            )
        after = ids[-1]


def _range_in_process(
    url: str,
    now: datetime,
    span: tuple[str, str] | None,
    chunk: int,
    after: uuid.UUID | None,
    upto: uuid.UUID | None,
) -> dict[str, int]:
    """A worker process's share of a full run, with its own engine and connection."""
    db = Database(url)
    try:
        return _full_range(db, now, span, chunk, after=after, upto=upto).as_dict()
    finally:
        db.dispose()


def _full_in_processes(
    db: Database, *, now: datetime, span: tuple[str, str] | None, chunk: int, workers: int
) -> Outcome:
    """A full run split by household id into `workers` ranges of equal size, each evaluated by
    its own process with its own connection (PostgreSQL: the rules' Python runs on every core)."""
    with db.unit_of_work(write=False) as session:
        total = session.scalar(_in_span(select(func.count()).select_from(Household), span)) or 0
        bounds: list[uuid.UUID | None] = [None]
        for k in range(1, workers):
            bound = session.scalar(
                _in_span(select(Household.id), span)
                .order_by(Household.id)
                .offset(total * k // workers)
                .limit(1)
            )
            if bound is not None:
                bounds.append(bound)
        bounds.append(None)
    url = db.url.render_as_string(hide_password=False)
    outcome = Outcome()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(bounds) - 1, mp_context=context) as pool:
        futures = [
            pool.submit(_range_in_process, url, now, span, chunk, bounds[i], bounds[i + 1])
            for i in range(len(bounds) - 1)
        ]
        for future in futures:
            outcome.add(Outcome(**future.result()))
    return outcome


def _in_span(statement: Any, span: tuple[str, str] | None) -> Any:
    return statement if span is None else statement.where(Household.village_code.between(*span))
