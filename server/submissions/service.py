"""Reading submissions back: the quarantine of rejected ones, which supervisors review.

A rejected submission often has no village (it failed before binding), so a supervisor sees the
ones in their villages and the ones sent by users whose grants lie within their regions.
Identity numbers and phones in what was sent are shown masked; roles in `REVEAL_ROLES` may ask
for them in clear, and every submission so revealed is written to the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.errors import Forbidden
from server.sensitive import SensitiveCodec
from server.submissions.models import Submission, SubmissionStatus
from server.submissions.payload import masked_text, masked_value, shown_payload
from server.users.models import RegionGrant, User


def quarantine(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    *,
    limit: int,
    offset: int,
    reveal: bool = False,
) -> list[dict[str, Any]]:
    """One page of the rejected submissions the caller may review, newest first. Sensitive values
    are masked unless `reveal` (403 for roles not in `REVEAL_ROLES`; each reveal audited)."""
    if reveal and actor.role.value not in settings.reveal_roles:
        raise Forbidden("your role may not reveal identity numbers or phones")
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
    page = []
    for sub, username in rows:
        shown = shown_payload(codec, sub.payload, sub.instance_id, reveal=reveal)
        if shown.revealed:
            audit.record(
                session,
                "reveal_sensitive",
                user_id=actor.user_id,
                object_type="submission",
                object_id=str(sub.instance_id),
                region_code=sub.village_code,
                address=actor.address,
                details={"fields": sorted(set(shown.revealed)), "values": len(shown.revealed)},
            )
        page.append(
            {
                "instance_id": str(sub.instance_id),
                "form_id": masked_text(sub.form_id),
                "form_version": sub.form_version,
                "device_id": str(sub.device_id),
                "user": username,
                "village_code": sub.village_code,
                "collected_at": sub.collected_at.isoformat() if sub.collected_at else None,
                "received_at": sub.received_at.isoformat(),
                # Messages and paths may quote what was sent: masked, always (the payload holds
                # the values themselves).
                "reason": masked_text(sub.quarantine_reason) if sub.quarantine_reason else None,
                "errors": masked_value(sub.errors),
                "payload": shown.payload,
            }
        )
    return page
