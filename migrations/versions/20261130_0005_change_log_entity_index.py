"""The change log loses its index by entity: nothing reads the log by entity (pull reads it by
`(txid, seq)`), and with random UUID keys the index made every push write thousands of scattered
index pages — on SQLite more than the change rows themselves.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_changes_entity", table_name="changes")


def downgrade() -> None:
    op.create_index(
        "ix_changes_entity", "changes", ["entity_type", "entity_id", "seq"], unique=False
    )
