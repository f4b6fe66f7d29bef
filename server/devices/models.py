"""Devices (tablets), the account each belongs to, and the submission sequence numbers they are
known to be missing."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


def _registrant(context: DefaultExecutionContext) -> int:
    """A new device belongs to the account that registers it."""
    registrant: int = context.get_current_parameters()["registered_by_id"]  # type: ignore[no-untyped-call]
    return registrant


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    registered_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The one account that may log in with this device: whoever registered it, until an admin
    # assigns it to someone else. Tokens bound to the device work only for its owner.
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True, default=_registrant)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Highest `device_seq` received from this device; lower numbers never received are gaps.
    highest_seq: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class DeviceSequenceGap(Base):
    """A range `first_seq..last_seq` of `device_seq` numbers the device must have completed but
    the server has never received. Ranges of one device never overlap: a late arrival splits
    the range it falls in (server/sync/push.py)."""

    __tablename__ = "device_sequence_gaps"

    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    noticed_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1
