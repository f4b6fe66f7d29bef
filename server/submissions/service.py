"""Reading submissions back: the quarantine of rejected ones, which supervisors review, and
dismissing one from it with a reason.

A rejected submission often has no village (it failed before binding), so a supervisor sees the
ones in their villages and the ones sent by users whose grants lie within their regions.
Identity numbers and phones in what was sent are shown masked; roles in `REVEAL_ROLES` may ask
for them in clear, and every submission so revealed is written to the audit log.

What was sent is never changed or deleted (it is the record): a reviewer's decision is kept in
the submission's review columns (`review_status`, set once by a conditional UPDATE, so two
reviewers at once get one success and one 409), and written to the audit log as who did what.
The quarantine lists the submissions still waiting (`review_status IS NULL`) by default.

Correcting one (`resubmit_corrected`) sends the corrected answers as a new submission of the same
tablet, user, form and clock through the push path itself (`plan_push`, `accept_push`): the same
validation, merge, scope checks and monitoring intake as any tablet's, nothing written unless it is
accepted. The original stays as it was sent, marked `corrected` with the new instance id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from marshmallow import ValidationError
from sqlalchemy import ColumnElement, CursorResult, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from server.attachments.service import record_references
from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.devices.models import Device
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.sensitive import SensitiveCodec
from server.submissions.models import (
    REVIEW_FILTERS,
    REVIEW_REASON_LENGTH,
    WAITING,
    ReviewStatus,
    Submission,
    SubmissionStatus,
)
from server.submissions.payload import masked_text, masked_value, sent_payload, shown_payload
from server.sync import push
from server.users.models import RegionGrant, Role, User
from sync_protocol.clock import HybridClock
from sync_protocol.messages import PushRequestSchema, validation_details

DISMISS = "dismiss_submission"
RESUBMIT = "resubmit_submission"
MAX_REASON = REVIEW_REASON_LENGTH


def _reviewable(actor: Actor) -> ColumnElement[bool]:
    """Rejected submissions the caller reviews: in their villages, or sent by users whose grants
    lie within their regions (a submission that failed before binding has no village)."""
    sent_by_own_collector = exists().where(
        RegionGrant.user_id == Submission.user_id, actor.region_filter(RegionGrant.region_code)
    )
    return or_(actor.region_filter(Submission.village_code), sent_by_own_collector)


def quarantine(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    *,
    limit: int,
    offset: int,
    reveal: bool = False,
    review: str = WAITING,
) -> list[dict[str, Any]]:
    """One page of the rejected submissions the caller may review, newest first: those waiting
    for review (`review="waiting"`), those dismissed or corrected, or `all`. Sensitive values
    are masked unless `reveal` (403 for roles not in `REVEAL_ROLES`; each reveal audited)."""
    if reveal and actor.role.value not in settings.reveal_roles:
        raise Forbidden("your role may not reveal identity numbers or phones")
    if review not in REVIEW_FILTERS:
        raise ValidationFailed(
            "unknown review filter",
            [
                {
                    "path": "review_status",
                    "code": "invalid_value",
                    "message": f"one of {', '.join(REVIEW_FILTERS)}",
                }
            ],
        )
    reviewer = aliased(User)
    statement = (
        select(Submission, User.username, reviewer.username)
        .join(User, User.id == Submission.user_id)
        .outerjoin(reviewer, reviewer.id == Submission.reviewed_by_id)
        .where(Submission.status == SubmissionStatus.REJECTED, _reviewable(actor))
    )
    if review == WAITING:
        statement = statement.where(Submission.review_status.is_(None))
    elif review != "all":
        reviewed = next(status for status in ReviewStatus if status.value == review)
        statement = statement.where(Submission.review_status == reviewed)
    rows = session.execute(
        statement.order_by(Submission.received_at.desc(), Submission.instance_id)
        .limit(limit)
        .offset(offset)
    ).all()
    page = []
    for sub, username, reviewed_by in rows:
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
                "review_status": sub.review_status.value if sub.review_status else None,
                "reviewed_by": reviewed_by,
                "reviewed_at": sub.reviewed_at.isoformat() if sub.reviewed_at else None,
                "review_reason": sub.review_reason,
                "corrected_by_instance_id": str(sub.corrected_by_instance_id)
                if sub.corrected_by_instance_id
                else None,
            }
        )
    return page


@dataclass(frozen=True)
class Review:
    """What a reviewer did with a quarantined submission."""

    instance_id: uuid.UUID
    review_status: ReviewStatus
    reviewed_by: str
    reviewed_at: datetime
    review_reason: str | None = None
    corrected_by_instance_id: uuid.UUID | None = None


def dismiss_submission(
    session: Session, actor: Actor, instance_id: uuid.UUID, *, reason: str, now: datetime
) -> Review:
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
    sub = _quarantined(session, actor, instance_id)
    shown_reason = masked_text(reason)
    _mark_reviewed(
        session, actor, instance_id, ReviewStatus.DISMISSED, now=now, reason=shown_reason
    )
    audit.record(
        session,
        DISMISS,
        user_id=actor.user_id,
        object_type="submission",
        object_id=str(instance_id),
        region_code=sub.village_code,
        address=actor.address,
        details={"reason": shown_reason, "at": now.isoformat()},
    )
    session.flush()
    return Review(instance_id, ReviewStatus.DISMISSED, actor.username, now, shown_reason)


def _already_reviewed(instance_id: uuid.UUID) -> Conflict:
    return Conflict(
        "this submission was already dismissed or corrected", details={"id": str(instance_id)}
    )


def _quarantined(
    session: Session, actor: Actor, instance_id: uuid.UUID, *, lock: bool = False
) -> Submission:
    """A quarantined submission the caller reviews, still waiting for review: 404 unknown or not
    rejected, 403 outside the caller's regions, 409 already dismissed or corrected. `lock` holds
    its row until the end of the unit of work (PostgreSQL), so that a correction is not pushed
    twice; `_mark_reviewed` is what keeps a review from being recorded twice."""
    actor.ensure_role(Role.SUPERVISOR, Role.ADMIN)
    statement = select(Submission).where(Submission.instance_id == instance_id)
    sub = session.scalars(statement.with_for_update() if lock else statement).one_or_none()
    if sub is None or sub.status is not SubmissionStatus.REJECTED:
        raise NotFound("no such quarantined submission", details={"id": str(instance_id)})
    reviewable = session.scalar(
        select(Submission.instance_id).where(
            Submission.instance_id == instance_id, _reviewable(actor)
        )
    )
    if reviewable is None:
        raise Forbidden("this submission is outside your regions")
    if sub.review_status is not None:
        raise _already_reviewed(instance_id)
    return sub


def _mark_reviewed(
    session: Session,
    actor: Actor,
    instance_id: uuid.UUID,
    status: ReviewStatus,
    *,
    now: datetime,
    reason: str | None = None,
    replacement: uuid.UUID | None = None,
) -> None:
    """Record the review, once: the UPDATE only applies while `review_status` is NULL, so of two
    reviewers at once (read before either wrote) exactly one changes the row; the other gets a
    409 and its unit of work rolls back."""
    marked = session.execute(
        update(Submission)
        .where(
            Submission.instance_id == instance_id,
            Submission.status == SubmissionStatus.REJECTED,
            Submission.review_status.is_(None),
        )
        .values(
            review_status=status,
            reviewed_by_id=actor.user_id,
            reviewed_at=now,
            review_reason=reason,
            corrected_by_instance_id=replacement,
        )
        .execution_options(synchronize_session=False)
    )
    if int(cast(CursorResult[Any], marked).rowcount or 0) != 1:
        raise _already_reviewed(instance_id)


@dataclass(frozen=True)
class Correction:
    """A quarantined submission as its correction form shows it: the answers (sensitive values
    masked), and why it was refused."""

    instance_id: uuid.UUID
    form_id: str
    form_version: int
    user: str
    answers: dict[str, Any]
    errors: list[Any]


def correction_of(
    session: Session, actor: Actor, codec: SensitiveCodec, instance_id: uuid.UUID
) -> Correction:
    """The answers to correct (422 for a submission too broken to have answers)."""
    sub = _quarantined(session, actor, instance_id)
    shown = shown_payload(codec, sub.payload, sub.instance_id, reveal=False).payload
    answers = shown.get("data") if isinstance(shown, dict) else None
    if not isinstance(answers, dict) or not isinstance(shown.get("form_id"), str):
        raise ValidationFailed(
            "this submission has no answers to correct",
            [
                {
                    "path": "data",
                    "code": "not_correctable",
                    "message": "it could not be read as a submission; dismiss it instead",
                }
            ],
        )
    username = session.scalar(select(User.username).where(User.id == sub.user_id)) or ""
    return Correction(
        sub.instance_id,
        sub.form_id,
        sub.form_version,
        username,
        answers,
        list(masked_value(sub.errors)),
    )


def _unmasked(edited: Any, shown: Any, original: Any) -> Any:
    """The corrected answers with every value left as it was shown (masked) put back to what was
    sent: a reviewer corrects what is wrong without ever seeing identity numbers or phones."""
    if edited == shown:
        return original
    if isinstance(edited, dict) and isinstance(shown, dict) and isinstance(original, dict):
        return {
            key: _unmasked(value, shown.get(key), original.get(key)) if key in shown else value
            for key, value in edited.items()
        }
    if isinstance(edited, list) and isinstance(shown, list) and isinstance(original, list):
        return [
            _unmasked(value, shown[i], original[i])
            if i < len(shown) and i < len(original)
            else value
            for i, value in enumerate(edited)
        ]
    return edited


@dataclass(frozen=True)
class Resubmitted:
    instance_id: uuid.UUID
    village_code: str | None
    result: dict[str, Any]
    review: Review


def resubmit_corrected(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    clock: HybridClock,
    instance_id: uuid.UUID,
    answers: dict[str, Any],
    *,
    now: datetime,
) -> Resubmitted:
    """Send `answers` (the quarantined submission's, corrected; values left masked mean "as
    sent") as a new submission of the same device, user, form version, clock, base revisions
    and device_seq, as that user on that device, through the push path. 404/403/409 as for a
    dismissal; 409 when the tablet was revoked or given to someone else; 422 with the push's own
    errors when the correction is refused again (then nothing is written: raise, and the
    caller's unit of work rolls back)."""
    # Locked first: a second correction at once waits, then finds it corrected (409).
    sub = _quarantined(session, actor, instance_id, lock=True)
    correction = correction_of(session, actor, codec, instance_id)
    original = sent_payload(codec, sub.payload, sub.instance_id)
    device = session.get(Device, sub.device_id)
    if device is None or device.is_revoked or device.owner_id != sub.user_id:
        raise Conflict(
            "the tablet that sent it was revoked or given to someone else; "
            "ask for the visit to be collected again",
            details={"device_id": str(sub.device_id)},
        )
    sender_user = session.get(User, sub.user_id)
    if sender_user is None:
        raise Conflict("the user who sent it no longer exists")
    grants = tuple(
        session.scalars(select(RegionGrant.region_code).where(RegionGrant.user_id == sub.user_id))
    )
    sender = Actor(
        user_id=sender_user.id,
        username=sender_user.username,
        role=sender_user.role,
        region_codes=grants,
        device_id=sub.device_id,
        address=actor.address,
    )
    # The same device_seq: the correction takes the refused submission's place in the
    # tablet's sequence (no gap is opened or filled by it).
    item = dict(original)
    item["instance_id"] = str(uuid.uuid4())
    item["data"] = _unmasked(answers, correction.answers, original.get("data"))
    body = {
        "device_id": str(sub.device_id),
        "batch_id": str(uuid.uuid4()),
        "clock": str(clock.now()),
        "submissions": [item],
    }
    try:
        request = PushRequestSchema(max_submissions=1).load(body)
    except ValidationError as err:
        details = validation_details(err)
        raise ValidationFailed("the correction is not a valid submission", details) from None
    plan = push.plan_push(session, sender, settings, request, now=now)
    refused = [o.errors for o in plan.outcomes.values()]
    if refused:
        raise ValidationFailed("the correction is refused too", masked_value(refused[0]))
    accepted = push.accept_push(session, sender, settings, codec, clock, plan, now=now)
    result = accepted.results[0]
    if result.get("status") != "accepted":
        raise ValidationFailed("the correction is refused too", masked_value(result["errors"]))
    new_id = uuid.UUID(item["instance_id"])
    village = session.scalar(
        select(Submission.village_code).where(Submission.instance_id == new_id)
    )
    if village is not None:
        actor.ensure_covers(village, "the corrected submission's village")
    record_references(session, accepted.attachment_refs)
    _mark_reviewed(session, actor, instance_id, ReviewStatus.CORRECTED, now=now, replacement=new_id)
    changed = sorted(
        key
        for key in set(correction.answers) | set(answers)
        if correction.answers.get(key) != answers.get(key)
    )
    audit.record(
        session,
        RESUBMIT,
        user_id=actor.user_id,
        object_type="submission",
        object_id=str(instance_id),
        region_code=village or sub.village_code,
        address=actor.address,
        details={"corrected_as": str(new_id), "answers_changed": changed[:100]},
    )
    session.flush()
    review = Review(
        instance_id, ReviewStatus.CORRECTED, actor.username, now, corrected_by_instance_id=new_id
    )
    return Resubmitted(new_id, village, result, review)
