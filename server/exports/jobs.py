"""Background export jobs: a large export written to a file under EXPORT_DIR, downloadable later,
its progress in the `export_jobs` row, removed after EXPORT_JOB_TTL.

Creating a job checks everything a direct export checks (dataset, filters, scope, the reveal
permission, the cursor) with `service.plan_export`, audits a reveal the same way, and stores the
query as sent. Running it re-plans as the creator (the scope recorded with the job) and writes the
very bytes `service.render` streams to a direct export, under a temporary name renamed when
complete.

Exactly one worker runs a job: `claim` is a conditional UPDATE (queued → running) whose row count
says who won. Two kinds of worker claim jobs: a thread of the web process that accepted the job
(EXPORT_JOB_THREADS, the default: the file is ready soonest) and the scheduler's `export_jobs` job
on any host, which picks up whatever is still queued (the thread was off, or its process died
before claiming). A worker that dies mid-run stops writing its heartbeat; after
EXPORT_JOB_STALE_AFTER the scheduler records the job as failed. Deleting a job while it runs
cancels it: the worker's next progress update finds the row gone and stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.db import Database, utcnow
from server.errors import AppError, Conflict, NotFound
from server.exports import service
from server.exports.job_models import ExportJob, ExportJobStatus
from server.exports.schemas import ExportQuerySchema
from server.request_body import load_with
from server.sensitive import SensitiveCodec
from server.users.models import Role
from sync_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from server.runtime import Runtime

log = logging.getLogger("fieldsync.exports.jobs")

EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "zip": "zip"}
# Progress (rows, bytes, heartbeat) is written at most this often while a job runs.
PROGRESS_SECONDS = 1.0
# ... checked every this many rows.
PROGRESS_ROWS = 500
# Queued jobs one `export_jobs` run takes on at most (the next run takes the rest).
JOBS_PER_RUN = 20
HOST = socket.gethostname()[:200]


class Gone(AppError):
    """The job's file has expired and was removed: export again (410)."""

    code = ErrorCode.GONE


class Cancelled(Exception):
    """The job's row was deleted while it ran."""


@dataclass(frozen=True)
class JobPlan:
    plans: list[service.ExportPlan]
    fmt: str
    bom: bool
    header: str | None


def _plans(
    session: Session, actor: Actor, settings: Settings, dataset: str, query: dict[str, str]
) -> JobPlan:
    """What the export asked for reads (as the direct export route plans it)."""
    args = load_with(ExportQuerySchema(), query)
    options = service.export_options(args)
    fmt = args["format"]
    if fmt == "zip":
        if dataset != "all":
            service.dataset_named(dataset)  # 404 for an unknown name
        plans = service.plan_bundle(session, actor, settings, options)
        if dataset != "all":
            plans = [p for p in plans if p.dataset.name == dataset]
    else:
        plans = [service.plan_export(session, actor, settings, dataset, options)]
    return JobPlan(plans, fmt, args.get("bom") in ("true", "1"), args.get("header"))


def create_job(
    session: Session, actor: Actor, settings: Settings, dataset: str, query: dict[str, str]
) -> ExportJob:
    """A queued job for the export `query` (the direct export's parameters) of `dataset`, after
    the checks of a direct export; a reveal is audited here (write unit of work)."""
    plan = _plans(session, actor, settings, dataset, query)
    now = utcnow()
    job = ExportJob(
        id=uuid.uuid4(),
        user_id=actor.user_id,
        username=actor.username,
        role=actor.role.value,
        region_codes=list(actor.region_codes),
        dataset=dataset,
        format=plan.fmt,
        query=dict(query),
        reveal=query.get("reveal") == "sensitive",
        status=ExportJobStatus.QUEUED,
        rows_done=0,
        bytes_done=0,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.export_job_ttl),
    )
    session.add(job)
    session.flush()
    return job


# --- reading and removing, scoped ----------------------------------------------------------------


def _visible(actor: Actor, job: ExportJob) -> bool:
    return actor.is_admin or (actor.user_id is not None and job.user_id == actor.user_id)


