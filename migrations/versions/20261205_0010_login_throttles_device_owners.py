"""Login throttles replace the login attempts log, and every device gets an owner.

`login_throttles` keeps one row per account, account-on-its-own-tablet and client address,
changed under a row lock; the per-attempt rows of `login_attempts` (which counted successes
against an address and raced under concurrency) are dropped: running limits start afresh.
`devices.owner_id` is the one account that may log in with a device; existing devices belong to
whoever registered them, so tokens other accounts hold for such a device stop working until an
administrator assigns the device to them.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-05 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=150), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("failures", sa.Float(), nullable=False),
        sa.Column("counted_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", server.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "subject", "device_id", name=op.f("pk_login_throttles")),
    )
    op.create_index(
        op.f("ix_login_throttles_counted_at"), "login_throttles", ["counted_at"], unique=False
    )
    op.drop_index("ix_login_attempts_username_at", table_name="login_attempts")
    op.drop_index(op.f("ix_login_attempts_attempted_at"), table_name="login_attempts")
    op.drop_index("ix_login_attempts_address_at", table_name="login_attempts")
    op.drop_table("login_attempts")

    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
    op.execute("UPDATE devices SET owner_id = registered_by_id")
    with op.batch_alter_table("devices") as batch:
        batch.alter_column("owner_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(op.f("fk_devices_owner_id_users"), "users", ["owner_id"], ["id"])
        batch.create_index(op.f("ix_devices_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_index(op.f("ix_devices_owner_id"))
        batch.drop_constraint(op.f("fk_devices_owner_id_users"), type_="foreignkey")
        batch.drop_column("owner_id")

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
    op.drop_index(op.f("ix_login_throttles_counted_at"), table_name="login_throttles")
    op.drop_table("login_throttles")
