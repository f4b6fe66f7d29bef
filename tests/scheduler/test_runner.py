"""One execution per (job, scheduled time), failures recorded and retried, stale runs abandoned:
the runner on SQLite and PostgreSQL, in one process (the two-process proof is in
test_two_schedulers.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.config import ConfigError
from server.runtime import Runtime
from server.scheduler import runner
from server.scheduler.models import JobRun, RunStatus, RunTrigger
from server.scheduler.registry import Job, registered_jobs
from server.scheduler.schedule import latest_fire_time, next_fire_time, trigger_for
from tests.scheduler.conftest import executions

T1 = datetime(2026, 12, 5, 1, 0, 0, tzinfo=UTC)
T2 = T1 + timedelta(seconds=1)


def _runs(rt: Runtime, job: str) -> list[JobRun]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id)))


def _job(rt: Runtime, name: str) -> Job:
    return registered_jobs(rt.settings)[name]


def test_a_scheduled_run_is_executed_once_however_often_it_is_claimed(rt, tmp_path):
    probe = _job(rt, "probe")
    first = runner.run_job(rt, probe, scheduled_for=T1, trigger=RunTrigger.SCHEDULED)
    again = runner.run_job(rt, probe, scheduled_for=T1, trigger=RunTrigger.SCHEDULED)
    assert first is not None and first.status is RunStatus.SUCCEEDED
    assert again is None
    assert executions(tmp_path / "probe.log") == [T1.isoformat()]
    [run] = _runs(rt, "probe")
    assert run.scheduled_for == T1
    assert run.finished_at is not None and run.duration_ms is not None and run.duration_ms >= 0
    assert run.summary is not None and run.pid == run.summary["pid"]
    assert run.host == runner.HOST


def test_a_job_that_raises_is_recorded_as_failed_and_runs_again_on_its_next_schedule(rt, tmp_path):
    flaky = _job(rt, "flaky")
    failed = runner.run_job(rt, flaky, scheduled_for=T1, trigger=RunTrigger.SCHEDULED)
    assert failed is not None and failed.status is RunStatus.FAILED
    assert failed.error == "RuntimeError: the flaky probe fails its first run"
    assert failed.finished_at is not None and failed.summary is None
    retried = runner.run_job(rt, flaky, scheduled_for=T2, trigger=RunTrigger.SCHEDULED)
    assert retried is not None and retried.status is RunStatus.SUCCEEDED
    assert [r.status for r in _runs(rt, "flaky")] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert executions(tmp_path / "flaky.log") == [T1.isoformat(), T2.isoformat()]


def _running(rt: Runtime, job: str, started_at: datetime, scheduled_for: datetime) -> int:
    with rt.db.unit_of_work() as session:
        run = JobRun(
            job=job,
            scheduled_for=scheduled_for,
            trigger=RunTrigger.SCHEDULED,
            status=RunStatus.RUNNING,
            started_at=started_at,
            host="crashed-host",
            pid=99999,
        )
        session.add(run)
        session.flush()
        return run.id


def test_a_run_still_running_skips_the_next_scheduled_run_and_refuses_a_manual_one(rt, tmp_path):
    probe = _job(rt, "probe")
    now = datetime.now(UTC)
    _running(rt, "probe", now, T1)
    skipped = runner.run_job(rt, probe, scheduled_for=T2, trigger=RunTrigger.SCHEDULED)
    assert skipped is not None and skipped.status is RunStatus.SKIPPED
    assert "still running" in (skipped.error or "")
    with pytest.raises(runner.JobAlreadyRunning):
        runner.run_job(rt, probe, scheduled_for=now, trigger=RunTrigger.MANUAL)
    assert executions(tmp_path / "probe.log") == []


def test_a_run_left_running_by_a_dead_process_is_abandoned_once_stale(rt, tmp_path):
    probe = _job(rt, "probe")
    limit = rt.settings.job_stale_after
    now = datetime.now(UTC)
    stale = _running(rt, "probe", now - timedelta(seconds=limit + 60), T1)
    run = runner.run_job(rt, probe, scheduled_for=T2, trigger=RunTrigger.SCHEDULED)
    assert run is not None and run.status is RunStatus.SUCCEEDED
    old = next(r for r in _runs(rt, "probe") if r.id == stale)
    assert old.status is RunStatus.FAILED
    assert (old.error or "").startswith("abandoned:")
    manual = runner.run_job(rt, probe, scheduled_for=now, trigger=RunTrigger.MANUAL)
    assert manual is not None and manual.status is RunStatus.SUCCEEDED
    assert executions(tmp_path / "probe.log") == [T2.isoformat(), now.isoformat()]


def test_a_database_error_is_recorded_without_its_statement_or_parameters(rt):
    from sqlalchemy import text

    def broken(rt_: Runtime, now: datetime) -> dict[str, object]:
        with rt_.db.unit_of_work() as session:
            session.execute(text("SELECT secret_column FROM no_such_table WHERE x = :p"), {"p": 7})
        return {}

    run = runner.run_job(
        rt, Job("broken", "x", "off", broken), scheduled_for=T1, trigger=RunTrigger.SCHEDULED
    )
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.split(":")[0] in ("OperationalError", "ProgrammingError"), run.error
    assert "no_such_table" in run.error and "SELECT" not in run.error


# --- schedules (no database) ---------------------------------------------------------------------


def test_interval_fire_times_are_the_same_in_every_process_whatever_its_start():
    zone = UTC
    one, two = trigger_for("every 300", zone), trigger_for("every 300", zone)
    assert one is not None and two is not None
    now = datetime(2026, 12, 5, 13, 7, 12, tzinfo=UTC)
    assert latest_fire_time(one, now) == datetime(2026, 12, 5, 13, 5, tzinfo=UTC)
    assert latest_fire_time(two, now) == latest_fire_time(one, now)
    assert next_fire_time(one, now) == datetime(2026, 12, 5, 13, 10, tzinfo=UTC)


def test_a_cron_run_belongs_to_the_latest_fire_time_at_or_before_now():
    from zoneinfo import ZoneInfo

    trigger = trigger_for("cron 30 0 * * *", ZoneInfo("Asia/Shanghai"))
    assert trigger is not None
    late = datetime(2026, 12, 4, 16, 33, 5, tzinfo=UTC)  # 00:33:05 CST on 5 December
    assert latest_fire_time(trigger, late) == datetime(2026, 12, 4, 16, 30, tzinfo=UTC)
    assert latest_fire_time(trigger, datetime(2026, 12, 4, 18, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "text", ["every 0", "every x", "cron 61 * * * *", "cron * * *", "hourly", ""]
)
def test_a_bad_schedule_is_a_configuration_error(text):
    with pytest.raises(ConfigError):
        trigger_for(text, UTC)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_job_schedules_override_and_switch_off_jobs_and_refuse_unknown_names(settings):
    jobs = registered_jobs(settings.replace(job_schedules="purge_auth=every 60; probe = off"))
    assert jobs["purge_auth"].schedule == "every 60"
    assert jobs["probe"].schedule == "off"
    with pytest.raises(ConfigError):
        registered_jobs(settings.replace(job_schedules="nope=every 60"))
    with pytest.raises(ConfigError):
        registered_jobs(settings.replace(job_schedules="purge_auth"))
    with pytest.raises(ConfigError):
        registered_jobs(settings.replace(job_modules=("tests.scheduler.no_such_module",)))
