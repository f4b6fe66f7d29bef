"""Reading submissions back: the quarantine of rejected ones, which supervisors review.

A rejected submission often has no village (it failed before binding), so a supervisor sees the
ones in their villages and the ones sent by users whose grants lie within their regions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import RegionGrant, User


def quarantine(session: Session, actor: Actor, *, limit: int, offset: int) -> list[dict[str, Any]]:
    sent_by_own_collector = exists().where(
        RegionGrant.user_id == Submission.user_id, actor.region_filter(RegionGrant.region_code)
    )
    rows = session.execute(
        select(Submission, User.username)
        .join(User, User.id == Submission.user_id)
        .where(
            Submission.status == SubmissionStatus.REJECTED,
            or_(actor.region_filter(Submission.village_code), sent_by_own_collector),
        )
        .order_by(Submission.received_at.desc(), Submission.instance_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        {
            "instance_id": str(sub.instance_id),
            "form_id": sub.form_id,
            "form_version": sub.form_version,
            "device_id": str(sub.device_id),
            "user": username,
            "village_code": sub.village_code,
            "collected_at": sub.collected_at.isoformat() if sub.collected_at else None,
            "received_at": sub.received_at.isoformat(),
            "reason": sub.quarantine_reason,
            "errors": sub.errors,
            "payload": sub.payload,
        }
        for sub, username in rows
    ]
