"""The job functions fieldsync itself schedules. Each is `(runtime, now) -> summary`: one service
call in its own unit of work, nothing else (the rules live in the services they call)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.runtime import Runtime

# How long the record of a finished job run is kept.
JOB_RUNS_KEPT = timedelta(days=90)
# Rows removed per statement when purging login throttles (keeps each lock set small).
THROTTLE_PURGE_BATCH = 1000


def purge_auth(rt: Runtime, now: datetime) -> dict[str, Any]:
    from server.auth import throttle
    from server.auth.service import purge_tokens

    with rt.db.unit_of_work() as session:
        tokens = purge_tokens(session, now=now)
    throttles = 0
    while True:  # one unit of work per batch: logins never wait long on the purge
        with rt.db.unit_of_work() as session:
            removed = throttle.forget_stale(
                session, rt.settings, now=now, batch=THROTTLE_PURGE_BATCH
            )
        throttles += removed
        if removed < THROTTLE_PURGE_BATCH:
            break
    return {"tokens": tokens, "login_throttles": throttles}


def summary_snapshot(rt: Runtime, now: datetime) -> dict[str, Any]:
    from server.monitoring.snapshots import take_summary_snapshots

    with rt.db.unit_of_work() as session:
        return take_summary_snapshots(session, rt.settings.snapshot_levels, now)


def overdue_followups(rt: Runtime, now: datetime) -> dict[str, Any]:
    from server.monitoring.snapshots import record_overdue_counts

    with rt.db.unit_of_work() as session:
        return record_overdue_counts(session, now)


def purge_job_runs(rt: Runtime, now: datetime) -> dict[str, Any]:
    from server.scheduler.service import forget_old_runs

    with rt.db.unit_of_work() as session:
        return {"job_runs": forget_old_runs(session, before=now - JOB_RUNS_KEPT)}
