"""Background export jobs: one row per export asked for with `POST /api/v1/exports/{dataset}/jobs`.
The row is the only shared state: a worker (a thread of the web process that accepted the job, or
the scheduler's `export_jobs` job on any host) claims it with a conditional UPDATE (queued →
running), so exactly one runs it; the file lives under EXPORT_DIR (shared storage)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, enum_type


class ExportJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the export raised, or its worker died (no heartbeat)
    EXPIRED = "expired"  # past expires_at: the file is removed, the row kept as a record


class ExportJob(Base):
    __tablename__ = "export_jobs"
    __table_args__ = (
        Index("ix_export_jobs_status", "status"),
        Index("ix_export_jobs_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Who asked, and the scope they had then (the job runs as that caller, never as the system).
    user_id: Mapped[int | None]
    username: Mapped[str] = mapped_column(String(150))
    role: Mapped[str] = mapped_column(String(32))
    region_codes: Mapped[list[Any]]
    # The dataset (or `all` for a ZIP bundle), the format and the export's query parameters as
    # sent (filters, labels, header, bom, cursor, reveal), re-read with ExportQuerySchema to run.
    dataset: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    query: Mapped[dict[str, Any]]
    reveal: Mapped[bool]
    status: Mapped[ExportJobStatus] = mapped_column(enum_type(ExportJobStatus, "export_job_status"))
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Written by the running worker at every progress update; a running job whose heartbeat is
    # older than EXPORT_JOB_STALE_AFTER is recorded as failed by the scheduler's cleanup.
    heartbeat_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))  # host:pid of the runner
    # The file's name inside EXPORT_DIR once complete (never a path from outside).
    file_name: Mapped[str | None] = mapped_column(String(255))
    next_cursor: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime]
