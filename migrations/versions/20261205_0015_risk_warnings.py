"""Early warning: the warnings the risk rules raise, their history, and the rules' configuration
by year and province.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from server.db import UtcDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
STATUSES = ("open", "referred", "handled", "dismissed")


def upgrade() -> None:
    op.create_table(
        "risk_warnings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("subject_key", sa.String(length=36), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("rule", sa.String(length=48), nullable=False),
        sa.Column("lifecycle", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("holds", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *STATUSES,
                name="risk_warning_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_by_id", sa.Integer(), nullable=True),
        sa.Column("status_at", UtcDateTime(), nullable=True),
        sa.Column("referral_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"]),
        sa.ForeignKeyConstraint(["status_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "household_id", "rule", "subject_key", "lifecycle", name="uq_risk_warnings_lifecycle"
        ),
    )
    op.create_index(
        "uq_risk_warnings_current",
        "risk_warnings",
        ["household_id", "rule", "subject_key"],
        unique=True,
        postgresql_where=sa.text("is_current"),
        sqlite_where=sa.text("is_current"),
    )
    op.create_index(
        "ix_risk_warnings_village",
        "risk_warnings",
        ["village_code", "status", "rule"],
        unique=False,
    )
    op.create_table(
        "risk_warning_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("warning_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", JSON, nullable=False),
        sa.ForeignKeyConstraint(["by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["warning_id"], ["risk_warnings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_risk_warning_events_warning", "risk_warning_events", ["warning_id", "at"], unique=False
    )
    op.create_table(
        "warning_settings",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("province_code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("value", sa.Numeric(14, 4), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["updated_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("year", "province_code", "name"),
    )


def downgrade() -> None:
    op.drop_table("warning_settings")
    op.drop_index("ix_risk_warning_events_warning", table_name="risk_warning_events")
    op.drop_table("risk_warning_events")
    op.drop_index("ix_risk_warnings_village", table_name="risk_warnings")
    op.drop_index("uq_risk_warnings_current", table_name="risk_warnings")
    op.drop_table("risk_warnings")
