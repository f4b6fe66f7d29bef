"""A household's live-member count on its row (`households.member_count`), backfilled, and the
summary's index `ix_households_monitoring` covering it: the monitoring summary sums the persons
under monitoring from that index instead of seeking every monitored household's members.

Every writer of members keeps the count (the sync write path as a relative `+n` in the unit of
work that adds, deletes or moves members; the loaders when they insert a household). Going back
drops the column and restores the index of migration 0013.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMMARY_INDEX = "ix_households_monitoring"
LEADING = ["monitoring_status", "village_code", "monitoring_type", "deleted"]


def upgrade() -> None:
    with op.batch_alter_table("households") as batch:
        batch.add_column(
            sa.Column("member_count", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE households SET member_count = (SELECT count(*) FROM members "
        "WHERE members.household_id = households.id AND members.deleted = false) "
        "WHERE EXISTS (SELECT 1 FROM members WHERE members.household_id = households.id)"
    )
    op.drop_index(SUMMARY_INDEX, table_name="households")
    op.create_index(SUMMARY_INDEX, "households", [*LEADING, "member_count"], unique=False)


def downgrade() -> None:
    op.drop_index(SUMMARY_INDEX, table_name="households")
    op.create_index(SUMMARY_INDEX, "households", [*LEADING, "id"], unique=False)
    with op.batch_alter_table("households") as batch:
        batch.drop_column("member_count")
