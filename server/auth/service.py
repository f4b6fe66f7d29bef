"""Logging in, resolving tokens and logging out, and the devices tokens are bound to: each belongs
to one account, revocable and re-assignable by an administrator. Login throttling
(`server.auth.throttle`) is counted in the database, so it holds across every worker and host."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth import throttle
from server.auth.actor import Actor
from server.auth.models import Token
from server.auth.passwords import PasswordHasher
from server.config import Settings
from server.db import Database, upsert_insert, utcnow
from server.devices.models import Device
from server.errors import AppError, Forbidden, NotFound, Unauthorized
from server.users.models import RegionGrant, User


class LoginRefused(Unauthorized):
    pass


class DeviceRevoked(Forbidden):
    keeps_changes = True


class DeviceOfAnotherUser(Forbidden):
    keeps_changes = True


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    actor: Actor


@dataclass(frozen=True)
class _Candidate:
    """What the first step of a login learns about the account, before the password check."""

    user_id: int | None
    password_hash: str | None
    admission: throttle.Admission


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    db: Database,
    settings: Settings,
    passwords: PasswordHasher,
    *,
    username: str,
    password: str,
    device_id: uuid.UUID | None,
    address: str,
    ttl: int | None = None,
) -> IssuedToken:
    """Admit the attempt past the login throttle, check the password, then register the device
    on first use and issue a token.

    Three steps, each its own unit of work: the throttle's charge is committed before the
    (deliberately slow) password check, so parallel attempts on any worker see it, and no lock
    is held while the password is hashed; a right password takes the charge back. `ttl` (seconds)
    overrides TOKEN_TTL, e.g. for a web console session."""
    with db.unit_of_work() as session:
        candidate = _admit(session, settings, username, device_id, address)
    is_right = passwords.verify(candidate.password_hash, password)
    if not is_right or candidate.user_id is None:
        with db.unit_of_work() as session:
            throttle.forget_stale(session, settings, now=utcnow())
        raise LoginRefused("wrong username or password, or the account is disabled")
    with db.unit_of_work() as session:
        return _issue(
            session,
            settings,
            passwords,
            candidate,
            user_id=candidate.user_id,
            password=password,
            device_id=device_id,
            address=address,
            ttl=ttl,
        )


def _admit(
    session: Session,
    settings: Settings,
    username: str,
    device_id: uuid.UUID | None,
    address: str,
) -> _Candidate:
    user = session.execute(
        select(User.id, User.password_hash).where(User.username == username, User.is_active)
    ).one_or_none()
    known_device_id = None
    if user is not None and device_id is not None:
        known_device_id = session.scalars(
            select(Device.id).where(
                Device.id == device_id, Device.owner_id == user.id, Device.revoked_at.is_(None)
            )
        ).one_or_none()
    subjects = throttle.subjects_for(username, known_device_id=known_device_id, address=address)
    admission = throttle.admit(session, settings, subjects, now=utcnow())
    return _Candidate(
        user_id=user.id if user else None,
        password_hash=user.password_hash if user else None,
        admission=admission,
    )


def _issue(
    session: Session,
    settings: Settings,
    passwords: PasswordHasher,
    candidate: _Candidate,
    *,
    user_id: int,
    password: str,
    device_id: uuid.UUID | None,
    address: str,
    ttl: int | None = None,
) -> IssuedToken:
    now = utcnow()
    try:
        user = session.get(User, user_id)
        if user is None or not user.is_active:  # disabled while the password was being checked
            raise LoginRefused("wrong username or password, or the account is disabled")
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash(password)
        if device_id is not None:
            _use_device(session, user, device_id, address=address, now=now)
        issued = issue_token(
            session, settings, user, device_id=device_id, address=address, now=now, ttl=ttl
        )
        audit.record(
            session,
            "login",
            user_id=user.id,
            object_type="token",
            object_id=str(issued.actor.token_id),
            address=address,
            details={"device_id": str(device_id) if device_id else None},
        )
    except AppError as error:
        if error.keeps_changes:  # a refused device: the password was right all the same
            throttle.take_back(session, settings, candidate.admission, now=now)
        raise
    # Last, just before the commit: the charge's row is locked from here to the end of the
    # transaction, and an address's row is shared by every tablet behind it (a county's first
    # morning: hundreds of logins from one office's address, each waiting for the one before).
    throttle.take_back(session, settings, candidate.admission, now=now)
    return issued


def issue_token(
    session: Session,
    settings: Settings,
    user: User,
    *,
    device_id: uuid.UUID | None,
    address: str | None,
    now: datetime,
    ttl: int | None = None,
) -> IssuedToken:
    """A new token for `user` (bound to `device_id` when given), lasting `ttl` seconds or
    TOKEN_TTL, with the actor it stands for. The caller audits why it was issued."""
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.token_ttl if ttl is None else ttl)
    row = Token(
        token_hash=token_digest(token),
        user_id=user.id,
        device_id=device_id,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
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


def _use_device(
    session: Session, user: User, device_id: uuid.UUID, *, address: str, now: datetime
) -> None:
    """Register the device to `user` on its first login; refuse it if revoked or another's."""
    # Two first logins with one new id may race: the insert that loses does nothing.
    created = session.execute(
        upsert_insert(session, Device)
        .values(id=device_id, registered_by_id=user.id, owner_id=user.id, last_seen_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(Device.id)
    ).first()
    device = session.scalars(select(Device).where(Device.id == device_id).with_for_update()).one()
    if created is not None:
        audit.record(
            session,
            "device_registered",
            user_id=user.id,
            object_type="device",
            object_id=str(device_id),
            address=address,
        )
        return
    if device.is_revoked:
        raise DeviceRevoked("this device has been revoked", details={"device_id": str(device_id)})
    if device.owner_id != user.id:
        audit.record(
            session,
            "device_login_refused",
            user_id=user.id,
            object_type="device",
            object_id=str(device_id),
            address=address,
            details={"owner_id": device.owner_id},
        )
        raise DeviceOfAnotherUser(
            "this device is registered to another user; an administrator can assign it to you",
            details={"device_id": str(device_id)},
        )
    device.last_seen_at = now


def _region_codes(session: Session, user_id: int) -> tuple[str, ...]:
    rows = session.scalars(
        select(RegionGrant.region_code)
        .where(RegionGrant.user_id == user_id)
        .order_by(RegionGrant.region_code)
    )
    return tuple(rows)


# Built once: every request runs it, and building the statement cost more than running it.
_TOKEN_QUERY = (
    select(
        Token.id,
        Token.user_id,
        Token.device_id,
        Token.expires_at,
        Token.revoked_at,
        User.username,
        User.role,
        User.is_active,
        Device.revoked_at,
        Device.owner_id,
        RegionGrant.region_code,
    )
    .join(User, User.id == Token.user_id)
    .outerjoin(Device, Device.id == Token.device_id)
    .outerjoin(RegionGrant, RegionGrant.user_id == Token.user_id)
    .where(Token.token_hash == bindparam("digest"))
    .order_by(RegionGrant.region_code)
)


def actor_for_token(session: Session, token: str, *, address: str | None) -> Actor:
    """The actor a bearer token stands for, or Unauthorized if it is unknown, expired or revoked.

    Every request pays for this, so it is one statement reading plain columns: the token, its
    user, its device and the user's region grants (one row per grant)."""
    now = utcnow()
    rows = session.execute(_TOKEN_QUERY, {"digest": token_digest(token)}).all()
    if not rows:
        raise Unauthorized("unknown token")
    first = rows[0]
    token_id, user_id, device_id, expires_at, revoked_at, username, role, is_active = first[:8]
    device_revoked_at, device_owner_id = first[8], first[9]
    if revoked_at is not None or device_revoked_at is not None:
        raise Unauthorized("token has been revoked")
    if device_id is not None and device_owner_id != user_id:
        raise Unauthorized("the token's device now belongs to another user")
    if expires_at <= now:
        raise Unauthorized("token has expired")
    if not is_active:
        raise Unauthorized("account is disabled")
    return Actor(
        user_id=user_id,
        username=username,
        role=role,
        region_codes=tuple(row[10] for row in rows if row[10] is not None),
        token_id=token_id,
        device_id=device_id,
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


@dataclass(frozen=True)
class DeviceAssignment:
    device_id: uuid.UUID
    username: str
    previous_username: str
    revoked_tokens: int
    # Assigning does not undo a revocation: a revoked device stays refused to everyone.
    still_revoked: bool = False


def assign_device(
    session: Session, actor: Actor, device_id: uuid.UUID, username: str
) -> DeviceAssignment:
    """Make `username` the device's owner (an administrator's decision): only they may log in
    with it from now on, and every token another account holds for it stops working."""
    device = session.scalars(
        select(Device).where(Device.id == device_id).with_for_update()
    ).one_or_none()
    if device is None:
        raise NotFound("no such device", details={"device_id": str(device_id)})
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise NotFound(f"no user named {username!r}", details={"username": username})
    previous = session.get(User, device.owner_id)
    device.owner_id = user.id
    revoked = session.execute(
        update(Token)
        .where(Token.device_id == device_id, Token.user_id != user.id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    revoked_tokens = int(cast(CursorResult[Any], revoked).rowcount)
    previous_username = previous.username if previous else ""
    audit.record(
        session,
        "device_assigned",
        user_id=actor.user_id,
        object_type="device",
        object_id=str(device_id),
        address=actor.address,
        details={
            "from": previous_username,
            "to": user.username,
            "revoked_tokens": revoked_tokens,
        },
    )
    return DeviceAssignment(
        device_id=device_id,
        username=user.username,
        previous_username=previous_username,
        revoked_tokens=revoked_tokens,
        still_revoked=device.is_revoked,
    )


# Revoked tokens are kept this long, so a tablet still hears "revoked" rather than "unknown".
REVOKED_TOKEN_KEPT = timedelta(days=1)


def purge_tokens(session: Session, *, now: datetime) -> int:
    """Delete tokens that can never be used again: expired, or revoked over a day ago. Returns
    how many (the scheduled `purge_auth` job)."""
    result = session.execute(
        delete(Token).where(
            or_(Token.expires_at < now, Token.revoked_at < now - REVOKED_TOKEN_KEPT)
        )
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)
