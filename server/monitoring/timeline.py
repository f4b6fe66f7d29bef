"""A household's timeline: everything that happened to it, newest first, one page at a time.

Events come from independent *sources* (`SOURCES`): visits (accepted submissions that wrote the
household or its members), register changes, conflicts raised and resolved, referrals, case steps
and help given (helpers and measures). Each source answers "your events strictly after this
cursor, at most n of them" with one query; the page is the newest n of their union. Events are
totally ordered by `(at, kind, key)` descending, so the cursor — the last event's triple — is
stable: events written later (newer) never shift a page being read, and paging never repeats or
skips one. A new kind of event is one more `EventSource` in `SOURCES`.

Sensitive values are never revealed here: the change log keeps identity numbers and phones only
in masked form, and conflict values are shown masked. The full value is read through
`GET /api/v1/households/{id}?reveal=sensitive` or the conflict endpoints, which audit reveals.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from server.auth.actor import Actor
from server.changes.models import Change
from server.conflicts.models import Conflict
from server.conflicts.service import SENSITIVE_TEXT
from server.errors import NotFound, ValidationFailed
from server.households.models import Household, Member
from server.monitoring.help_models import HelpEvent
from server.monitoring.models import CaseStep, MonitoringCase, Referral
from server.sensitive import mask
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import User
from sync_protocol.errors import ItemErrorCode

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: str
    key: str  # unique within `kind`; orders like the source's key column
    who: str | None
    data: dict[str, Any]

    @property
    def order(self) -> tuple[datetime, str, str]:
        return (self.at, self.kind, self.key)


@dataclass(frozen=True)
class Cursor:
    """The position after an event: `(at, kind, key)` of the last event of a page."""

    at: datetime
    kind: str
    key: str

    def encode(self) -> str:
        text = json.dumps([self.at.isoformat(), self.kind, self.key], separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            at, kind, key = json.loads(raw)
            when = datetime.fromisoformat(at)
            if when.tzinfo is None or not isinstance(kind, str) or not isinstance(key, str):
                raise ValueError("not a timeline cursor")
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise cls.refused() from exc
        return cls(when, kind, key)

    @staticmethod
    def refused() -> ValidationFailed:
        return ValidationFailed(
            "not a timeline cursor",
            [
                {
                    "path": "cursor",
                    "code": ItemErrorCode.INVALID_VALUE.value,
                    "message": "Use the next_cursor of a previous page, unchanged.",
                }
            ],
        )


@dataclass(frozen=True)
class Subject:
    """The household a timeline is about: its id, village, and every member id it ever had."""

    household_id: uuid.UUID
    village_code: str
    entity_ids: tuple[uuid.UUID, ...]  # the household's own id first


def after(
    cursor: Cursor | None,
    kind: str,
    at: InstrumentedAttribute[Any] | ColumnElement[Any],
    key: InstrumentedAttribute[Any] | ColumnElement[Any],
    key_value: Callable[[str], Any],
) -> ColumnElement[bool]:
    """The SQL condition for a source's events that come after `cursor` in timeline order
    `(at, kind, key)` descending."""
    if cursor is None:
        return true()
    if kind < cursor.kind:
        return at <= cursor.at
    if kind > cursor.kind:
        return at < cursor.at
    try:
        last = key_value(cursor.key)
    except ValueError as exc:
        raise Cursor.refused() from exc
    return or_(at < cursor.at, and_(at == cursor.at, key < last))


EventSource = Callable[[Session, Subject, Cursor | None, int], list[TimelineEvent]]


def _uuid_key(value: uuid.UUID) -> str:
    return value.hex


def _seq_key(value: int) -> str:
    return f"{value:020d}"


def _household_changes(subject: Subject) -> ColumnElement[bool]:
    # The village's changes, by the (village_code, seq) index; the change log has no entity index.
    return and_(
        Change.village_code == subject.village_code, Change.entity_id.in_(subject.entity_ids)
    )


def visits(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Accepted submissions that wrote the household or one of its members."""
    kind = "visit"
    wrote = select(Change.submission_id).where(
        _household_changes(subject), Change.submission_id.is_not(None)
    )
    rows = session.execute(
        select(Submission, User.username)
        .join(User, User.id == Submission.user_id)
        .where(
            Submission.instance_id.in_(wrote),
            Submission.status == SubmissionStatus.ACCEPTED,
            after(cursor, kind, Submission.received_at, Submission.instance_id, uuid.UUID),
        )
        .order_by(Submission.received_at.desc(), Submission.instance_id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineEvent(
            at=s.received_at,
            kind=kind,
            key=_uuid_key(s.instance_id),
            who=username,
            data={
                "instance_id": str(s.instance_id),
                "form_id": s.form_id,
                "form_version": s.form_version,
                "device_id": str(s.device_id),
                "collected_at": s.collected_at.isoformat() if s.collected_at else None,
            },
        )
        for s, username in rows
    ]


def register_changes(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Each write to the household or a member: the fields it changed (sensitive ones as the
    change log keeps them, masked), who wrote it and from which submission."""
    kind = "change"
    rows = session.execute(
        select(Change, User.username)
        .outerjoin(User, User.id == Change.user_id)
        .where(
            _household_changes(subject),
            # Not the rows that only send a household back to its tablets with its help (no
            # field changed): the help itself is on the timeline as `help` events.
            func.length(cast(Change.fields, String)) > 2,
            after(cursor, kind, Change.changed_at, Change.seq, int),
        )
        .order_by(Change.changed_at.desc(), Change.seq.desc())
        .limit(limit)
    ).all()
    return [
        TimelineEvent(
            at=c.changed_at,
            kind=kind,
            key=_seq_key(c.seq),
            who=username,
            data={
                "entity": c.entity_type,
                "entity_id": str(c.entity_id),
                "rev": c.rev,
                "clock": c.clock,
                "fields": c.fields,
                "instance_id": str(c.submission_id) if c.submission_id else None,
                "device_id": str(c.device_id) if c.device_id else None,
            },
        )
        for c, username in rows
    ]


def _shown(entity: str, name: str, stored: Any) -> Any:
    """A conflict value as everyone may see it: sensitive text masked."""
    if (entity, name) not in SENSITIVE_TEXT or stored is None:
        return stored
    if isinstance(stored, dict):
        return stored.get("masked")
    return mask(name, str(stored))


def _conflict_data(c: Conflict) -> dict[str, Any]:
    return {
        "conflict_id": str(c.id),
        "entity": c.entity_type,
        "entity_id": str(c.entity_id),
        "field": c.field,
        "status": c.status.value,
        "winner": {
            "value": _shown(c.entity_type, c.field, c.winner_value),
            "clock": c.winner_clock,
            "instance_id": str(c.winner_submission_id) if c.winner_submission_id else None,
        },
        "loser": {
            "value": _shown(c.entity_type, c.field, c.loser_value),
            "clock": c.loser_clock,
            "instance_id": str(c.loser_submission_id) if c.loser_submission_id else None,
        },
    }


def _subject_conflicts(subject: Subject) -> ColumnElement[bool]:
    return and_(
        Conflict.entity_type.in_(("household", "member")),
        Conflict.entity_id.in_(subject.entity_ids),
    )


def conflicts(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Concurrent writes recorded for review, when they were found (values masked)."""
    kind = "conflict"
    rows = session.scalars(
        select(Conflict)
        .where(
            _subject_conflicts(subject),
            after(cursor, kind, Conflict.created_at, Conflict.id, uuid.UUID),
        )
        .order_by(Conflict.created_at.desc(), Conflict.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineEvent(c.created_at, kind, _uuid_key(c.id), None, _conflict_data(c)) for c in rows
    ]


def conflict_resolutions(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Conflicts settled by a reviewer: who, when, and the value kept (masked if sensitive)."""
    kind = "conflict_resolved"
    resolved_at = Conflict.resolved_at
    rows = session.execute(
        select(Conflict, User.username)
        .outerjoin(User, User.id == Conflict.resolved_by_id)
        .where(
            _subject_conflicts(subject),
            resolved_at.is_not(None),
            after(cursor, kind, resolved_at, Conflict.id, uuid.UUID),
        )
        .order_by(resolved_at.desc(), Conflict.id.desc())
        .limit(limit)
    ).all()
    events = []
    for c, username in rows:
        assert c.resolved_at is not None
        data = _conflict_data(c)
        data["resolution"] = {
            "value": _shown(c.entity_type, c.field, c.resolution_value),
            "clock": c.resolution_clock,
        }
        events.append(TimelineEvent(c.resolved_at, kind, _uuid_key(c.id), username, data))
    return events


def referrals(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Referrals of the household from any channel (their evidence is read with the case)."""
    kind = "referral"
    rows = session.execute(
        select(Referral, User.username)
        .outerjoin(User, User.id == Referral.referred_by_id)
        .where(
            Referral.household_id == subject.household_id,
            after(cursor, kind, Referral.created_at, Referral.id, uuid.UUID),
        )
        .order_by(Referral.created_at.desc(), Referral.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineEvent(
            r.created_at,
            kind,
            _uuid_key(r.id),
            username,
            {
                "referral_id": str(r.id),
                "channel": r.channel.value,
                "department": r.department,
                "causes": r.causes,
                "note": r.note,
                "case_id": str(r.case_id) if r.case_id else None,
                "instance_id": str(r.submission_id) if r.submission_id else None,
            },
        )
        for r, username in rows
    ]


def case_steps(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Each decision of the entry and exit chains on the household's cases."""
    kind = "case_step"
    case = aliased(MonitoringCase)
    rows = session.execute(
        select(CaseStep, case.direction, User.username)
        .join(case, case.id == CaseStep.case_id)
        .outerjoin(User, User.id == CaseStep.taken_by_id)
        .where(
            case.household_id == subject.household_id,
            after(cursor, kind, CaseStep.taken_at, CaseStep.id, uuid.UUID),
        )
        .order_by(CaseStep.taken_at.desc(), CaseStep.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineEvent(
            s.taken_at,
            kind,
            _uuid_key(s.id),
            username,
            {
                "case_id": str(s.case_id),
                "direction": direction.value,
                "seq": s.seq,
                "stage": s.stage.value,
                "decision": s.decision.value,
                "comment": s.comment,
                "details": s.details,
                "attachments": s.attachments,
                "instance_id": str(s.submission_id) if s.submission_id else None,
            },
        )
        for s, direction, username in rows
    ]


def help_changes(
    session: Session, subject: Subject, cursor: Cursor | None, limit: int
) -> list[TimelineEvent]:
    """Helpers assigned, changed or ended and measures added or changed (phones as stored:
    masked)."""
    kind = "help"
    rows = session.execute(
        select(HelpEvent, User.username)
        .outerjoin(User, User.id == HelpEvent.user_id)
        .where(
            HelpEvent.household_id == subject.household_id,
            after(cursor, kind, HelpEvent.occurred_at, HelpEvent.id, uuid.UUID),
        )
        .order_by(HelpEvent.occurred_at.desc(), HelpEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        TimelineEvent(
            e.occurred_at,
            kind,
            _uuid_key(e.id),
            username,
            {"action": e.action, "object_id": str(e.object_id), "details": e.details},
        )
        for e, username in rows
    ]


# Every kind of event on the timeline.
SOURCES: tuple[EventSource, ...] = (
    visits,
    register_changes,
    conflicts,
    conflict_resolutions,
    referrals,
    case_steps,
    help_changes,
)


@dataclass(frozen=True)
class TimelinePage:
    household_id: uuid.UUID
    village_code: str
    events: list[TimelineEvent]
    next_cursor: str | None
    limit: int = DEFAULT_LIMIT


def subject_of(session: Session, actor: Actor, household_id: uuid.UUID) -> Subject:
    """The household as a timeline subject: 404 unknown, 403 outside the caller's regions."""
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound("no such household", details={"id": str(household_id)})
    actor.ensure_covers(household.village_code, "this household")
    members = session.scalars(
        select(Member.id).where(Member.household_id == household_id).order_by(Member.id)
    ).all()
    return Subject(household.id, household.village_code, (household.id, *members))


def household_timeline(
    session: Session,
    actor: Actor,
    household_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    sources: Sequence[EventSource] = SOURCES,
) -> TimelinePage:
    """One page of the household's timeline, newest first, after `cursor` (an opaque
    `next_cursor` of the previous page; 422 if it is not one)."""
    position = Cursor.decode(cursor) if cursor is not None else None
    subject = subject_of(session, actor, household_id)
    events: list[TimelineEvent] = []
    for source in sources:
        events.extend(source(session, subject, position, limit + 1))
    events.sort(key=lambda e: e.order, reverse=True)
    page = events[:limit]
    more = len(events) > limit
    next_cursor = Cursor(page[-1].at, page[-1].kind, page[-1].key).encode() if more else None
    return TimelinePage(subject.household_id, subject.village_code, page, next_cursor, limit)
