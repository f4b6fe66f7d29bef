"""Tablet enrolments: one-time codes (kept as SHA-256, and sealed for showing the QR code again)
that enrol a tablet for one user, redeemable once until they expire or are revoked.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.db import UtcDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_enrolments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code_cipher", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("redeemed_at", UtcDateTime(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_device_enrolments_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_device_enrolments_created_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_enrolments_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_enrolments")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_device_enrolments_code_hash")),
    )
    op.create_index("ix_device_enrolments_user_id", "device_enrolments", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_device_enrolments_user_id", table_name="device_enrolments")
    op.drop_table("device_enrolments")
