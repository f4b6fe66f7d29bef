"""Reading the submission sequence numbers devices are missing: for admins, who follow up on
visits completed on a tablet but never delivered. Writing them is the push's business."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.devices.models import Device, DeviceSequenceGap
from server.users.models import User


@dataclass(frozen=True)
class MissingRange:
    device_id: uuid.UUID
    owner: str  # the account the device belongs to
    first_seq: int
    last_seq: int
    noticed_at: datetime

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


def missing_ranges(session: Session, *, limit: int = 1000) -> list[MissingRange]:
    """Every device's ranges of `device_seq` numbers never received, by device then number."""
    rows = session.execute(
        select(DeviceSequenceGap, User.username)
        .join(Device, Device.id == DeviceSequenceGap.device_id)
        .join(User, User.id == Device.owner_id)
        .order_by(DeviceSequenceGap.device_id, DeviceSequenceGap.first_seq)
        .limit(limit)
    ).all()
    return [
        MissingRange(gap.device_id, username, gap.first_seq, gap.last_seq, gap.noticed_at)
        for gap, username in rows
    ]
