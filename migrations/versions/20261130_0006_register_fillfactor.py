"""PostgreSQL keeps a fifth of every household and member page free: each visit rewrites a
household and its members, and a new row version that fits on its page is a HOT update (no new
index entries in the four indexes of `members`). Pages already full get the room when they are
next rewritten (`VACUUM FULL` or `CLUSTER` makes it at once). Nothing changes on SQLite.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("households", "members")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
