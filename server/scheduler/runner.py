"""Running one job run, exactly once across every scheduler process and host.

Each run is keyed by (job, scheduled time): scheduled times come from the triggers, which every
process computes alike (`schedule`), and a manual run is keyed by when it was asked for. Before
running, a process inserts the run's row; the unique key lets only one insert succeed, and every
other process sees the row (or the key violation) and leaves the run alone. This is used rather
than holding a PostgreSQL advisory lock for the job's duration because it works the same on SQLite,
leaves a record of every run, and does not keep a transaction open while a job runs. The claim
transaction alone is serialised per job (`pg_advisory_xact_lock` on PostgreSQL, SQLite's single
writer), so that a run is skipped, not overlapped, while an earlier run of the job is running.

A run left `running` by a process that died is taken as abandoned once it is older than the job's
stale limit: it is then recorded as failed and no longer blocks anything. The next scheduled run
has its own key, so a stale row never stops the schedule; it only makes "run now" answer 409
until it is declared abandoned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from server.db import utcnow
from server.errors import Conflict
from server.request_log import LOGGER_NAME
from server.scheduler.models import JobRun, RunStatus, RunTrigger

if TYPE_CHECKING:
    from server.runtime import Runtime
    from server.scheduler.registry import Job

log = logging.getLogger(f"{LOGGER_NAME}.scheduler")
HOST = socket.gethostname()[:255]
MAX_ERROR_LENGTH = 2000


class JobAlreadyRunning(Conflict):
    """A manual run asked for while a run of the job is still running (409)."""


def stale_limit(rt: Runtime, job: Job) -> timedelta:
    seconds = job.stale_after if job.stale_after is not None else rt.settings.job_stale_after
    return timedelta(seconds=seconds)


def run_job(
    rt: Runtime,
    job: Job,
    *,
    scheduled_for: datetime,
    trigger: RunTrigger,
    requested_by: str | None = None,
) -> JobRun | None:
    """Claim the run (job, scheduled_for) and, if this process got it, execute and record it.

    Returns the recorded run (succeeded, failed or skipped), or None when another process has it.
    A job that raises is recorded as failed, never propagated. A manual run while another run of
    the job is running raises JobAlreadyRunning."""
    run = _claim(rt, job, scheduled_for, trigger, requested_by)
    if run is None:
        log.info(
            "event=job_run_taken_elsewhere job=%s scheduled_for=%s pid=%d",
            job.name,
            scheduled_for.isoformat(),
            os.getpid(),
        )
        return None
    if run.status is RunStatus.SKIPPED:
        log.warning(
            "event=job_run_skipped job=%s scheduled_for=%s reason=%r",
            job.name,
            scheduled_for.isoformat(),
            run.error,
        )
        return run
    log.info(
        "event=job_run_started job=%s run=%d scheduled_for=%s pid=%d",
        job.name,
        run.id,
        scheduled_for.isoformat(),
        os.getpid(),
    )
    started = time.monotonic()
    summary: dict[str, Any] | None = None
    error: str | None = None
    try:
        summary = job.run(rt, scheduled_for)
    except Exception as exc:
        error = describe(exc)
        log.exception("event=job_run_failed job=%s run=%d error=%r", job.name, run.id, error)
    except BaseException as exc:  # interrupted (SystemExit, KeyboardInterrupt): say so, go on
        _finish(rt, run.id, started, None, f"interrupted: {type(exc).__name__}")
        raise
    finished = _finish(rt, run.id, started, summary, error)
    log.info(
        "event=job_run_finished job=%s run=%d status=%s duration_ms=%d",
        job.name,
        run.id,
        finished.status.value,
        finished.duration_ms or 0,
    )
    return finished


def describe(exc: BaseException) -> str:
    """What a failed run records: the exception's type and message. For a database error, the
    driver's message only (SQLAlchemy's text would add the statement and its parameters)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        inner = str(exc.orig).strip().splitlines()
        text_ = f"{type(exc).__name__}: {type(exc.orig).__name__}: {inner[0] if inner else ''}"
    else:
        text_ = f"{type(exc).__name__}: {exc}"
    return text_[:MAX_ERROR_LENGTH]


def _claim(
    rt: Runtime,
    job: Job,
    scheduled_for: datetime,
    trigger: RunTrigger,
    requested_by: str | None,
) -> JobRun | None:
    now = utcnow()
    try:
        with rt.db.unit_of_work() as session:
            _serialise(session, job.name)
            abandon_stale(session, job.name, stale_limit(rt, job), now)
            taken = session.scalar(
                select(JobRun.id).where(
                    JobRun.job == job.name, JobRun.scheduled_for == scheduled_for
                )
            )
            if taken is not None:
                return None
            running = session.scalars(
                select(JobRun)
                .where(JobRun.job == job.name, JobRun.status == RunStatus.RUNNING)
                .order_by(JobRun.id)
                .limit(1)
            ).first()
            if running is not None and trigger is RunTrigger.MANUAL:
                raise JobAlreadyRunning(
                    "the job is running",
                    details={"job": job.name, "run": running.id, "host": running.host},
                )
            run = JobRun(
                job=job.name,
                scheduled_for=scheduled_for,
                trigger=trigger,
                status=RunStatus.RUNNING,
                started_at=now,
                host=HOST,
                pid=os.getpid(),
                requested_by=requested_by,
            )
            if running is not None:
                run.status = RunStatus.SKIPPED
                run.finished_at = now
                run.duration_ms = 0
                run.error = (
                    f"run {running.id} (scheduled for {running.scheduled_for.isoformat()}, "
                    f"on {running.host}) was still running"
                )
            session.add(run)
            session.flush()
            return run
    except IntegrityError:  # another process inserted the same run first
        return None


def _serialise(session: Session, job_name: str) -> None:
    """Let one claim of `job_name` at a time proceed (until this transaction ends). SQLite's
    write transactions already take turns."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"fieldsync.job:{job_name}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def abandon_stale(session: Session, job_name: str, limit: timedelta, now: datetime) -> int:
    """Record runs of `job_name` still running after `limit` as failed (their process died)."""
    result = session.execute(
        update(JobRun)
        .where(
            JobRun.job == job_name,
            JobRun.status == RunStatus.RUNNING,
            JobRun.started_at < now - limit,
        )
        .values(
            status=RunStatus.FAILED,
            finished_at=now,
            error=(
                f"abandoned: still marked running {int(limit.total_seconds())} s after it "
                "started (its process ended without recording an outcome)"
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _finish(
    rt: Runtime,
    run_id: int,
    started: float,
    summary: dict[str, Any] | None,
    error: str | None,
) -> JobRun:
    duration_ms = int((time.monotonic() - started) * 1000)
    with rt.db.unit_of_work() as session:
        # Whatever a stale check may have written meanwhile, the real outcome wins.
        session.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(
                status=RunStatus.FAILED if error is not None else RunStatus.SUCCEEDED,
                finished_at=utcnow(),
                duration_ms=duration_ms,
                error=error,
                summary=summary,
            )
            .execution_options(synchronize_session=False)
        )
        run = session.get(JobRun, run_id)
        assert run is not None
        return run
