"""Devices (tablets), the account each belongs to, and the submission sequence numbers they are
known to be missing."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
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


class DeviceEnrolment(Base):
    """A one-time code that enrols a tablet for one user: made by an administrator (or a
    supervisor, for a collector in their regions), shown once as text and QR code, redeemed once
    by the tablet (`POST /api/v1/auth/enrol`), or revoked, or left to expire. Only the code's
    SHA-256 is kept for lookup; `code_cipher` (sealed with the data key, bound to the enrolment's
    id) lets its creator show the QR code again until it is used, and is cleared once it is."""

    __tablename__ = "device_enrolments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_cipher: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]
    # The tablet that redeemed it.
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))

    def status_at(self, now: datetime) -> str:
        """`redeemed`, `revoked`, `expired` or `pending` (still redeemable)."""
        if self.redeemed_at is not None:
            return "redeemed"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"
