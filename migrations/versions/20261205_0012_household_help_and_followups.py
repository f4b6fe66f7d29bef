"""Help for monitored households and their follow-up visits: helpers (a user or a named person
with a protected phone), assistance measures, the append-only help events the timeline reads, and
each household's last accepted visit; a partial index of the monitored households by village.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 10:17:40.331664
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assistance_measures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column(
            "measure_type",
            sa.Enum(
                "industry",
                "employment",
                "public_welfare_job",
                "safety_net",
                "temporary_relief",
                "education_aid",
                "medical_aid",
                "housing_renovation",
                "small_loan",
                name="measure_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "in_progress",
                "completed",
                "stopped",
                name="measure_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_assistance_measures_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_assistance_measures_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_assistance_measures_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistance_measures")),
    )
    with op.batch_alter_table("assistance_measures", schema=None) as batch_op:
        batch_op.create_index("ix_assistance_measures_household", ["household_id"], unique=False)

    op.create_table(
        "help_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("details", server.db.JsonDocument, nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_help_events_household_id_households")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_help_events_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_events")),
    )
    with op.batch_alter_table("help_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_help_events_household", ["household_id", "occurred_at"], unique=False
        )

    op.create_table(
        "household_followups",
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("last_visit_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_submission_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_household_followups_household_id_households"),
        ),
        sa.PrimaryKeyConstraint("household_id", name=op.f("pk_household_followups")),
    )
    op.create_table(
        "household_helpers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=True),
        sa.Column("phone_masked", sa.String(length=32), nullable=True),
        sa.Column("phone_cipher", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("assigned_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_household_helpers_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_household_helpers_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_household_helpers_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_helpers")),
    )
    with op.batch_alter_table("household_helpers", schema=None) as batch_op:
        batch_op.create_index("ix_household_helpers_household", ["household_id"], unique=False)

    # Monitored households by village, for the follow-up lists (server/monitoring/help_models.py).
    op.create_index(
        "ix_households_monitored_village",
        "households",
        ["village_code", "monitoring_type", "id", "household_no", "merged_into_id", "deleted"],
        unique=False,
        postgresql_where=sa.text("monitoring_status = 'monitored'"),
        sqlite_where=sa.text("monitoring_status = 'monitored'"),
    )


def downgrade() -> None:
    op.drop_index("ix_households_monitored_village", table_name="households")
    with op.batch_alter_table("household_helpers", schema=None) as batch_op:
        batch_op.drop_index("ix_household_helpers_household")

    op.drop_table("household_helpers")
    op.drop_table("household_followups")
    with op.batch_alter_table("help_events", schema=None) as batch_op:
        batch_op.drop_index("ix_help_events_household")

    op.drop_table("help_events")
    with op.batch_alter_table("assistance_measures", schema=None) as batch_op:
        batch_op.drop_index("ix_assistance_measures_household")

    op.drop_table("assistance_measures")
