"""Login tokens (stored as hashes only) and login throttles (failure counts all processes share)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the bearer token; the token itself is shown once, at login, and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """What login throttling remembers about one subject: an account (logins that name no tablet
    of its own), an account on one of its own tablets, or a client address. Kept in the database
    and changed only under a lock on its row, so every worker on every host counts the same.
    `server.auth.throttle` explains the rules."""

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # account, device, address
    # The username as typed (up to the protocol's 150 characters), or the client address.
    subject: Mapped[str] = mapped_column(String(150), primary_key=True)
    # The tablet for scope `device`, else "".
    device_id: Mapped[str] = mapped_column(String(36), primary_key=True, default="")
    # account, device: failed logins in a row; address: failures not yet leaked away.
    failures: Mapped[float] = mapped_column(default=0.0)
    # When `failures` last changed; rows quiet for LOGIN_WINDOW mean nothing and are removed.
    counted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # account, device: no password is checked before this time.
    blocked_until: Mapped[datetime | None]
