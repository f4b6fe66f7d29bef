"""The console dashboard's figures for one region: the monitoring summary (`summary.py`) with one
more section — warnings waiting for someone, by rule — and the sync activity of the last days
(accepted submissions per day, by the day they were received). Read-only and scoped like the
summary: 404 for an unknown region, 403 outside the caller's regions. No Flask here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import String, case, func, select, type_coerce
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.errors import NotFound
from server.monitoring import summary
from server.monitoring.summary import (
    CountRow,
    Dimension,
    Label,
    Section,
    Summary,
    Value,
    Window,
)
from server.regions.codes import code_range
from server.regions.models import Region
from server.submissions.models import Submission, SubmissionStatus
from server.warnings.models import RiskWarning, WarningStatus
from server.warnings.rules import RULES

# Days of sync activity the dashboard shows (today included).
ACTIVITY_DAYS = 14
WAITING = (WarningStatus.OPEN, WarningStatus.REFERRED)

RULE = Dimension(
    "rule",
    Label("预警规则", "Rule"),
    tuple(Value(rule.code, Label(rule.zh, rule.en)) for rule in RULES),
)
WARNING_STATUS = Dimension(
    "warning_status",
    Label("预警状态", "Warning status"),
    tuple(Value(s.value, Label(s.zh, s.en)) for s in WAITING),
)
WARNINGS = ("warnings", Label("条数", "Warnings"))


def count_warnings(session: Session, window: Window) -> Iterable[CountRow]:
    """Current warnings that still hold and wait for someone (open or referred), by rule: a
    state of today, whatever the year asked for."""
    # The status read as its stored code, without converting every row to the enumeration.
    status = type_coerce(RiskWarning.status, String())
    groups = (window.bucket(RiskWarning.village_code), RiskWarning.rule, status)
    rows = session.connection().execute(
        select(*groups, func.count())
        .where(
            window.within(RiskWarning.village_code),
            RiskWarning.status.in_(WAITING),
            RiskWarning.is_current.is_(True),
            RiskWarning.holds.is_(True),
        )
        .group_by(*groups),
    )
    return [(code, (rule, state), (int(n),)) for code, rule, state, n in rows]


WARNINGS_SECTION = Section(
    "warnings",
    Label("待处置预警（按规则）", "Warnings waiting, by rule"),
    (RULE, WARNING_STATUS),
    (WARNINGS,),
    count_warnings,
)
# The dashboard's sections: the report's, then the warnings.
SECTIONS: tuple[Section, ...] = (*summary.SECTIONS, WARNINGS_SECTION)


@dataclass(frozen=True)
class DayCount:
    day: date
    accepted: int


@dataclass(frozen=True)
class Dashboard:
    summary: Summary
    activity: list[DayCount]  # oldest first, `ACTIVITY_DAYS` of them, today last


def sync_activity(
    session: Session, region_code: str, today: date, days: int = ACTIVITY_DAYS
) -> list[DayCount]:
    """Accepted submissions of the villages under `region_code` per day of receipt (China
    Standard Time), for the `days` days ending `today`: one query, one counted column per day
    (the same SQL on SQLite and PostgreSQL, no date functions)."""
    low, high = code_range(region_code)
    zone = summary.REPORT_TIMEZONE
    first = today - timedelta(days=days - 1)
    bounds = [
        datetime.combine(first + timedelta(days=i), time(), tzinfo=zone) for i in range(days + 1)
    ]
    received = Submission.received_at
    columns = [
        func.count(case(((received >= bounds[i]) & (received < bounds[i + 1]), 1))).label(f"d{i}")
        for i in range(days)
    ]
    row = session.execute(
        select(*columns).where(
            Submission.status == SubmissionStatus.ACCEPTED,
            Submission.village_code.between(low, high),
            received >= bounds[0],
            received < bounds[-1],
        )
    ).one()
    return [DayCount(first + timedelta(days=i), int(row[i] or 0)) for i in range(days)]


def dashboard(
    session: Session, actor: Actor, region_code: str, year: int, now: datetime
) -> Dashboard:
    """The summary of `region_code` (and its child regions) for `year` with the warnings, and
    its sync activity up to today. 404 unknown region, 403 outside the caller's regions."""
    if session.get(Region, region_code) is None:
        raise NotFound("no such region", details={"region": region_code})
    actor.ensure_covers(region_code, "this region")
    found = summary.summarize(session, actor, region_code, year, SECTIONS)
    today = now.astimezone(summary.REPORT_TIMEZONE).date()
    return Dashboard(found, sync_activity(session, region_code, today))
