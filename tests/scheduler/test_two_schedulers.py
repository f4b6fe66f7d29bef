"""The proof on PostgreSQL with real processes: two `fieldsync scheduler` processes run the same
jobs every second; each scheduled run is executed by exactly one of them (the probe job's own log
of executions, not only the run records, says so); a job that raises is recorded as failed and
succeeds on its next run; and a run left `running` by a killed process is declared abandoned by
another process, which then runs the job."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from server.scheduler.models import JobRun, RunStatus
from tests.patience import wait_until
from tests.scheduler.conftest import PROBE_MODULE, executions
from tests.scheduler.probe_jobs import FLAKY_LOG, HANG_MARKER, PROBE_LOG
from tests.sync.harness import PROJECT_ROOT

pytestmark = pytest.mark.postgresql
EXECUTED_WANTED = 6


def _fieldsync() -> str:
    import sys

    return str(Path(sys.executable).parent / "fieldsync")


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    from tests.conftest import _empty_postgres

    _empty_postgres(postgres_database)
    return postgres_database


class Scheduler:
    """One `fieldsync scheduler` process, its output in a file."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.log = folder / f"{name}.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            [_fieldsync(), "scheduler"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


def _env(url: str, folder: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": url,
        "INSTANCE_DIR": str(folder),
        "SECRET_KEY": "scheduler-test-secret-key-of-enough-length",
        "LOG_LEVEL": "INFO",
        "JOB_MODULES": PROBE_MODULE,
        "JOB_SCHEDULES": "purge_auth=off; summary_snapshot=off; overdue_followups=off",
        PROBE_LOG: str(folder / "probe.log"),
        FLAKY_LOG: str(folder / "flaky.log"),
        HANG_MARKER: str(folder / "hang.marker"),
        **extra,
    }


def _runs(url: str, job: str) -> list[JobRun]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return list(
                session.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id))
            )
    finally:
        engine.dispose()


def _details(*schedulers: Scheduler) -> str:
    return "\n".join(f"--- {s.log.name}\n{s.output()[-4000:]}" for s in schedulers)


def test_two_scheduler_processes_execute_each_run_exactly_once(postgres_url, tmp_path):
    env = _env(postgres_url, tmp_path)
    one = Scheduler("one", env, tmp_path)
    two = Scheduler("two", env, tmp_path)
    try:
        # Both are up (each has competed for a run: executed it or seen it taken) before counting.
        wait_until(
            lambda: all("event=job_run" in s.output() for s in (one, two)),
            what="both schedulers competing for runs",
            details=lambda: _details(one, two),
        )
        started = len(executions(tmp_path / "probe.log"))
        wait_until(
            lambda: (
                len(executions(tmp_path / "probe.log")) >= started + EXECUTED_WANTED
                and any(r.status is RunStatus.SUCCEEDED for r in _runs(postgres_url, "flaky"))
            ),
            what=f"{EXECUTED_WANTED} more probe runs and a flaky run that succeeded",
            details=lambda: _details(one, two),
        )
        assert one.process.poll() is None and two.process.poll() is None
    finally:
        one.stop()
        two.stop()

    executed = executions(tmp_path / "probe.log")
    duplicates = [t for t, n in Counter(executed).items() if n > 1]
    assert duplicates == [], f"runs executed twice: {duplicates}"
    runs = _runs(postgres_url, "probe")
    succeeded = sorted(r.scheduled_for.isoformat() for r in runs if r.status is RunStatus.SUCCEEDED)
    assert succeeded == sorted(executed)  # every record is one execution, and the reverse
    assert {r.pid for r in runs} <= {one.pid, two.pid}
    # They really competed: some run was executed by one while the other saw it taken.
    both_outputs = one.output() + two.output()
    assert "event=job_run_taken_elsewhere job=probe" in both_outputs, _details(one, two)

    flaky = _runs(postgres_url, "flaky")
    assert flaky[0].status is RunStatus.FAILED
    assert flaky[0].error == "RuntimeError: the flaky probe fails its first run"
    assert any(r.status is RunStatus.SUCCEEDED for r in flaky[1:])
    assert len(executions(tmp_path / "flaky.log")) == len(
        [r for r in flaky if r.status is not RunStatus.SKIPPED]
    )


def test_a_run_left_running_by_a_killed_scheduler_is_abandoned_and_the_job_runs_again(
    postgres_url, tmp_path
):
    # The first execution of `hang` never ends; its process is then killed outright.
    schedules = "purge_auth=off; summary_snapshot=off; overdue_followups=off; probe=off; "
    schedules += "flaky=off; hang=every 1"
    doomed = Scheduler("doomed", _env(postgres_url, tmp_path, JOB_SCHEDULES=schedules), tmp_path)
    try:
        wait_until(
            lambda: (tmp_path / "hang.marker").exists(),
            what="the hanging run started",
            details=lambda: _details(doomed),
        )
    finally:
        doomed.stop(signal.SIGKILL)
    [left] = _runs(postgres_url, "hang")
    assert left.status is RunStatus.RUNNING and left.pid == doomed.pid

    survivor = Scheduler(
        "survivor",
        _env(postgres_url, tmp_path, JOB_SCHEDULES=schedules, JOB_STALE_AFTER="2"),
        tmp_path,
    )
    try:
        wait_until(
            lambda: any(r.status is RunStatus.SUCCEEDED for r in _runs(postgres_url, "hang")),
            what="a run of the job after the abandoned one",
            details=lambda: _details(survivor),
        )
    finally:
        survivor.stop()
    runs = _runs(postgres_url, "hang")
    assert runs[0].id == left.id and runs[0].status is RunStatus.FAILED
    assert (runs[0].error or "").startswith("abandoned:")
    assert all(r.pid == survivor.pid for r in runs[1:])
