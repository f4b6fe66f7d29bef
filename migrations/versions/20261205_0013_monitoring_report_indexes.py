"""Indexes for the monitoring reports: the summary counts monitored households and their live
members from indexes alone (and referrals, open cases and county approvals likewise), and a
household's timeline reads its village's change log by
`(village_code, seq, entity_id)` (the change log has no index by entity, see migration 0005:
this one grows at the end of each village's range, not at random places).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 10:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_households_monitoring",
        "households",
        ["monitoring_status", "village_code", "monitoring_type", "deleted", "id"],
        unique=False,
    )
    op.create_index(
        "ix_members_household_live", "members", ["household_id", "deleted"], unique=False
    )
    op.create_index(
        "ix_changes_village_seq", "changes", ["village_code", "seq", "entity_id"], unique=False
    )
    op.create_index(
        "ix_monitoring_cases_report",
        "monitoring_cases",
        ["outcome", "village_code", "direction", "stage"],
        unique=False,
    )
    op.create_index(
        "ix_referrals_report", "referrals", ["created_at", "village_code", "channel"], unique=False
    )
    op.create_index(
        "ix_case_steps_report",
        "case_steps",
        ["stage", "decision", "taken_at", "case_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_case_steps_report", table_name="case_steps")
    op.drop_index("ix_referrals_report", table_name="referrals")
    op.drop_index("ix_monitoring_cases_report", table_name="monitoring_cases")
    op.drop_index("ix_changes_village_seq", table_name="changes")
    op.drop_index("ix_members_household_live", table_name="members")
    op.drop_index("ix_households_monitoring", table_name="households")
