"""Department facts: the current value each department list gives for a matched person or
household (written by department imports, read by the early-warning rules).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from server.db import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "department_facts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("fact", sa.String(length=48), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("subject_key", sa.String(length=36), nullable=False),
        sa.Column(
            "value", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "department", "fact", "household_id", "subject_key", name="uq_department_facts_subject"
        ),
    )
    op.create_index(
        "ix_department_facts_household",
        "department_facts",
        ["household_id", "department", "fact"],
        unique=False,
    )
    op.create_index("ix_department_facts_import", "department_facts", ["import_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_department_facts_import", table_name="department_facts")
    op.drop_index("ix_department_facts_household", table_name="department_facts")
    op.drop_table("department_facts")
