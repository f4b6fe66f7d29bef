"""Scheduled jobs: job runs (one row per job and scheduled time, the key that lets one scheduler
process execute each run), daily monitoring summary snapshots per region and daily overdue
follow-up counts per village.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from server.db import UtcDateTime

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", UtcDateTime(), nullable=False),
        sa.Column(
            "trigger",
            sa.Enum(
                "scheduled",
                "manual",
                name="job_run_trigger",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "succeeded",
                "failed",
                "skipped",
                name="job_run_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=150), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "scheduled_for", name=op.f("uq_job_runs_job_scheduled_for")),
    )
    op.create_index("ix_job_runs_job_status", "job_runs", ["job", "status"], unique=False)
    op.create_table(
        "summary_snapshots",
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("document", _JSON, nullable=False),
        sa.Column("taken_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_code"],
            ["regions.code"],
            name=op.f("fk_summary_snapshots_region_code_regions"),
        ),
        sa.PrimaryKeyConstraint("region_code", "day", name=op.f("pk_summary_snapshots")),
    )
    op.create_table(
        "overdue_followup_counts",
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("monitoring_type", sa.String(length=32), nullable=False),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("computed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "village_code", "day", "monitoring_type", name=op.f("pk_overdue_followup_counts")
        ),
    )
    op.create_index(
        "ix_overdue_followup_counts_day", "overdue_followup_counts", ["day"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_overdue_followup_counts_day", table_name="overdue_followup_counts")
    op.drop_table("overdue_followup_counts")
    op.drop_table("summary_snapshots")
    op.drop_index("ix_job_runs_job_status", table_name="job_runs")
    op.drop_table("job_runs")