def get_job(session: Session, actor: Actor, job_id: uuid.UUID) -> ExportJob:
    """The job, if the caller made it (admins: any); otherwise a 404 (never says it exists)."""
    job = session.get(ExportJob, job_id)
    if job is None or not _visible(actor, job):
        raise NotFound("no such export job")
    return job


def list_jobs(
    session: Session, actor: Actor, *, status: str | None, limit: int, offset: int
) -> list[ExportJob]:
    """The caller's jobs (admins: everyone's), newest first."""
    query = select(ExportJob)
    if not actor.is_admin:
        query = query.where(ExportJob.user_id == actor.user_id)
    if status is not None:
        query = query.where(ExportJob.status == ExportJobStatus(status))
    query = query.order_by(ExportJob.created_at.desc(), ExportJob.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def open_job_file(
    session: Session, actor: Actor, settings: Settings, job_id: uuid.UUID
) -> tuple[ExportJob, BinaryIO]:
    """A finished job and its file opened for download (the caller closes it): 409 until it
    succeeded, 410 once expired. A revealing job's download is audited like the export itself
    (write unit of work). Open, the file survives a cleanup removing it meanwhile."""
    job = get_job(session, actor, job_id)
    if job.status is ExportJobStatus.EXPIRED:
        raise Gone("the export file has expired and was removed: export again")
    if job.status is not ExportJobStatus.SUCCEEDED or job.file_name is None:
        raise Conflict(
            f"the export job is {job.status.value}, not finished",
            details={"status": job.status.value},
        )
    if job.reveal:
        audit.record(
            session,
            "export_reveal",
            user_id=actor.user_id,
            object_type="export_job",
            object_id=str(job.id),
            region_code=job.query.get("region"),
            address=actor.address,
            details={
                "dataset": job.dataset,
                "filters": _filters(job.query),
                "download": True,
                "job_owner": job.username,
            },
        )
    # Opened last: a refusal rolls the audit back, and nothing is left open.
    try:
        content = (settings.export_dir / job.file_name).open("rb")
    except FileNotFoundError as exc:  # removed by hand, or by a cleanup racing this download
        raise Gone("the export file is no longer stored: export again") from exc
    return job, content


def _filters(query: dict[str, Any]) -> dict[str, Any]:
    options = {"format", "bom", "labels", "header", "reveal", "cursor"}
    return {k: v for k, v in query.items() if k not in options}


def remove_job(session: Session, actor: Actor, settings: Settings, job_id: uuid.UUID) -> None:
    """Delete the job and its file. A running job is cancelled: its worker stops at its next
    progress update and removes its temporary file."""
    job = get_job(session, actor, job_id)
    if job.file_name:
        (settings.export_dir / job.file_name).unlink(missing_ok=True)
    session.delete(job)
    session.flush()


def file_name_of(job: ExportJob) -> str:
    """The name a download is saved as."""
    stamp = job.created_at.strftime("%Y%m%dT%H%M%SZ")
    return f"{job.dataset}-{stamp}.{EXTENSIONS[job.format]}"


# --- running --------------------------------------------------------------------------------------


def claim(db: Database, job_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    """Take the queued job for this worker. True for exactly one of any number of callers."""
    now = now or utcnow()
    with db.unit_of_work() as session:
        result = session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.status == ExportJobStatus.QUEUED)
            .values(
                status=ExportJobStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                worker=f"{HOST}:{os.getpid()}:{threading.get_ident()}",
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _actor_of(job: ExportJob) -> Actor:
    return Actor(
        user_id=job.user_id,
        username=job.username,
        role=Role(job.role),  # type: ignore[call-arg]  # looked up by its code
        region_codes=tuple(job.region_codes),
    )


def _temporary(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.export_dir / f".{job_id}.partial"


def _progress(db: Database, job_id: uuid.UUID, rows: int, size: int) -> None:
    with db.unit_of_work() as session:
        result = session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.status == ExportJobStatus.RUNNING)
            .values(rows_done=rows, bytes_done=size, heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Cancelled(str(job_id))


def run_claimed(
    db: Database,
    codec: SensitiveCodec,
    settings: Settings,
    job_id: uuid.UUID,
    *,
    progress_seconds: float | None = None,
) -> ExportJobStatus | None:
    """Write the file of a job this worker claimed and record how it went: the final status,
    or None if the job was deleted (cancelled) meanwhile."""
    every = PROGRESS_SECONDS if progress_seconds is None else progress_seconds
    counted = {"rows": 0, "bytes": 0}
    last = [time.monotonic()]

    def beat() -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            _progress(db, job_id, counted["rows"], counted["bytes"])

    def count(rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
        for row in rows:
            counted["rows"] += 1
            if not counted["rows"] % PROGRESS_ROWS:
                beat()
            yield row

    temporary = _temporary(settings, job_id)
    try:
        with db.unit_of_work() as session:
            job = session.get(ExportJob, job_id)
            if job is None:
                return None
            query, dataset, fmt = dict(job.query), job.dataset, job.format
            actor = _actor_of(job)
        # Planned again as the creator (the checks are repeated; the scope is the one recorded).
        # A revealing plan would audit again: the reveal was audited when the job was created,
        # so this unit of work is rolled back.
        with db.unit_of_work(write=query.get("reveal") == "sensitive") as session:
            plan = _plans(session, actor, settings, dataset, query)
            session.rollback()
        settings.export_dir.mkdir(parents=True, exist_ok=True)
        body = service.render(
            db, codec, plan.plans, plan.fmt, bom=plan.bom, header=plan.header, rows=count
        )
        with temporary.open("wb") as out:
            for chunk in body:
                out.write(chunk)
                counted["bytes"] += len(chunk)
        name = f"{job_id}.{EXTENSIONS[fmt]}"
        temporary.replace(settings.export_dir / name)
        next_cursor = plan.plans[0].next_cursor if len(plan.plans) == 1 else None
        return _finish(
            db,
            settings,
            job_id,
            ExportJobStatus.SUCCEEDED,
            rows=counted["rows"],
            size=counted["bytes"],
            file_name=name,
            next_cursor=next_cursor,
        )
    except Cancelled:
        log.info("event=export_job_cancelled job=%s", job_id)
        return None
    except Exception as exc:
        log.exception("event=export_job_failed job=%s", job_id)
        message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        return _finish(
            db,
            settings,
            job_id,
            ExportJobStatus.FAILED,
            rows=counted["rows"],
            size=counted["bytes"],
            error=message[:2000],
        )
    finally:
        temporary.unlink(missing_ok=True)


def _finish(
    db: Database,
    settings: Settings,
    job_id: uuid.UUID,
    status: ExportJobStatus,
    *,
    rows: int,
    size: int,
    file_name: str | None = None,
    next_cursor: str | None = None,
    error: str | None = None,
) -> ExportJobStatus | None:
    now = utcnow()
    with db.unit_of_work() as session:
        result = session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.status == ExportJobStatus.RUNNING)
            .values(
                status=status,
                rows_done=rows,
                bytes_done=size,
                finished_at=now,
                heartbeat_at=now,
                file_name=file_name,
                next_cursor=next_cursor,
                error=error,
                expires_at=now + timedelta(seconds=settings.export_job_ttl),
            )
            .execution_options(synchronize_session=False)
        )
        finished = result.rowcount == 1  # type: ignore[attr-defined]
    if not finished:  # deleted meanwhile: the file belongs to no one
        if file_name:
            (settings.export_dir / file_name).unlink(missing_ok=True)
        return None
    return status


def claim_and_run(rt: Runtime, job_id: uuid.UUID) -> ExportJobStatus | None:
    """Run the job if this worker wins it; None if another did (or it is gone)."""
    if not claim(rt.db, job_id):
        return None
    return run_claimed(rt.db, rt.codec, rt.settings, job_id)


def start_in_thread(rt: Runtime, job_id: uuid.UUID) -> threading.Thread:
    """Run the job in a daemon thread of this process (the web worker that accepted it)."""
    thread = threading.Thread(
        target=_run_logged, args=(rt, job_id), name=f"export-job-{job_id}", daemon=True
    )
    thread.start()
    return thread


def _run_logged(rt: Runtime, job_id: uuid.UUID) -> None:
    try:
        claim_and_run(rt, job_id)
    except Exception:  # never kill the thread silently: the scheduler retries queued jobs
        log.exception("event=export_job_thread_failed job=%s", job_id)


# --- the scheduler's jobs -----------------------------------------------------------------------


def run_queued(rt: Runtime, now: datetime) -> dict[str, Any]:
    """`export_jobs`: record abandoned running jobs as failed, then claim and run queued ones,
    oldest first."""
    abandoned = fail_abandoned(rt.db, rt.settings, now)
    with rt.db.unit_of_work(write=False) as session:
        queued = list(
            session.scalars(
                select(ExportJob.id)
                .where(ExportJob.status == ExportJobStatus.QUEUED)
                .order_by(ExportJob.created_at)
                .limit(JOBS_PER_RUN)
            )
        )
    outcomes: dict[str, int] = {}
    for job_id in queued:
        status = claim_and_run(rt, job_id)
        key = status.value if status is not None else "taken_elsewhere"
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"abandoned": abandoned, **outcomes}


def fail_abandoned(db: Database, settings: Settings, now: datetime) -> int:
    """Running jobs without a heartbeat for EXPORT_JOB_STALE_AFTER: failed (their temporary
    files, on the shared EXPORT_DIR, are removed)."""
    limit = now - timedelta(seconds=settings.export_job_stale_after)
    with db.unit_of_work() as session:
        stale = list(
            session.scalars(
                select(ExportJob.id).where(
                    ExportJob.status == ExportJobStatus.RUNNING, ExportJob.heartbeat_at < limit
                )
            )
        )
        if stale:
            session.execute(
                update(ExportJob)
                .where(ExportJob.id.in_(stale), ExportJob.status == ExportJobStatus.RUNNING)
                .values(
                    status=ExportJobStatus.FAILED,
                    finished_at=now,
                    error="abandoned: its worker stopped reporting progress",
                    expires_at=now + timedelta(seconds=settings.export_job_ttl),
                )
                .execution_options(synchronize_session=False)
            )
    for job_id in stale:
        _temporary(settings, job_id).unlink(missing_ok=True)
    return len(stale)


def expire_jobs(rt: Runtime, now: datetime) -> dict[str, Any]:
    """`export_cleanup`: finished jobs past expires_at lose their file and become `expired`;
    expired records are forgotten after another EXPORT_JOB_TTL."""
    settings = rt.settings
    with rt.db.unit_of_work() as session:
        due = list(
            session.scalars(
                select(ExportJob).where(
                    ExportJob.status.in_((ExportJobStatus.SUCCEEDED, ExportJobStatus.FAILED)),
                    ExportJob.expires_at <= now,
                )
            )
        )
        for job in due:
            if job.file_name:
                (settings.export_dir / job.file_name).unlink(missing_ok=True)
            job.status = ExportJobStatus.EXPIRED
            job.file_name = None
        forgotten = session.execute(
            delete(ExportJob)
            .where(
                ExportJob.status == ExportJobStatus.EXPIRED,
                ExportJob.expires_at <= now - timedelta(seconds=settings.export_job_ttl),
            )
            .execution_options(synchronize_session=False)
        )
    return {"expired": len(due), "forgotten": forgotten.rowcount}  # type: ignore[attr-defined]


def plan_query(
    session: Session, actor: Actor, settings: Settings, dataset: str, query: dict[str, str]
) -> JobPlan:
    """The plans of a direct export of `dataset` with the query parameters `query` (as the API's
    `GET /api/v1/exports/{dataset}` reads them), after every check a job makes; a reveal is
    audited (write unit of work). For the console's "download now"."""
    return _plans(session, actor, settings, dataset, query)
