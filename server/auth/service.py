"""Logging in, resolving tokens and logging out. Login attempts are counted in the database so the
rate limit holds across every worker and host; a refused attempt is committed before the error
propagates (`keeps_changes`)."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, true, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.auth.models import LoginAttempt, Token
from server.auth.passwords import PasswordHasher
from server.config import Settings
from server.db import utcnow
from server.devices.models import Device
from server.errors import Forbidden, NotFound, RateLimited, Unauthorized
from server.users.models import RegionGrant, User


class LoginRefused(Unauthorized):
    keeps_changes = True


class DeviceRevoked(Forbidden):
    keeps_changes = True


class LoginRateLimited(RateLimited):
    keeps_changes = True


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    actor: Actor


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    session: Session,
    settings: Settings,
    passwords: PasswordHasher,
    *,
    username: str,
    password: str,
    device_id: uuid.UUID | None,
    address: str,
) -> IssuedToken:
    """Check the rate limits, then the password; register the device on first use; issue a token."""
    now = utcnow()
    _enforce_rate_limits(session, settings, username=username, address=address, now=now)
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    ok = passwords.verify(user.password_hash if user else None, password)
    usable = user is not None and ok and user.is_active
    session.add(
        LoginAttempt(username=username, address=address, attempted_at=now, succeeded=usable)
    )
    if not usable or user is None:
        raise LoginRefused("wrong username or password, or the account is disabled")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash(password)
    if device_id is not None:
        device = session.get(Device, device_id)
        if device is None:
            session.add(Device(id=device_id, registered_by_id=user.id, last_seen_at=now))
            session.flush()  # the token below refers to it, and no relationship orders the two
            audit.record(
                session,
                "device_registered",
                user_id=user.id,
                object_type="device",
                object_id=str(device_id),
                address=address,
            )
        elif device.is_revoked:
            raise DeviceRevoked(
                "this device has been revoked", details={"device_id": str(device_id)}
            )
        else:
            device.last_seen_at = now
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.token_ttl)
    row = Token(
        token_hash=token_digest(token),
        user_id=user.id,
        device_id=device_id,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "login",
        user_id=user.id,
        object_type="token",
        object_id=str(row.id),
        address=address,
        details={"device_id": str(device_id) if device_id else None},
    )
    actor = Actor(
        user_id=user.id,
        username=user.username,
        role=user.role,
        region_codes=_region_codes(session, user.id),
        token_id=row.id,
        device_id=device_id,
        address=address,
    )
    return IssuedToken(token=token, expires_at=expires_at, actor=actor)


def _enforce_rate_limits(
    session: Session, settings: Settings, *, username: str, address: str, now: datetime
) -> None:
    window_start = now - timedelta(seconds=settings.login_window)
    session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at < window_start))
    checks = (
        (
            LoginAttempt.username == username,
            LoginAttempt.succeeded.is_(False),
            settings.login_max_failures_per_user,
            "too many failed logins for this user",
        ),
        (
            LoginAttempt.address == address,
            true(),
            settings.login_max_attempts_per_address,
            "too many login attempts from this address",
        ),
    )
    for who, which, limit, message in checks:
        recent = (
            select(LoginAttempt.attempted_at)
            .where(who, which, LoginAttempt.attempted_at >= window_start)
            .order_by(LoginAttempt.attempted_at.desc())
            .limit(limit)
        )
        stamps = list(session.scalars(recent))
        if len(stamps) >= limit:
            # The limit lifts when the oldest of the last `limit` attempts leaves the window.
            frees_at = stamps[-1] + timedelta(seconds=settings.login_window)
            retry_after = math.ceil((frees_at - now).total_seconds())
            session.add(
                LoginAttempt(username=username, address=address, attempted_at=now, succeeded=False)
            )
            raise LoginRateLimited(message + "; try again later", retry_after=retry_after)


def _region_codes(session: Session, user_id: int) -> tuple[str, ...]:
    rows = session.scalars(
        select(RegionGrant.region_code)
        .where(RegionGrant.user_id == user_id)
        .order_by(RegionGrant.region_code)
    )
    return tuple(rows)


def actor_for_token(session: Session, token: str, *, address: str | None) -> Actor:
    """The actor a bearer token stands for, or Unauthorized if it is unknown, expired or revoked."""
    now = utcnow()
    row = session.execute(
        select(Token, User, Device.revoked_at)
        .join(User, User.id == Token.user_id)
        .outerjoin(Device, Device.id == Token.device_id)
        .where(Token.token_hash == token_digest(token))
    ).one_or_none()
    if row is None:
        raise Unauthorized("unknown token")
    tok, user, device_revoked_at = row
    if tok.revoked_at is not None or device_revoked_at is not None:
        raise Unauthorized("token has been revoked")
    if tok.expires_at <= now:
        raise Unauthorized("token has expired")
    if not user.is_active:
        raise Unauthorized("account is disabled")
    return Actor(
        user_id=user.id,
        username=user.username,
        role=user.role,
        region_codes=_region_codes(session, user.id),
        token_id=tok.id,
        device_id=tok.device_id,
        address=address,
    )


def logout(session: Session, actor: Actor) -> None:
    """Revoke the token the actor is using."""
    session.execute(
        update(Token)
        .where(Token.id == actor.token_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_device(session: Session, actor: Actor, device_id: uuid.UUID) -> Device:
    """Revoke a device: every token bound to it stops working at once."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound("no such device")
    now = utcnow()
    if device.revoked_at is None:
        device.revoked_at = now
    session.execute(
        update(Token)
        .where(Token.device_id == device_id, Token.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    audit.record(
        session,
        "device_revoked",
        user_id=actor.user_id,
        object_type="device",
        object_id=str(device_id),
        address=actor.address,
    )
    return device
