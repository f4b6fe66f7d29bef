"""Reading the devices for admins and supervisors: which tablet belongs to whom, when it was last
seen and last pushed, whether it is revoked, how far its submissions are numbered, the numbers
never received and its open conflicts. Registering and assigning are the auth service's business;
revoking goes through it after `server.devices.service` checks the caller's scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.conflicts.models import Conflict, ConflictStatus
from server.devices.models import Device, DeviceSequenceGap
from server.submissions.models import Submission
from server.users.models import Role, User
from server.users.service import managed_users


@dataclass(frozen=True)
class DeviceRow:
    device_id: uuid.UUID
    owner: str  # the account the device belongs to
    registered_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None
    highest_seq: int


def list_devices(
    session: Session, *, owner: str | None = None, limit: int = 1000
) -> list[DeviceRow]:
    """Devices by owner, then by most recently seen; `owner` keeps one account's."""
    query = select(Device, User.username).join(User, User.id == Device.owner_id)
    if owner is not None:
        query = query.where(User.username == owner)
    rows = session.execute(
        query.order_by(User.username, Device.last_seen_at.desc(), Device.id).limit(limit)
    ).all()
    return [
        DeviceRow(d.id, username, d.registered_at, d.last_seen_at, d.revoked_at, d.highest_seq)
        for d, username in rows
    ]


# --- the devices page of the API and console ---------------------------------------------------

# Missing ranges listed per device (the count covers them all).
LISTED_GAPS = 20


@dataclass(frozen=True)
class MissingSeqRange:
    first_seq: int
    last_seq: int
    noticed_at: datetime


@dataclass(frozen=True)
class DeviceView:
    """A tablet as administrators and supervisors see it. `last_push_at` is when the server last
    received a submission from it, `last_seen_at` its last login or push of new work; `missing`
    counts the `device_seq` numbers never received (the first ranges in `gaps`);
    `open_conflicts` counts unresolved conflicts where one side came from this device."""

    device_id: uuid.UUID
    label: str
    owner: str
    owner_display_name: str
    registered_at: datetime
    last_seen_at: datetime | None
    last_push_at: datetime | None
    revoked_at: datetime | None
    highest_seq: int
    missing: int
    gaps: list[MissingSeqRange]
    open_conflicts: int


@dataclass(frozen=True)
class DeviceFilters:
    owner: str | None = None
    is_revoked: bool | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class DevicePage:
    devices: list[DeviceView]
    limit: int
    offset: int


def list_device_views(session: Session, actor: Actor, filters: DeviceFilters) -> DevicePage:
    """Devices by owner then id: every device for an administrator; for a supervisor those owned
    by collectors in their regions (`server.users.service.managed_users`); 403 for collectors.
    Four statements whatever the page size."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    query = (
        select(Device, User.username, User.display_name)
        .join(User, User.id == Device.owner_id)
        .where(managed_users(actor))
    )
    if filters.owner is not None:
        query = query.where(User.username == filters.owner)
    if filters.is_revoked is not None:
        revoked = Device.revoked_at.is_not(None)
        query = query.where(revoked if filters.is_revoked else ~revoked)
    rows = session.execute(
        query.order_by(User.username, Device.id).limit(filters.limit).offset(filters.offset)
    ).all()
    ids = [device.id for device, _, _ in rows]
    gaps: dict[uuid.UUID, list[DeviceSequenceGap]] = {}
    pushes: dict[uuid.UUID, datetime] = {}
    conflicts: dict[uuid.UUID, int] = {}
    if ids:
        for gap in session.scalars(
            select(DeviceSequenceGap)
            .where(DeviceSequenceGap.device_id.in_(ids))
            .order_by(DeviceSequenceGap.device_id, DeviceSequenceGap.first_seq)
        ):
            gaps.setdefault(gap.device_id, []).append(gap)
        pushes = {
            device_id: received
            for device_id, received in session.execute(
                select(Submission.device_id, func.max(Submission.received_at))
                .where(Submission.device_id.in_(ids))
                .group_by(Submission.device_id)
            )
        }
        conflicts = _open_conflicts(session, ids)
    return DevicePage(
        [
            DeviceView(
                device_id=device.id,
                label=device.label,
                owner=username,
                owner_display_name=display_name,
                registered_at=device.registered_at,
                last_seen_at=device.last_seen_at,
                last_push_at=pushes.get(device.id),
                revoked_at=device.revoked_at,
                highest_seq=device.highest_seq,
                missing=sum(g.count for g in gaps.get(device.id, [])),
                gaps=[
                    MissingSeqRange(g.first_seq, g.last_seq, g.noticed_at)
                    for g in gaps.get(device.id, [])[:LISTED_GAPS]
                ],
                open_conflicts=conflicts.get(device.id, 0),
            )
            for device, username, display_name in rows
        ],
        filters.limit,
        filters.offset,
    )


def _open_conflicts(session: Session, device_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Open conflicts per device, a conflict counted once per device whichever side it sent."""
    sides = union(
        select(Conflict.id.label("conflict_id"), Submission.device_id.label("device_id"))
        .join(Submission, Submission.instance_id == Conflict.winner_submission_id)
        .where(Conflict.status == ConflictStatus.OPEN, Submission.device_id.in_(device_ids)),
        select(Conflict.id, Submission.device_id)
        .join(Submission, Submission.instance_id == Conflict.loser_submission_id)
        .where(Conflict.status == ConflictStatus.OPEN, Submission.device_id.in_(device_ids)),
    ).subquery()
    return {
        device_id: count
        for device_id, count in session.execute(
            select(sides.c.device_id, func.count()).group_by(sides.c.device_id)
        )
    }
