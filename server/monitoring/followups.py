"""Follow-up visits (定期跟踪回访) of monitored households.

An accepted visit submission records its household's last visit, in the push's transaction and
set-based (`record_visits`, called by intake). Whether a follow-up is due or overdue is computed
when asked, from the interval set for the household's region and monitoring type, so a changed
setting or status applies at once; nothing about it is stored. Never writes the register.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, String, and_, case, select, text, true, type_coerce
from sqlalchemy.orm import Session

from forms.register import LabelledEnum, MonitoringStatus, MonitoringType
from server.auth.actor import Actor
from server.db import upsert_insert
from server.errors import NotFound, ValidationFailed
from server.households.models import Household
from server.monitoring import settings
from server.monitoring.help_models import MONITORED_CONDITION, HouseholdFollowup
from server.regions.codes import code_range, is_valid_code
from server.regions.models import Region

if TYPE_CHECKING:
    from server.monitoring.intake import AcceptedSubmission

# The forms whose accepted submissions count as a follow-up visit of the households they write.
VISIT_FORMS = frozenset({"household_visit"})
# Visits are recorded for households in these states: the verification visit of an entry review
# then starts the clock when the household becomes monitored.
TRACKED_STATUSES = (
    MonitoringStatus.ENTRY_REVIEW,
    MonitoringStatus.MONITORED,
    MonitoringStatus.EXIT_REVIEW,
)
INTERVAL_SETTING = "followup_days.{}"
DUE_SOON_SETTING = "followup_due_soon_days"


class FollowupState(LabelledEnum):
    OVERDUE = ("overdue", "已逾期", "Overdue")
    DUE = ("due", "即将到期", "Due soon")
    CURRENT = ("current", "未到期", "Not due yet")


@dataclass(frozen=True)
class Followup:
    household_id: uuid.UUID
    household_no: str | None
    village_code: str
    monitoring_type: str | None
    interval_days: int
    last_visit_at: datetime | None
    due_at: datetime | None  # None: never visited (overdue)
    state: str


@dataclass(frozen=True)
class FollowupPage:
    region: str | None
    state: str
    as_of: datetime
    followups: list[Followup]
    total: int
    limit: int
    offset: int


def followup_state(
    last_visit_at: datetime | None, interval_days: int, due_soon_days: int, as_of: datetime
) -> tuple[datetime | None, FollowupState]:
    """When the next visit is due and where the household stands at `as_of`: overdue once the
    interval since the last visit has passed (or if it was never visited), due within
    `due_soon_days` of that, else current."""
    if last_visit_at is None:
        return None, FollowupState.OVERDUE
    due_at = last_visit_at + timedelta(days=interval_days)
    if due_at < as_of:
        return due_at, FollowupState.OVERDUE
    if due_at <= as_of + timedelta(days=due_soon_days):
        return due_at, FollowupState.DUE
    return due_at, FollowupState.CURRENT


# --- recording visits (push) -------------------------------------------------------------------


def record_visits(session: Session, accepted: Sequence[AcceptedSubmission], now: datetime) -> None:
    """Record the accepted visit submissions of a push batch: one read and one upsert per batch.

    The visit's time is when it was collected, never later than now (a tablet's wrong date cannot
    postpone a follow-up); an older visit arriving late never replaces a newer one."""
    latest: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = {}
    for submission in accepted:
        if submission.form_id not in VISIT_FORMS:
            continue
        visited_at = min(submission.collected_at.astimezone(UTC), now)
        for household_id in submission.household_ids:
            known = latest.get(household_id)
            if known is None or visited_at > known[0]:
                latest[household_id] = (visited_at, submission.instance_id)
    if not latest:
        return
    tracked = session.scalars(
        select(Household.id).where(
            Household.id.in_(list(latest)), Household.monitoring_status.in_(TRACKED_STATUSES)
        )
    ).all()
    if not tracked:
        return
    rows = [
        {
            "household_id": household_id,
            "last_visit_at": latest[household_id][0],
            "last_submission_id": latest[household_id][1],
            "updated_at": now,
        }
        for household_id in sorted(tracked)
    ]
    insert = upsert_insert(session, HouseholdFollowup).values(rows)
    newer = insert.excluded.last_visit_at > HouseholdFollowup.last_visit_at
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["household_id"],
            set_={
                "last_visit_at": case(
                    (newer, insert.excluded.last_visit_at), else_=HouseholdFollowup.last_visit_at
                ),
                "last_submission_id": case(
                    (newer, insert.excluded.last_submission_id),
                    else_=HouseholdFollowup.last_submission_id,
                ),
                "updated_at": insert.excluded.updated_at,
            },
        )
    )


# --- assessing -----------------------------------------------------------------------------------


def _monitored(
    session: Session, condition: ColumnElement[bool], columns: Sequence[Any] | None = None
) -> list[Any]:
    """The monitored households `condition` keeps, with their last visit: `columns` of them
    (default: what `assess` reads), then `last_visit_at`."""
    if columns is None:
        columns = (
            Household.id,
            Household.household_no,
            Household.village_code,
            Household.monitoring_type,
        )
    return list(
        session.execute(
            select(*columns, HouseholdFollowup.last_visit_at)
            .outerjoin(HouseholdFollowup, HouseholdFollowup.household_id == Household.id)
            .where(
                condition,
                text(MONITORED_CONDITION),  # literally, so the partial index serves it
                Household.merged_into_id.is_(None),
                Household.deleted.is_(False),
            )
        )
    )


def _intervals(
    session: Session, pairs: Iterable[tuple[str, str | None]]
) -> tuple[dict[tuple[str, str | None], int], dict[str, int]]:
    """The follow-up interval of each (village, monitoring type), and each village's due-soon
    days, in one settings read. A monitored household with no type recorded gets the shortest of
    its village's intervals."""
    wanted = set(pairs)
    villages = {village for village, _ in wanted}
    names = [INTERVAL_SETTING.format(kind) for kind in MonitoringType.codes()]
    grid = settings.effective_grid(session, villages, [*names, DUE_SOON_SETTING])
    intervals = {
        (village, kind): (
            grid[INTERVAL_SETTING.format(kind)][village]
            if kind is not None
            else min(grid[name][village] for name in names)
        )
        for village, kind in wanted
    }
    return intervals, grid[DUE_SOON_SETTING]


