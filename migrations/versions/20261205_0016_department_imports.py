"""Department sources (name, department, column mapping, HTTP endpoint and schedule) and the
history of their imports with counts and report.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from server.db import UtcDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "department_sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column(
            "list_kind",
            sa.Enum(
                "full",
                "partial",
                name="department_list_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("mapping", _JSON, nullable=False),
        sa.Column("url", sa.String(length=512), nullable=True),
        sa.Column("token_env", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=64), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("last_fetch_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name=op.f("uq_department_sources_name")),
    )
    op.create_table(
        "department_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "applied",
                "failed",
                name="department_import_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "origin",
            sa.Enum(
                "upload",
                "command_line",
                "http",
                name="department_import_origin",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_hash", sa.String(length=71), nullable=True),
        sa.Column("mapping_hash", sa.String(length=71), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.Column("ambiguous", sa.Integer(), nullable=False),
        sa.Column("mismatched", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("conflicting", sa.Integer(), nullable=False),
        sa.Column("facts_written", sa.Integer(), nullable=False),
        sa.Column("facts_withdrawn", sa.Integer(), nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.Column("error", _JSON, nullable=True),
        sa.Column("imported_by", sa.Integer(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["department_sources.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_department_imports_source",
        "department_imports",
        ["source_id", "started_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_department_imports_source", table_name="department_imports")
    op.drop_table("department_imports")
    op.drop_table("department_sources")
