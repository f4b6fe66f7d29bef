"""The register schema: regions, users and grants, devices, tokens, login attempts, households,
members, forms and versions, submissions, the change log and scope snapshots, conflicts and the
audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 04:55:06.774901
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import server.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("clock", sa.String(length=96), nullable=False),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_changes")),
    )
    op.create_index(
        "ix_changes_entity", "changes", ["entity_type", "entity_id", "seq"], unique=False
    )
    op.create_index("ix_changes_txid_seq", "changes", ["txid", "seq"], unique=False)
    op.create_index("ix_changes_village_seq", "changes", ["village_code", "seq"], unique=False)

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(
        "ix_login_attempts_address_at", "login_attempts", ["address", "attempted_at"], unique=False
    )
    op.create_index(
        op.f("ix_login_attempts_attempted_at"), "login_attempts", ["attempted_at"], unique=False
    )
    op.create_index(
        "ix_login_attempts_username_at",
        "login_attempts",
        ["username", "attempted_at"],
        unique=False,
    )

    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "level",
            sa.Enum(
                "province",
                "city",
                "county",
                "township",
                "village",
                name="region_level",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["regions.code"], name=op.f("fk_regions_parent_code_regions")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_regions")),
    )
    op.create_index(op.f("ix_regions_parent_code"), "regions", ["parent_code"], unique=False)

    op.create_table(
        "scope_snapshots",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "region_codes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_scope_snapshots")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "supervisor",
                "collector",
                name="user_role",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(op.f("ix_audit_log_user_id"), "audit_log", ["user_id"], unique=False)

    op.create_table(
        "conflicts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column(
            "winner_value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("winner_clock", sa.String(length=96), nullable=False),
        sa.Column("winner_submission_id", sa.Uuid(), nullable=True),
        sa.Column(
            "loser_value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("loser_clock", sa.String(length=96), nullable=False),
        sa.Column("loser_submission_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "resolved",
                name="conflict_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "resolution_value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("resolution_clock", sa.String(length=96), nullable=True),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"], ["users.id"], name=op.f("fk_conflicts_resolved_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_index(
        "ix_conflicts_entity", "conflicts", ["entity_type", "entity_id", "field"], unique=False
    )
    op.create_index(
        "ix_conflicts_status_village", "conflicts", ["status", "village_code"], unique=False
    )

    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("registered_by_id", sa.Integer(), nullable=False),
        sa.Column("registered_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("highest_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["registered_by_id"], ["users.id"], name=op.f("fk_devices_registered_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(
        op.f("ix_devices_registered_by_id"), "devices", ["registered_by_id"], unique=False
    )

    op.create_table(
        "forms",
        sa.Column("form_id", sa.String(length=64), nullable=False),
        sa.Column(
            "title",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "draft",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("draft_updated_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("draft_updated_by_id", sa.Integer(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["draft_updated_by_id"], ["users.id"], name=op.f("fk_forms_draft_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("form_id", name=op.f("pk_forms")),
    )
    op.create_table(
        "households",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_no", sa.String(length=32), nullable=True),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("head_member_id", sa.Uuid(), nullable=True),
        sa.Column(
            "category",
            sa.Enum(
                "lifted",
                "monitored",
                "ordinary",
                name="household_category",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "monitoring_type",
            sa.Enum(
                "unstable_lifted",
                "marginal",
                "sudden_difficulty",
                name="monitoring_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "monitoring_status",
            sa.Enum(
                "not_monitored",
                "entry_review",
                "monitored",
                "exit_review",
                "risk_eliminated",
                name="monitoring_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "risk_causes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("annual_income", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("per_capita_income", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("rigid_expenditure", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("food_clothing_ok", sa.Boolean(), nullable=True),
        sa.Column("education_ok", sa.Boolean(), nullable=True),
        sa.Column("medical_ok", sa.Boolean(), nullable=True),
        sa.Column("housing_ok", sa.Boolean(), nullable=True),
        sa.Column("water_ok", sa.Boolean(), nullable=True),
        sa.Column("relocated", sa.Boolean(), nullable=True),
        sa.Column("receives_minimum_allowance", sa.Boolean(), nullable=True),
        sa.Column("receives_extreme_poverty_support", sa.Boolean(), nullable=True),
        sa.Column("helper", sa.String(length=64), nullable=True),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column(
            "review_flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column(
            "clocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "field_revs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "origins",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sources",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column(
            "extra",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["households.id"],
            name=op.f("fk_households_merged_into_id_households"),
        ),
        sa.ForeignKeyConstraint(
            ["village_code"], ["regions.code"], name=op.f("fk_households_village_code_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
    )
    op.create_index(
        op.f("ix_households_household_no"), "households", ["household_no"], unique=False
    )
    op.create_index(
        op.f("ix_households_village_code"), "households", ["village_code"], unique=False
    )

    op.create_table(
        "region_grants",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("granted_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_region_grants_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_region_grants_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "region_code", name=op.f("pk_region_grants")),
    )
    op.create_index(
        op.f("ix_region_grants_region_code"), "region_grants", ["region_code"], unique=False
    )

    op.create_table(
        "device_sequence_gaps",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("noticed_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_sequence_gaps_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_device_sequence_gaps")),
    )
    op.create_table(
        "form_versions",
        sa.Column("form_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("published_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.Column("retired_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.form_id"], name=op.f("fk_form_versions_form_id_forms")
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"], ["users.id"], name=op.f("fk_form_versions_published_by_id_users")
        ),
        sa.PrimaryKeyConstraint("form_id", "version", name=op.f("pk_form_versions")),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("id_number_hash", sa.String(length=64), nullable=True),
        sa.Column("id_number_masked", sa.String(length=32), nullable=True),
        sa.Column("id_number_cipher", sa.Text(), nullable=True),
        sa.Column(
            "relation",
            sa.Enum(
                "head",
                "spouse",
                "child",
                "child_in_law",
                "grandchild",
                "parent",
                "grandparent",
                "sibling",
                "other",
                name="member_relation",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "sex",
            sa.Enum(
                "male",
                "female",
                name="member_sex",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("in_school", sa.Boolean(), nullable=True),
        sa.Column(
            "education_level",
            sa.Enum(
                "preschool",
                "illiterate",
                "primary",
                "junior",
                "senior",
                "vocational",
                "college",
                name="education_level",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "health",
            sa.Enum(
                "healthy",
                "chronic",
                "serious",
                "disabled",
                name="member_health",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "disability",
            sa.Enum(
                "none",
                "grade_1",
                "grade_2",
                "grade_3",
                "grade_4",
                name="member_disability",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "labor_capacity",
            sa.Enum(
                "skilled",
                "ordinary",
                "weak",
                "lost",
                "none",
                name="labor_capacity",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("insured", sa.Boolean(), nullable=True),
        sa.Column(
            "employment",
            sa.Enum(
                "in_county",
                "in_province",
                "out_of_province",
                "public_welfare_job",
                "self_employed",
                "farming",
                "student",
                "unemployed",
                "not_applicable",
                name="employment",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("phone_hash", sa.String(length=64), nullable=True),
        sa.Column("phone_masked", sa.String(length=32), nullable=True),
        sa.Column("phone_cipher", sa.Text(), nullable=True),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column(
            "clocks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "field_revs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "origins",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sources",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column(
            "extra",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name=op.f("fk_members_household_id_households")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    op.create_index("ix_members_household_id", "members", ["household_id"], unique=False)
    op.create_index(op.f("ix_members_id_number_hash"), "members", ["id_number_hash"], unique=False)
    op.create_index(op.f("ix_members_phone_hash"), "members", ["phone_hash"], unique=False)

    op.create_table(
        "submissions",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.String(length=64), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("collected_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("hlc", sa.String(length=96), nullable=False),
        sa.Column("device_seq", sa.Integer(), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "accepted",
                "rejected",
                name="submission_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("quarantine_reason", sa.String(length=255), nullable=True),
        sa.Column("village_code", sa.String(length=12), nullable=True),
        sa.Column("received_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_submissions_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_submissions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_submissions")),
    )
    op.create_index(op.f("ix_submissions_batch_id"), "submissions", ["batch_id"], unique=False)
    op.create_index(
        "ix_submissions_device_seq", "submissions", ["device_id", "device_seq"], unique=False
    )
    op.create_index(
        "ix_submissions_status_village", "submissions", ["status", "village_code"], unique=False
    )
    op.create_index(op.f("ix_submissions_user_id"), "submissions", ["user_id"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_tokens_device_id_devices")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    op.create_index(op.f("ix_tokens_device_id"), "tokens", ["device_id"], unique=False)
    op.create_index(op.f("ix_tokens_user_id"), "tokens", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tokens_user_id"), table_name="tokens")
    op.drop_index(op.f("ix_tokens_device_id"), table_name="tokens")

    op.drop_table("tokens")
    op.drop_index(op.f("ix_submissions_user_id"), table_name="submissions")
    op.drop_index("ix_submissions_status_village", table_name="submissions")
    op.drop_index("ix_submissions_device_seq", table_name="submissions")
    op.drop_index(op.f("ix_submissions_batch_id"), table_name="submissions")

    op.drop_table("submissions")
    op.drop_index(op.f("ix_members_phone_hash"), table_name="members")
    op.drop_index(op.f("ix_members_id_number_hash"), table_name="members")
    op.drop_index("ix_members_household_id", table_name="members")

    op.drop_table("members")
    op.drop_table("form_versions")
    op.drop_table("device_sequence_gaps")
    op.drop_index(op.f("ix_region_grants_region_code"), table_name="region_grants")

    op.drop_table("region_grants")
    op.drop_index(op.f("ix_households_village_code"), table_name="households")
    op.drop_index(op.f("ix_households_household_no"), table_name="households")

    op.drop_table("households")
    op.drop_table("forms")
    op.drop_index(op.f("ix_devices_registered_by_id"), table_name="devices")

    op.drop_table("devices")
    op.drop_index("ix_conflicts_status_village", table_name="conflicts")
    op.drop_index("ix_conflicts_entity", table_name="conflicts")

    op.drop_table("conflicts")
    op.drop_index(op.f("ix_audit_log_user_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")

    op.drop_table("audit_log")
    op.drop_table("users")
    op.drop_table("scope_snapshots")
    op.drop_index(op.f("ix_regions_parent_code"), table_name="regions")

    op.drop_table("regions")
    op.drop_index("ix_login_attempts_username_at", table_name="login_attempts")
    op.drop_index(op.f("ix_login_attempts_attempted_at"), table_name="login_attempts")
    op.drop_index("ix_login_attempts_address_at", table_name="login_attempts")

    op.drop_table("login_attempts")
    op.drop_index("ix_changes_village_seq", table_name="changes")
    op.drop_index("ix_changes_txid_seq", table_name="changes")
    op.drop_index("ix_changes_entity", table_name="changes")

    op.drop_table("changes")
