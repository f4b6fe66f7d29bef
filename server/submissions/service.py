"""Reading submissions back: the quarantine of rejected ones, which supervisors review, and
dismissing one from it with a reason.

A rejected submission often has no village (it failed before binding), so a supervisor sees the
ones in their villages and the ones sent by users whose grants lie within their regions.
Identity numbers and phones in what was sent are shown masked; roles in `REVEAL_ROLES` may ask
for them in clear, and every submission so revealed is written to the audit log.

A submission is never changed or deleted (it is the record of what was sent): a dismissal is an
audit entry (`dismiss_submission`, with who, when and why), and the quarantine leaves out the
submissions that have one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.audit.models import AuditEntry
from server.auth.actor import Actor
from server.config import Settings
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.sensitive import SensitiveCodec
from server.submissions.models import Submission, SubmissionStatus
from server.submissions.payload import masked_text, masked_value, shown_payload
from server.users.models import RegionGrant, Role, User

DISMISS = "dismiss_submission"
MAX_REASON = 2000


def _reviewable(actor: Actor) -> ColumnElement[bool]:
    """Rejected submissions the caller reviews: in their villages, or sent by users whose grants
    lie within their regions (a submission that failed before binding has no village)."""
    sent_by_own_collector = exists().where(
        RegionGrant.user_id == Submission.user_id, actor.region_filter(RegionGrant.region_code)
    )
    return or_(actor.region_filter(Submission.village_code), sent_by_own_collector)


def _dismissed(session: Session, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of `ids` were dismissed from the quarantine."""
    wanted = {str(i) for i in ids}
    if not wanted:
        return set()
    rows = session.scalars(
        select(AuditEntry.object_id).where(
            AuditEntry.action == DISMISS,
            AuditEntry.object_type == "submission",
            AuditEntry.object_id.in_(wanted),
        )
    )
    return {uuid.UUID(text) for text in rows}


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
    # Dismissed ones are left out a page at a time (they are few next to the rejected ones):
    # read ahead until the page is full or the rejected ones run out.
    rows: list[Any] = []
    skipped = 0
    batch = max(limit, 50)
    scanned = 0
    while len(rows) < limit:
        found = session.execute(
            select(Submission, User.username)
            .join(User, User.id == Submission.user_id)
            .where(Submission.status == SubmissionStatus.REJECTED, _reviewable(actor))
            .order_by(Submission.received_at.desc(), Submission.instance_id)
            .limit(batch)
            .offset(scanned)
        ).all()
        scanned += len(found)
        dismissed = _dismissed(session, [sub.instance_id for sub, _ in found])
        for row in found:
            if row[0].instance_id in dismissed:
                continue
            if skipped < offset:
                skipped += 1
                continue
            rows.append(row)
            if len(rows) == limit:
                break
        if len(found) < batch:
            break
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


def dismiss_submission(
    session: Session, actor: Actor, instance_id: uuid.UUID, *, reason: str, now: datetime
) -> None:
    """Take a rejected submission out of the quarantine, saying why (audited; the submission
    itself stays as it was). 404 unknown or not rejected, 403 outside the caller's regions,
    409 already dismissed, 422 without a reason or with one over MAX_REASON characters."""
    actor.ensure_role(Role.SUPERVISOR, Role.ADMIN)
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise ValidationFailed(
            "a dismissal needs a reason",
            [
                {
                    "path": "reason",
                    "code": "required" if not reason else "too_long",
                    "message": f"say why, in at most {MAX_REASON} characters",
                }
            ],
        )
    # Locked, so two reviewers dismissing it at once cannot both record it.
    sub = session.scalars(
        select(Submission).where(Submission.instance_id == instance_id).with_for_update()
    ).one_or_none()
    if sub is None or sub.status is not SubmissionStatus.REJECTED:
        raise NotFound("no such quarantined submission", details={"id": str(instance_id)})
    reviewable = session.scalar(
        select(Submission.instance_id).where(
            Submission.instance_id == instance_id, _reviewable(actor)
        )
    )
    if reviewable is None:
        raise Forbidden("this submission is outside your regions")
    if _dismissed(session, [instance_id]):
        raise Conflict("this submission was already dismissed", details={"id": str(instance_id)})
    audit.record(
        session,
        DISMISS,
        user_id=actor.user_id,
        object_type="submission",
        object_id=str(instance_id),
        region_code=sub.village_code,
        address=actor.address,
        details={"reason": masked_text(reason), "at": now.isoformat()},
    )
    session.flush()
