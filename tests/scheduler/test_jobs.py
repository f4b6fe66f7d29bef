"""The jobs fieldsync schedules, run as the scheduler runs them (`run_job`), on SQLite and
PostgreSQL: the purge of tokens and login throttles, the daily summary snapshot and the daily
overdue follow-up counts, with the API that reads the stored days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from forms.register import MonitoringType
from server.auth.actor import system_actor
from server.auth.models import LoginThrottle, Token
from server.monitoring import summary
from server.monitoring.snapshot_models import OverdueFollowupCount, SummarySnapshot
from server.monitoring.snapshots import report_day
from server.runtime import Runtime
from server.scheduler import runner
from server.scheduler.models import JobRun, RunStatus, RunTrigger
from server.scheduler.registry import registered_jobs
from server.users.models import Role, User
from tests.conftest import (
    CITY,
    COUNTY,
    PROVINCE,
    TOWNSHIP_A,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)
from tests.monitoring.help_fixtures import make_monitored, set_last_visit


def _run(rt: Runtime, name: str, at: datetime) -> dict[str, object]:
    run = runner.run_job(
        rt, registered_jobs(rt.settings)[name], scheduled_for=at, trigger=RunTrigger.SCHEDULED
    )
    assert run is not None and run.status is RunStatus.SUCCEEDED, run and run.error
    assert run.summary is not None
    return run.summary


def test_purge_removes_expired_and_long_revoked_tokens_and_stale_throttles(rt, create_user_):
    create_user_("somebody", Role.COLLECTOR)
    now = datetime.now(UTC)
    with rt.db.unit_of_work() as session:
        user_id = session.scalar(select(User.id).where(User.username == "somebody"))
        assert user_id is not None

        def token(name: str, expires: timedelta, revoked: timedelta | None = None) -> Token:
            return Token(
                token_hash=name.ljust(64, "0"),
                user_id=user_id,
                expires_at=now + expires,
                revoked_at=None if revoked is None else now - revoked,
            )

        session.add_all(
            [
                token("valid", timedelta(days=3)),
                token("expired", -timedelta(seconds=1)),
                token("revokedlongago", timedelta(days=3), revoked=timedelta(days=2)),
                token("revokedjustnow", timedelta(days=3), revoked=timedelta(minutes=5)),
            ]
        )
        window = timedelta(seconds=rt.settings.login_window)
        session.add_all(
            [
                LoginThrottle(scope="address", subject="10.0.0.1", counted_at=now - 2 * window),
                LoginThrottle(scope="address", subject="10.0.0.2", counted_at=now),
                LoginThrottle(  # quiet, but still blocked: kept
                    scope="account",
                    subject="blocked",
                    counted_at=now - 2 * window,
                    blocked_until=now + timedelta(minutes=5),
                ),
            ]
        )
    assert _run(rt, "purge_auth", now) == {"tokens": 2, "login_throttles": 1}
    with rt.db.unit_of_work(write=False) as session:
        left = sorted(h.rstrip("0") for h in session.scalars(select(Token.token_hash)))
        subjects = sorted(session.scalars(select(LoginThrottle.subject)))
    assert left == ["revokedjustnow", "valid"]
    assert subjects == ["10.0.0.2", "blocked"]


@pytest.fixture
def monitored(rt: Runtime, village_households: dict[str, dict[str, uuid.UUID]]) -> None:
    """A1 visited 40 days ago (overdue), A2 5 days ago (not due), B1 never visited (overdue)."""
    ids = {village: v["household"] for village, v in village_households.items()}
    now = datetime.now(UTC)
    make_monitored(rt, ids[VILLAGE_A1], MonitoringType.MARGINAL)
    make_monitored(rt, ids[VILLAGE_A2], MonitoringType.UNSTABLE_LIFTED)
    make_monitored(rt, ids[VILLAGE_B1], MonitoringType.SUDDEN_DIFFICULTY)
    set_last_visit(rt, ids[VILLAGE_A1], now - timedelta(days=40))
    set_last_visit(rt, ids[VILLAGE_A2], now - timedelta(days=5))


def test_the_summary_snapshot_stores_each_region_once_a_day_as_the_summary_answers(rt, monitored):
    now = datetime.now(UTC)
    assert _run(rt, "summary_snapshot", now)["regions"] == 3  # province, city, county
    later = now + timedelta(seconds=1)  # same report day (unless run at midnight CST)
    if report_day(later) == report_day(now):
        _run(rt, "summary_snapshot", later)
    with rt.db.unit_of_work(write=False) as session:
        stored = {s.region_code: s for s in session.scalars(select(SummarySnapshot))}
        county = summary.as_document(
            summary.summarize(session, system_actor(), COUNTY, report_day(now).year)
        )
    assert sorted(stored) == [PROVINCE, CITY, COUNTY]
    assert stored[COUNTY].day == report_day(now)
    assert stored[COUNTY].document == county
    overdue = stored[COUNTY].document["region"]["sections"]["overdue_followups"]["total"]
    assert overdue == {"households": 2}


def test_overdue_follow_ups_are_stored_per_village_and_day_and_replaced_on_a_rerun(rt, monitored):
    now = datetime.now(UTC)
    assert _run(rt, "overdue_followups", now) == {
        "day": report_day(now).isoformat(),
        "villages": 2,
        "households": 2,
    }
    _run(rt, "overdue_followups", now + timedelta(microseconds=1))
    with rt.db.unit_of_work(write=False) as session:
        rows = sorted(
            (r.village_code, r.monitoring_type, r.households)
            for r in session.scalars(select(OverdueFollowupCount))
        )
        days = session.scalar(select(func.count(func.distinct(OverdueFollowupCount.day))))
    assert rows == [(VILLAGE_A1, "marginal", 1), (VILLAGE_B1, "sudden_difficulty", 1)]
    assert days == 1


def test_supervisors_read_the_stored_days_of_their_regions_only(
    rt, client, monitored, create_user_, login
):
    now = datetime.now(UTC)
    _run(rt, "summary_snapshot", now)
    _run(rt, "overdue_followups", now)
    create_user_("sup", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("boss", Role.SUPERVISOR, [COUNTY])
    sup, boss = bearer(login("sup")), bearer(login("boss"))
    today = report_day(now).isoformat()

    answer = client.get(f"/api/v1/monitoring/summary/snapshots?region={COUNTY}", headers=boss)
    assert answer.status_code == 200, answer.get_json()
    [snapshot] = answer.get_json()["snapshots"]
    assert snapshot["day"] == today and snapshot["summary"]["region"]["code"] == COUNTY

    trend = client.get(f"/api/v1/monitoring/followups/overdue-trend?region={COUNTY}", headers=boss)
    assert trend.get_json()["days"] == [
        {"day": today, "households": 2, "by_type": {"marginal": 1, "sudden_difficulty": 1}}
    ]
    township = client.get(
        f"/api/v1/monitoring/followups/overdue-trend?region={TOWNSHIP_A}", headers=sup
    )
    assert township.get_json()["days"] == [
        {"day": today, "households": 1, "by_type": {"marginal": 1}}
    ]
    refused = client.get(f"/api/v1/monitoring/summary/snapshots?region={COUNTY}", headers=sup)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    empty = client.get(
        f"/api/v1/monitoring/summary/snapshots?region={COUNTY}&from=2020-01-01&to=2020-01-31",
        headers=boss,
    )
    assert empty.get_json()["snapshots"] == []
    for query in (
        "region=123",
        f"region={COUNTY}&from=2026-02-01&to=2026-01-01",
        f"region={COUNTY}&from=2020-01-01&to=2026-01-01",
        f"region={COUNTY}&from=yesterday",
    ):
        bad = client.get(f"/api/v1/monitoring/summary/snapshots?{query}", headers=boss)
        assert bad.status_code == 422, query
    missing = client.get("/api/v1/monitoring/summary/snapshots?region=990199000000", headers=boss)
    assert missing.status_code == 404


def test_the_record_of_runs_finished_over_ninety_days_ago_is_forgotten(rt):
    now = datetime.now(UTC)
    old = now - timedelta(days=91)
    probe = registered_jobs(rt.settings)["probe"]
    runner.run_job(rt, probe, scheduled_for=old, trigger=RunTrigger.SCHEDULED)
    runner.run_job(rt, probe, scheduled_for=now, trigger=RunTrigger.SCHEDULED)
    with rt.db.unit_of_work() as session:
        session.execute(update(JobRun).where(JobRun.scheduled_for == old).values(finished_at=old))
    assert _run(rt, "purge_job_runs", now) == {"job_runs": 1}
    with rt.db.unit_of_work(write=False) as session:
        left = session.scalars(select(JobRun.scheduled_for).where(JobRun.job == "probe")).all()
    assert left == [now]
