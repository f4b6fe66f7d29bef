"""Job runs: one row per (job, scheduled time), inserted before the job runs. The unique key is
what lets exactly one of several scheduler processes execute a run; the row then records how it
went (status, duration, error, summary, which host and process)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, enum_type


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the job raised, or the run was abandoned (its process died)
    SKIPPED = "skipped"  # an earlier run of the same job was still running


class RunTrigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "scheduled_for"),
        Index("ix_job_runs_job_status", "job", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    # The trigger's fire time (the same on every host); for a manual run, when it was asked for.
    scheduled_for: Mapped[datetime]
    trigger: Mapped[RunTrigger] = mapped_column(enum_type(RunTrigger, "job_run_trigger"))
    status: Mapped[RunStatus] = mapped_column(enum_type(RunStatus, "job_run_status"))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    # The admin who asked for a manual run; None for scheduled runs.
    requested_by: Mapped[str | None] = mapped_column(String(150))
