"""Where a household's current values came from: for each field of the household and its members,
who wrote it, when, and which visit (submission) set it — read from the per-field versions the
register keeps for the merge (`versions.py`), with the submissions and users they name looked up
in one query each. Also the files (photos) the household's visits sent. Read-only; the caller
checks that the actor covers the household first (`service.get_household`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.attachments.models import Attachment, AttachmentRef
from server.changes.models import Change
from server.errors import NotFound
from server.households.models import Household, Member
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import User
from sync_protocol.clock import ClockFormatError, Hlc

# The most files listed for one household (newest first).
MAX_FILES = 50


@dataclass(frozen=True)
class Visit:
    """The submission a value came from."""

    instance_id: uuid.UUID
    form_id: str
    form_version: int
    username: str | None
    collected_at: datetime | None
    received_at: datetime


@dataclass(frozen=True)
class Provenance:
    """Who set one field and when: `by` is a username, `system` for an import, or None when the
    writer is unknown; `at` is the time stamped on the write (the tablet's clock, for a visit)."""

    by: str | None
    at: datetime | None
    visit: Visit | None


@dataclass(frozen=True)
class HouseholdFile:
    digest: str
    content_type: str | None
    size: int | None
    visit: Visit


def _stamped_at(clock: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(Hlc.parse(clock).millis / 1000, UTC)
    except (ClockFormatError, ValueError, OverflowError):
        return None


def _user_id(origin: str | None) -> int | None:
    if origin and origin.startswith("user:"):
        try:
            return int(origin.removeprefix("user:"))
        except ValueError:
            return None
    return None


def _source_id(source: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(source) if source else None
    except ValueError:
        return None


def _visits(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Visit]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Submission, User.username)
        .outerjoin(User, User.id == Submission.user_id)
        .where(Submission.instance_id.in_(wanted))
    ).all()
    return {
        s.instance_id: Visit(
            s.instance_id, s.form_id, s.form_version, username, s.collected_at, s.received_at
        )
        for s, username in rows
    }


def _entities(session: Session, household_id: uuid.UUID) -> tuple[Household, list[Member]]:
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound("no such household", details={"id": str(household_id)})
    members = session.scalars(select(Member).where(Member.household_id == household_id)).all()
    return household, list(members)


def field_provenance(
    session: Session, household_id: uuid.UUID
) -> dict[uuid.UUID, dict[str, Provenance]]:
    """For the household and each of its members (by id), each field's provenance, by field
    name."""
    household, members = _entities(session, household_id)
    entities: list[Household | Member] = [household, *members]
    versions = {entity.id: entity.field_versions for entity in entities}
    written = [version for by_field in versions.values() for version in by_field.values()]
    visits = _visits(session, {s for v in written if (s := _source_id(v.source)) is not None})
    user_ids = {u for v in written if (u := _user_id(v.origin)) is not None}
    names: dict[int, str] = {}
    if user_ids:
        rows = session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
        names = {user_id: username for user_id, username in rows}
    result: dict[uuid.UUID, dict[str, Provenance]] = {}
    for entity_id, by_field in versions.items():
        shown: dict[str, Provenance] = {}
        for name, version in by_field.items():
            visit = visits.get(_source_id(version.source) or uuid.UUID(int=0))
            user_id = _user_id(version.origin)
            if visit is not None:
                by = visit.username
            elif user_id is not None:
                by = names.get(user_id)
            elif version.origin == "system":
                by = "system"
            else:
                by = None
            shown[name] = Provenance(by, _stamped_at(version.clock), visit)
        result[entity_id] = shown
    return result


def household_files(session: Session, household_id: uuid.UUID) -> list[HouseholdFile]:
    """Files referenced by the accepted submissions that wrote the household or its members,
    newest visit first (at most `MAX_FILES`)."""
    household, members = _entities(session, household_id)
    member_ids = [m.id for m in members]
    wrote = select(Change.submission_id).where(
        Change.village_code == household.village_code,
        Change.entity_id.in_([household.id, *member_ids]),
        Change.submission_id.is_not(None),
    )
    rows = session.execute(
        select(AttachmentRef.digest, Attachment.content_type, Attachment.size, Submission)
        .join(Submission, Submission.instance_id == AttachmentRef.instance_id)
        .outerjoin(Attachment, Attachment.digest == AttachmentRef.digest)
        .where(
            AttachmentRef.instance_id.in_(wrote),
            Submission.status == SubmissionStatus.ACCEPTED,
        )
        .order_by(Submission.received_at.desc(), AttachmentRef.digest)
        .limit(MAX_FILES)
    ).all()
    visits = _visits(session, {s.instance_id for _d, _t, _n, s in rows})
    return [
        HouseholdFile(digest, content_type, size, visits[s.instance_id])
        for digest, content_type, size, s in rows
    ]
