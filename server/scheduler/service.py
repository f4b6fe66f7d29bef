"""What admins and the `fieldsync scheduler` command do with jobs: list them with their schedules
and runs, run one now, and drive the schedule with APScheduler. The runner decides who executes a
run; this module never runs a job by another path."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.config import ConfigError, Settings
from server.db import utcnow
from server.errors import Conflict, NotFound
from server.scheduler import runner, schedule
from server.scheduler.models import JobRun, RunStatus, RunTrigger
from server.scheduler.registry import Job, registered_jobs
from server.users.models import Role

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

    from server.runtime import Runtime

log = logging.getLogger(runner.log.name)
# Runs shown with each job in the listing.
RECENT_RUNS = 5


def timezone_of(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.scheduler_timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"SCHEDULER_TIMEZONE {settings.scheduler_timezone!r} is no known time zone"
        ) from exc


def scheduled_jobs(settings: Settings) -> list[tuple[Job, BaseTrigger | None]]:
    """Every registered job with its trigger (None: `off`). ConfigError for a bad schedule."""
    zone = timezone_of(settings)
    return [
        (job, schedule.trigger_for(job.schedule, zone))
        for job in registered_jobs(settings).values()
    ]


def upcoming(rt: Runtime) -> list[tuple[str, str, datetime | None]]:
    now = utcnow()
    return [
        (job.name, job.schedule, schedule.next_fire_time(trigger, now))
        for job, trigger in scheduled_jobs(rt.settings)
    ]


# --- the API -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    name: str
    description: str
    schedule: str
    next_run_at: datetime | None
    is_running: bool
    recent_runs: list[JobRun]


@dataclass(frozen=True)
class JobListing:
    jobs: list[JobState]
    runs: list[JobRun]
    total: int
    limit: int
    offset: int


def list_jobs(
    session: Session,
    actor: Actor,
    settings: Settings,
    *,
    job: str | None,
    status: str | None,
    trigger: str | None,
    limit: int,
    offset: int,
) -> JobListing:
    """Every job with its schedule, next run and latest runs, and one page of runs (newest
    first), filtered by job, status and trigger. Admins only."""
    actor.ensure_role(Role.ADMIN)
    known = scheduled_jobs(settings)
    if job is not None and job not in {j.name for j, _ in known}:
        raise NotFound("no such job", details={"job": job})
    now = utcnow()
    states = []
    for entry, entry_trigger in known:
        recent = list(
            session.scalars(
                select(JobRun)
                .where(JobRun.job == entry.name)
                .order_by(JobRun.id.desc())
                .limit(RECENT_RUNS)
            )
        )
        running = session.scalar(
            select(func.count())
            .select_from(JobRun)
            .where(JobRun.job == entry.name, JobRun.status == RunStatus.RUNNING)
        )
        states.append(
            JobState(
                name=entry.name,
                description=entry.description,
                schedule=entry.schedule,
                next_run_at=schedule.next_fire_time(entry_trigger, now),
                is_running=bool(running),
                recent_runs=recent,
            )
        )
    conditions = []
    if job is not None:
        conditions.append(JobRun.job == job)
    if status is not None:
        conditions.append(JobRun.status == RunStatus(status))
    if trigger is not None:
        conditions.append(JobRun.trigger == RunTrigger(trigger))
    total = session.scalar(select(func.count()).select_from(JobRun).where(*conditions)) or 0
    runs = list(
        session.scalars(
            select(JobRun).where(*conditions).order_by(JobRun.id.desc()).limit(limit).offset(offset)
        )
    )
    return JobListing(jobs=states, runs=runs, total=total, limit=limit, offset=offset)


def run_now(rt: Runtime, actor: Actor, name: str) -> JobRun:
    """Run a job at once in this process, as a manual run under the same one-executor rule:
    404 for an unknown job, 409 while a run of it is running. The run's failure is in the
    answer, not an error. Audited."""
    actor.ensure_role(Role.ADMIN)
    job = registered_jobs(rt.settings).get(name)
    if job is None:
        raise NotFound("no such job", details={"job": name})
    with rt.db.unit_of_work() as session:
        audit.record(
            session,
            "job_run_requested",
            user_id=actor.user_id,
            object_type="job",
            object_id=name,
            address=actor.address,
        )
    run = runner.run_job(
        rt,
        job,
        scheduled_for=utcnow(),
        trigger=RunTrigger.MANUAL,
        requested_by=actor.username,
    )
    if run is None:  # another manual run asked for in the same microsecond
        raise Conflict("the job is running", details={"job": name})
    return run


def forget_old_runs(session: Session, *, before: datetime) -> int:
    """Delete the record of runs that finished before `before` (the `purge_job_runs` job)."""
    result = session.execute(
        delete(JobRun).where(JobRun.finished_at.is_not(None), JobRun.finished_at < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- the scheduler process -----------------------------------------------------------------------


def scheduled_run(rt: Runtime, job: Job, trigger: BaseTrigger) -> None:
    """What APScheduler calls at each fire time: the run of the latest fire time, if this
    process wins it. Never raises: a database that cannot be reached is logged, and the next
    fire time tries again."""
    now = utcnow()
    scheduled_for = schedule.latest_fire_time(trigger, now)
    if scheduled_for is None:
        log.warning("event=job_run_missed job=%s at=%s", job.name, now.isoformat())
        return
    try:
        runner.run_job(rt, job, scheduled_for=scheduled_for, trigger=RunTrigger.SCHEDULED)
    except Exception:
        log.exception("event=job_run_not_claimed job=%s", job.name)


def start_blocking_scheduler(rt: Runtime) -> None:
    """Run every scheduled job on its trigger until SIGTERM or SIGINT; blocks."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler

    zone = timezone_of(rt.settings)
    table = scheduled_jobs(rt.settings)
    scheduler = BlockingScheduler(
        timezone=zone,
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={
            "coalesce": True,  # a process that slept through runs catches up once
            "max_instances": 1,
            "misfire_grace_time": int(schedule.LATE_RUN_GRACE.total_seconds()),
        },
    )
    for job, trigger in table:
        if trigger is not None:
            scheduler.add_job(
                scheduled_run, trigger, args=(rt, job, trigger), id=job.name, name=job.name
            )

    def stop(signum: int, _frame: Any) -> None:
        log.info("event=scheduler_stopping signal=%d pid=%d", signum, os.getpid())
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "event=scheduler_started host=%s pid=%d jobs=%s",
        runner.HOST,
        os.getpid(),
        ",".join(f"{job.name}({job.schedule})" for job, _ in table),
    )
    scheduler.start()
    log.info("event=scheduler_stopped pid=%d", os.getpid())
