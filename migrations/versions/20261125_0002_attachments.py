"""Attachments: the uploaded files (content type, size, uploader) and the submissions that
reference them, with each reference's village for download scope.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["users.id"], name=op.f("fk_attachments_uploaded_by_id_users")
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_attachments")),
    )
    op.create_table(
        "attachment_refs",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=True),
        sa.Column("created_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["submissions.instance_id"],
            name=op.f("fk_attachment_refs_instance_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("digest", "instance_id", name=op.f("pk_attachment_refs")),
    )


def downgrade() -> None:
    op.drop_table("attachment_refs")
    op.drop_table("attachments")
