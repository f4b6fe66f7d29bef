"""The review of a quarantined (rejected) submission becomes columns of `submissions`
(`review_status`, `reviewed_by_id`, `reviewed_at`, `review_reason`, `corrected_by_instance_id`)
instead of being read back from the audit log, with an index for the waiting quarantine.

Existing `dismiss_submission` / `resubmit_submission` audit entries are copied in (the first one
of each submission wins); the audit entries themselves stay, and going back only drops the
columns (the audit log still holds every review).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 18:00:00.000000
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from server.db import JsonDocument, UtcDateTime

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASON_LENGTH = 2000
STATUS_CHECK = "submission_review_status"


def _backfill() -> None:
    connection = op.get_bind()
    audit = sa.table(
        "audit_log",
        sa.column("id", sa.Integer()),
        sa.column("at", UtcDateTime()),
        sa.column("user_id", sa.Integer()),
        sa.column("action", sa.String()),
        sa.column("object_type", sa.String()),
        sa.column("object_id", sa.String()),
        sa.column("details", JsonDocument),
    )
    submissions = sa.table(
        "submissions",
        sa.column("instance_id", sa.Uuid()),
        sa.column("status", sa.String()),
        sa.column("review_status", sa.String()),
        sa.column("reviewed_by_id", sa.Integer()),
        sa.column("reviewed_at", UtcDateTime()),
        sa.column("review_reason", sa.String()),
        sa.column("corrected_by_instance_id", sa.Uuid()),
    )
    entries = connection.execute(
        sa.select(audit.c.at, audit.c.user_id, audit.c.action, audit.c.object_id, audit.c.details)
        .where(
            audit.c.action.in_(("dismiss_submission", "resubmit_submission")),
            audit.c.object_type == "submission",
        )
        .order_by(audit.c.id)
    ).all()
    existing = {
        str(i)
        for i in connection.execute(sa.select(submissions.c.instance_id)).scalars()
        if i is not None
    }
    reviews: dict[str, dict[str, Any]] = {}
    for at, user_id, action, object_id, details in entries:
        if object_id in reviews or object_id not in existing:
            continue
        details = details if isinstance(details, dict) else {}
        corrected_as = details.get("corrected_as")
        reason = details.get("reason")
        reviews[object_id] = {
            "target": object_id,
            "new_status": "dismissed" if action == "dismiss_submission" else "corrected",
            "by": user_id,
            "at": at,
            "reason": reason[:REASON_LENGTH] if isinstance(reason, str) else None,
            # Only a replacement that is stored (the foreign key).
            "replacement": corrected_as if corrected_as in existing else None,
        }
    if not reviews:
        return
    values = [
        {
            **review,
            "target": uuid.UUID(review["target"]),
            "replacement": uuid.UUID(review["replacement"]) if review["replacement"] else None,
        }
        for review in reviews.values()
    ]
    connection.execute(
        submissions.update()
        .where(
            submissions.c.instance_id == sa.bindparam("target", type_=sa.Uuid()),
            submissions.c.status == "rejected",
            submissions.c.review_status.is_(None),
        )
        .values(
            review_status=sa.bindparam("new_status"),
            reviewed_by_id=sa.bindparam("by"),
            reviewed_at=sa.bindparam("at", type_=UtcDateTime()),
            review_reason=sa.bindparam("reason"),
            corrected_by_instance_id=sa.bindparam("replacement", type_=sa.Uuid()),
        ),
        values,
    )


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("review_status", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewed_at", UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("review_reason", sa.String(length=REASON_LENGTH), nullable=True))
        batch.add_column(sa.Column("corrected_by_instance_id", sa.Uuid(), nullable=True))
        batch.create_check_constraint(
            op.f(f"ck_submissions_{STATUS_CHECK}"),
            "review_status IN ('dismissed', 'corrected')",
        )
        batch.create_foreign_key(
            op.f("fk_submissions_reviewed_by_id_users"), "users", ["reviewed_by_id"], ["id"]
        )
        batch.create_foreign_key(
            op.f("fk_submissions_corrected_by_instance_id_submissions"),
            "submissions",
            ["corrected_by_instance_id"],
            ["instance_id"],
        )
        batch.create_index(
            "ix_submissions_review_queue",
            ["status", "review_status", "received_at"],
            unique=False,
        )
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_index("ix_submissions_review_queue")
        batch.drop_constraint(
            op.f("fk_submissions_corrected_by_instance_id_submissions"), type_="foreignkey"
        )
        batch.drop_constraint(op.f("fk_submissions_reviewed_by_id_users"), type_="foreignkey")
        batch.drop_constraint(op.f(f"ck_submissions_{STATUS_CHECK}"), type_="check")
        batch.drop_column("corrected_by_instance_id")
        batch.drop_column("review_reason")
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by_id")
        batch.drop_column("review_status")
