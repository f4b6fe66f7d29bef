"""Reading the devices for admins: which tablet belongs to whom, when it was last seen, whether it
is revoked, and how far its submissions are numbered. Registering, assigning and revoking are
the auth service's business."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device
from server.users.models import User


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
