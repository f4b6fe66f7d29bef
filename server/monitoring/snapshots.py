"""Daily snapshots of monitoring figures (written by scheduled jobs, read through the API): the
monitoring summary of each region at the snapshot levels, and the overdue follow-ups of each
village. Both are idempotent per day: a second run on the same day replaces that day's rows.

Why overdue follow-ups are stored per village and day, and not flagged per household: whether a
household is overdue is computed when asked (`followups`), so that a changed interval or status
applies at once; a stored flag would go stale the moment either changes. What the live figure
cannot give is its history — the last visit replaces the one before — so the job keeps one small
row per village, type and day, from which a dashboard draws the trend (one grouped query).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from server.auth.actor import Actor, system_actor
from server.db import upsert_insert
from server.errors import NotFound, ValidationFailed
from server.monitoring import followups, summary
from server.monitoring.snapshot_models import OverdueFollowupCount, SummarySnapshot
from server.regions.codes import RegionLevel, code_range
from server.regions.models import Region

# Longest range of days one snapshot listing may ask for.
MAX_SNAPSHOT_DAYS = 366


def report_day(now: datetime) -> date:
    """The day `now` falls on in the report calendar (China Standard Time)."""
    return now.astimezone(summary.REPORT_TIMEZONE).date()


def take_summary_snapshots(
    session: Session, levels: tuple[str, ...], now: datetime
) -> dict[str, Any]:
    """Store the summary of every region at `levels` for the day of `now` (replacing that day's)."""
    wanted = [level for level in RegionLevel if level.value in levels]
    codes = session.scalars(
        select(Region.code).where(Region.level.in_(wanted)).order_by(Region.code)
    ).all()
    day = report_day(now)
    year = day.year
    actor = system_actor("scheduler")
    for code in codes:
        document = summary.as_document(summary.summarize(session, actor, code, year))
        statement = upsert_insert(session, SummarySnapshot).values(
            region_code=code, day=day, year=year, document=document, taken_at=now
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["region_code", "day"],
                set_={
                    "year": statement.excluded.year,
                    "document": statement.excluded.document,
                    "taken_at": statement.excluded.taken_at,
                },
            )
        )
    return {"day": day.isoformat(), "regions": len(codes)}


def record_overdue_counts(session: Session, now: datetime) -> dict[str, Any]:
    """Store the overdue follow-ups of every village for the day of `now` (replacing that day's)."""
    day = report_day(now)
    counts = followups.overdue_counts(session, None, now)
    session.execute(delete(OverdueFollowupCount).where(OverdueFollowupCount.day == day))
    rows = [
        {
            "village_code": village,
            "day": day,
            "monitoring_type": kind,
            "households": n,
            "computed_at": now,
        }
        for village, by_type in sorted(counts.items())
        for kind, n in sorted(by_type.items())
    ]
    if rows:
        session.execute(insert(OverdueFollowupCount), rows)
    return {
        "day": day.isoformat(),
        "villages": len(counts),
        "households": sum(row["households"] for row in rows),
    }


def _check_days(first: date, last: date) -> None:
    if last < first or (last - first).days >= MAX_SNAPSHOT_DAYS:
        raise ValidationFailed(
            "bad range of days",
            [
                {
                    "path": "to",
                    "code": "invalid_value",
                    "message": f"on or after `from`, at most {MAX_SNAPSHOT_DAYS} days",
                }
            ],
        )


def _checked_region(session: Session, actor: Actor, region: str) -> None:
    if session.get(Region, region) is None:
        raise NotFound("no such region", details={"region": region})
    actor.ensure_covers(region, "this region")


def list_snapshots(
    session: Session, actor: Actor, region: str, first: date, last: date
) -> list[dict[str, Any]]:
    """The stored summaries of `region` from `first` to `last` (report days), oldest first."""
    _check_days(first, last)
    _checked_region(session, actor, region)
    rows = session.execute(
        select(SummarySnapshot.day, SummarySnapshot.taken_at, SummarySnapshot.document)
        .where(
            SummarySnapshot.region_code == region,
            SummarySnapshot.day >= first,
            SummarySnapshot.day <= last,
        )
        .order_by(SummarySnapshot.day)
    )
    return [{"day": day, "taken_at": taken_at, "summary": doc} for day, taken_at, doc in rows]


def overdue_trend(
    session: Session, actor: Actor, region: str, first: date, last: date
) -> list[dict[str, Any]]:
    """Overdue follow-ups in `region` per stored day and monitoring type, oldest first."""
    _check_days(first, last)
    _checked_region(session, actor, region)
    low, high = code_range(region)
    rows = session.execute(
        select(
            OverdueFollowupCount.day,
            OverdueFollowupCount.monitoring_type,
            func.sum(OverdueFollowupCount.households),
        )
        .where(
            OverdueFollowupCount.village_code.between(low, high),
            OverdueFollowupCount.day >= first,
            OverdueFollowupCount.day <= last,
        )
        .group_by(OverdueFollowupCount.day, OverdueFollowupCount.monitoring_type)
        .order_by(OverdueFollowupCount.day, OverdueFollowupCount.monitoring_type)
    )
    days: dict[date, dict[str, int]] = {}
    for day, kind, n in rows:
        days.setdefault(day, {})[kind] = int(n)
    return [
        {"day": day, "by_type": by_type, "households": sum(by_type.values())}
        for day, by_type in days.items()
    ]


def default_range(now: datetime) -> tuple[date, date]:
    last = report_day(now)
    return last - timedelta(days=30), last
