"""Every scheduled job, in one place: its name, what it does, its default schedule and the function
that does it. A job function is `(runtime, now) -> dict` (a small JSON summary of what it did),
opens its own unit(s) of work and is safe to run again (the runner guarantees one execution per
scheduled time, not that a retried run finds nothing done).

Adding a job is one `Job(...)` entry in `JOBS` (docs/operations.md, "Scheduled jobs"). Schedules
can be changed per deployment with JOB_SCHEDULES; tests add jobs with JOB_MODULES.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from server.config import ConfigError, Settings
from server.departments import jobs as department_jobs
from server.exports import jobs as export_jobs
from server.scheduler import jobs
from server.warnings import jobs as warning_jobs

if TYPE_CHECKING:
    from server.runtime import Runtime

JobFunction = Callable[["Runtime", datetime], dict[str, Any]]
NAME_PATTERN = r"[a-z][a-z0-9_]{0,63}"


@dataclass(frozen=True)
class Job:
    name: str  # stable: job runs are stored under it
    description: str
    schedule: str  # `cron <min> <hour> <day> <month> <weekday>` (SCHEDULER_TIMEZONE), `every <s>`
    run: JobFunction
    # Seconds after which a run still marked running is taken as abandoned; None: JOB_STALE_AFTER.
    stale_after: int | None = None


JOBS: tuple[Job, ...] = (
    Job(
        "purge_auth",
        "Remove expired and revoked login tokens and stale login-throttle rows",
        "every 3600",
        jobs.purge_auth,
        stale_after=1800,  # takes seconds: a run this old is dead, and the next purge waits
    ),
    Job(
        "summary_snapshot",
        "Store today's monitoring summary of every region at the snapshot levels",
        "cron 30 0 * * *",
        jobs.summary_snapshot,
    ),
    Job(
        "overdue_followups",
        "Store today's overdue follow-up visits per village and monitoring type",
        "cron 45 0 * * *",
        jobs.overdue_followups,
    ),
    Job(
        "purge_job_runs",
        "Forget job runs that finished over 90 days ago",
        "cron 15 1 * * *",
        jobs.purge_job_runs,
    ),
    Job(
        "warnings_nightly",
        "Re-evaluate every risk rule over the whole register (docs/warnings.md)",
        "cron 30 2 * * *",
        warning_jobs.nightly_reevaluation,
    ),
    Job(
        "department_fetch",
        "Fetch the department sources whose own schedule is due",
        "every 60",  # each source's cron decides; this only looks for due ones
        department_jobs.fetch_due_sources,
    ),
    Job(
        "export_jobs",
        "Run queued background exports; record those whose worker died as failed",
        "every 60",  # web workers start their jobs at once; this catches what they left
        export_jobs.run_queued,
        stale_after=24 * 3600,  # a run lasts as long as the exports it takes on
    ),
    Job(
        "export_cleanup",
        "Remove the files of background exports past EXPORT_JOB_TTL",
        "every 3600",
        export_jobs.expire_jobs,
    ),
)


def registered_jobs(settings: Settings) -> dict[str, Job]:
    """The jobs of this deployment: `JOBS`, those of JOB_MODULES, with JOB_SCHEDULES applied."""
    found: dict[str, Job] = {}
    for job in (*JOBS, *_module_jobs(settings.job_modules)):
        if not re.fullmatch(NAME_PATTERN, job.name):
            raise ConfigError(f"job name {job.name!r}: lower case, digits and _, up to 64")
        if job.name in found:
            raise ConfigError(f"two scheduled jobs are named {job.name!r}")
        found[job.name] = job
    for name, schedule in parse_schedules(settings.job_schedules).items():
        if name not in found:
            raise ConfigError(f"JOB_SCHEDULES names {name!r}, which is no job")
        found[name] = replace(found[name], schedule=schedule)
    return found


def parse_schedules(text: str) -> dict[str, str]:
    """`name=schedule; name=schedule` as a dict (the schedules are checked by `trigger_for`)."""
    result: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, schedule = part.partition("=")
        if not sep or not name.strip() or not schedule.strip():
            raise ConfigError(f"JOB_SCHEDULES: expected name=schedule, got {part.strip()!r}")
        result[name.strip()] = " ".join(schedule.split())
    return result


def _module_jobs(modules: tuple[str, ...]) -> list[Job]:
    found: list[Job] = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"JOB_MODULES: cannot import {module_name}: {exc}") from exc
        extra = getattr(module, "JOBS", None)
        if not isinstance(extra, tuple) or not all(isinstance(j, Job) for j in extra):
            raise ConfigError(f"JOB_MODULES: {module_name} has no JOBS tuple of Job")
        found.extend(extra)
    return found
