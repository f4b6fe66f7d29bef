"""Monitoring cases: referrals from the three channels, cases and their append-only steps.

One open case per household (a partial unique index); `(case_id, seq)` unique so that two
reviewers taking the same step at once cannot both succeed; a submission opens at most one
referral. Settings of the workflow per region (`monitoring_settings`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 10:05:30.772147
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitoring_cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column(
            "direction",
            sa.Enum(
                "entry",
                "exit",
                name="case_direction",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "stage",
            sa.Enum(
                "verification",
                "village_review",
                "township_review",
                "county_review",
                "closed",
                name="case_stage",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "open",
                "approved",
                "rejected",
                name="case_outcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "prior_status",
            sa.Enum(
                "not_monitored",
                "entry_review",
                "monitored",
                "exit_review",
                "risk_eliminated",
                name="case_prior_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "monitoring_type",
            sa.Enum(
                "unstable_lifted",
                "marginal",
                "sudden_difficulty",
                name="case_monitoring_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("risk_causes", server.db.JsonDocument, nullable=False),
        sa.Column("evidence", server.db.JsonDocument, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("opened_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_monitoring_cases_household_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_id"], ["users.id"], name=op.f("fk_monitoring_cases_opened_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_cases")),
    )
    with op.batch_alter_table("monitoring_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitoring_cases_household", ["household_id", "opened_at"], unique=False
        )
        batch_op.create_index(
            "ix_monitoring_cases_stage_village", ["stage", "village_code"], unique=False
        )
        batch_op.create_index(
            "uq_monitoring_cases_open_household",
            ["household_id"],
            unique=True,
            postgresql_where=sa.text("outcome = 'open'"),
            sqlite_where=sa.text("outcome = 'open'"),
        )

    op.create_table(
        "case_steps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "verification",
                "village_review",
                "township_review",
                "county_review",
                "closed",
                name="case_step_stage",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "decision",
            sa.Enum(
                "approve",
                "return",
                "reject",
                name="step_decision",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("taken_by_id", sa.Integer(), nullable=True),
        sa.Column("taken_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("details", server.db.JsonDocument, nullable=False),
        sa.Column("attachments", server.db.JsonDocument, nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["monitoring_cases.id"],
            name=op.f("fk_case_steps_case_id_monitoring_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.instance_id"],
            name=op.f("fk_case_steps_submission_id_submissions"),
        ),
        sa.ForeignKeyConstraint(
            ["taken_by_id"], ["users.id"], name=op.f("fk_case_steps_taken_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_steps")),
        sa.UniqueConstraint("case_id", "seq", name="uq_case_steps_case_seq"),
    )
    with op.batch_alter_table("case_steps", schema=None) as batch_op:
        batch_op.create_index("ix_case_steps_taken_at", ["taken_at"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column(
            "channel",
            sa.Enum(
                "self_application",
                "cadre_screening",
                "department_warning",
                name="referral_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("referred_by_id", sa.Integer(), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("causes", server.db.JsonDocument, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("evidence", server.db.JsonDocument, nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=True),
        sa.Column("warning_id", sa.Uuid(), nullable=True),
        sa.Column("referred_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["monitoring_cases.id"], name=op.f("fk_referrals_case_id_monitoring_cases")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_referrals_household_id_households")
        ),
        sa.ForeignKeyConstraint(
            ["referred_by_id"], ["users.id"], name=op.f("fk_referrals_referred_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.instance_id"],
            name=op.f("fk_referrals_submission_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("submission_id", name="uq_referrals_submission_id"),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referrals_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_referrals_household", ["household_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_referrals_village_channel", ["village_code", "channel"], unique=False
        )

    op.create_table(
        "monitoring_settings",
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", server.db.JsonDocument, nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_monitoring_settings_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("region_code", "name", name=op.f("pk_monitoring_settings")),
    )


def downgrade() -> None:
    op.drop_table("monitoring_settings")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index("ix_referrals_village_channel")
        batch_op.drop_index("ix_referrals_household")
        batch_op.drop_index(batch_op.f("ix_referrals_case_id"))

    op.drop_table("referrals")
    with op.batch_alter_table("case_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_case_steps_taken_at")

    op.drop_table("case_steps")
    with op.batch_alter_table("monitoring_cases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_monitoring_cases_open_household",
            postgresql_where=sa.text("outcome = 'open'"),
            sqlite_where=sa.text("outcome = 'open'"),
        )
        batch_op.drop_index("ix_monitoring_cases_stage_village")
        batch_op.drop_index("ix_monitoring_cases_household")

    op.drop_table("monitoring_cases")