def assess(session: Session, rows: Sequence[Any], as_of: datetime) -> list[Followup]:
    """Each monitored household of `rows` (see `_monitored`) with its due date and state."""
    if not rows:
        return []
    types = {
        (row.village_code, None if row.monitoring_type is None else row.monitoring_type.value)
        for row in rows
    }
    intervals, soon = _intervals(session, types)
    result = []
    for row in rows:
        kind = None if row.monitoring_type is None else row.monitoring_type.value
        interval = intervals[(row.village_code, kind)]
        due_at, state = followup_state(row.last_visit_at, interval, soon[row.village_code], as_of)
        result.append(
            Followup(
                household_id=row.id,
                household_no=row.household_no,
                village_code=row.village_code,
                monitoring_type=kind,
                interval_days=interval,
                last_visit_at=row.last_visit_at,
                due_at=due_at,
                state=state.value,
            )
        )
    return result


def _order(followup: Followup) -> tuple[int, datetime, str]:
    # Never visited first, then the longest overdue (earliest due date).
    if followup.due_at is None:
        return (0, datetime.min.replace(tzinfo=UTC), str(followup.household_id))
    return (1, followup.due_at, str(followup.household_id))


def _region_condition(actor: Actor, region: str | None) -> ColumnElement[bool]:
    condition = actor.region_filter(Household.village_code)
    if region is None:
        return condition
    low, high = code_range(region)
    return and_(condition, Household.village_code >= low, Household.village_code <= high)


def list_followups(
    session: Session,
    actor: Actor,
    *,
    region: str | None,
    state: str,
    limit: int,
    offset: int,
    as_of: datetime,
) -> FollowupPage:
    """Monitored households of `region` (default: all the caller's) whose follow-up is `overdue`
    or `due` (due soon, not yet overdue), most urgent first. 404 for an unknown region, 403 for
    one outside the caller's regions."""
    if region is not None:
        if not is_valid_code(region) or session.get(Region, region) is None:
            raise NotFound("no such region", details={"region": region})
        actor.ensure_covers(region, "this region")
    if state not in (FollowupState.OVERDUE.value, FollowupState.DUE.value):
        raise ValidationFailed(
            "unknown follow-up state",
            [{"path": "state", "code": "invalid_value", "message": "overdue or due"}],
        )
    assessed = assess(session, _monitored(session, _region_condition(actor, region)), as_of)
    matching = sorted((f for f in assessed if f.state == state), key=_order)
    return FollowupPage(
        region=region,
        state=state,
        as_of=as_of,
        followups=matching[offset : offset + limit],
        total=len(matching),
        limit=limit,
        offset=offset,
    )


def due_list(session: Session, actor: Actor, as_of: datetime) -> list[dict[str, Any]]:
    """The follow-ups a tablet shows: every monitored household of the caller's regions that is
    overdue or due soon, most urgent first, as the pull sends them."""
    assessed = assess(
        session, _monitored(session, actor.region_filter(Household.village_code)), as_of
    )
    urgent = sorted((f for f in assessed if f.state != FollowupState.CURRENT.value), key=_order)
    return [
        {
            "household_id": str(f.household_id),
            "village_code": f.village_code,
            "monitoring_type": f.monitoring_type,
            "interval_days": f.interval_days,
            "last_visit_at": None if f.last_visit_at is None else f.last_visit_at.isoformat(),
            "due_at": None if f.due_at is None else f.due_at.isoformat(),
            "state": f.state,
        }
        for f in urgent
    ]


def overdue_counts(
    session: Session, scope: Actor | str | None, as_of: datetime
) -> dict[str, dict[str, int]]:
    """Overdue follow-ups per village and monitoring type (`"unknown"` when none is recorded):
    `{village_code: {monitoring_type: count}}`, for an actor's regions, a region code (every
    village below it), or None (everywhere)."""
    if isinstance(scope, Actor):
        condition = scope.region_filter(Household.village_code)
    elif scope is None:
        condition = true()
    else:
        low, high = code_range(scope)
        condition = and_(Household.village_code >= low, Household.village_code <= high)
    return overdue_where(session, condition, as_of)


def overdue_where(
    session: Session, condition: ColumnElement[bool], as_of: datetime
) -> dict[str, dict[str, int]]:
    """`overdue_counts` for the households `condition` keeps (the monitoring summary's window).

    Counts only, so without a `Followup` per household: the rule of `followup_state` (overdue
    once last visit + interval < as_of, or never visited) as one comparison per household with
    its (village, type)'s latest visit time that is not overdue yet; the type is read as its
    stored code."""
    rows = _monitored(
        session,
        condition,
        (Household.village_code, type_coerce(Household.monitoring_type, String())),
    )
    intervals, _ = _intervals(session, {(village, kind) for village, kind, _ in rows})
    cutoffs = {key: as_of - timedelta(days=days) for key, days in intervals.items()}
    counts: dict[str, dict[str, int]] = {}
    for village, kind, last_visit_at in rows:
        if last_visit_at is None or last_visit_at < cutoffs[(village, kind)]:
            by_type = counts.setdefault(village, {})
            name = kind or "unknown"
            by_type[name] = by_type.get(name, 0) + 1
    return counts
