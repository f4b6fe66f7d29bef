"""Tablet enrolment by QR code, the administrators' side: make a one-time code for a user, show
it again as a QR code while it is unused, list and revoke codes. The tablet's side (redeeming a
code for a token) is `server.auth.enrolment`.

A code is 192 random bits, answered once in clear; the database keeps its SHA-256 (to find it)
and a ciphertext sealed to the enrolment (to draw the QR code again), the latter cleared as soon
as the code is used or revoked. Whoever holds a code can log in as its user once: so a
supervisor may enrol tablets only for collectors in their regions, and every step is audited."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import qrcode
import qrcode.image.svg
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, aliased

from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.db import utcnow
from server.devices.models import DeviceEnrolment
from server.errors import AppError, Conflict, Forbidden, NotFound
from server.sensitive import SensitiveCodec
from server.users.models import Role, User
from server.users.service import managed_users
from sync_protocol.errors import ErrorCode

# What a QR code holds: `{"type": QR_TYPE, "version": 1, "server": <base URL>, "code": <code>}`.
QR_TYPE = "fieldsync-enrolment"
STATUSES = ("pending", "redeemed", "revoked", "expired")
# Bounds of a code's lifetime that its creator may ask for (seconds): 5 minutes to 30 days.
MIN_TTL = 300
MAX_TTL = 30 * 24 * 3600


class EnrolmentGone(AppError):
    """The enrolment was used, revoked or has expired: its code can no longer be shown."""

    code = ErrorCode.GONE


@dataclass(frozen=True)
class EnrolmentView:
    """An enrolment without its code. `status`: pending (redeemable), redeemed, revoked or
    expired; `device_id` the tablet that redeemed it."""

    id: uuid.UUID
    username: str
    label: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    redeemed_at: datetime | None
    device_id: uuid.UUID | None
    status: str


@dataclass(frozen=True)
class NewEnrolment:
    """A new enrolment with its code, answered this once, and the QR code's text."""

    enrolment: EnrolmentView
    code: str
    qr_payload: str


@dataclass(frozen=True)
class EnrolmentPage:
    enrolments: list[EnrolmentView]
    limit: int
    offset: int


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def qr_payload(server_url: str, code: str) -> str:
    """The text a QR code holds: where to redeem, and the code (JSON, compact)."""
    document = {"type": QR_TYPE, "version": 1, "server": server_url.rstrip("/"), "code": code}
    return json.dumps(document, separators=(",", ":"))


def qr_svg(payload: str) -> str:
    """`payload` drawn as a QR code, an SVG document (medium error correction, quiet zone)."""
    image = qrcode.make(
        payload,
        image_factory=qrcode.image.svg.SvgPathImage,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
    )
    text: str = image.to_string(encoding="unicode")
    return text


def create_enrolment(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    *,
    username: str,
    server_url: str,
    label: str = "",
    expires_in: int | None = None,
) -> NewEnrolment:
    """A one-time code enrolling a tablet for `username`, valid `expires_in` seconds (default
    `ENROLMENT_TTL`, 24 hours). Administrators: any active user; supervisors: collectors in
    their regions (403 for others, collectors always 403); 404 unknown user, 409 disabled one.
    `server_url` is the base URL tablets reach the server at (written into the QR code). Audited."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    user = _managed_user(session, actor, username)
    if not user.is_active:
        raise Conflict("this account is disabled", details={"username": username})
    code = secrets.token_urlsafe(24)
    enrolment_id = uuid.uuid4()
    now = utcnow()
    enrolment = DeviceEnrolment(
        id=enrolment_id,
        code_hash=code_digest(code),
        code_cipher=codec.seal(code, _seal_context(enrolment_id)),
        user_id=user.id,
        created_by_id=actor.user_id,
        label=label,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in or settings.enrolment_ttl),
    )
    session.add(enrolment)
    session.flush()
    audit.record(
        session,
        "enrolment_created",
        user_id=actor.user_id,
        object_type="enrolment",
        object_id=str(enrolment_id),
        address=actor.address,
        details={"username": user.username, "expires_at": enrolment.expires_at.isoformat()},
    )
    return NewEnrolment(
        enrolment=_view(enrolment, user.username, actor.username if actor.user_id else None, now),
        code=code,
        qr_payload=qr_payload(server_url, code),
    )


def enrolment_qr_svg(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    enrolment_id: uuid.UUID,
    *,
    server_url: str,
) -> str:
    """The QR code of a pending enrolment, as SVG, for its user's tablet to scan (410 once it is
    used, revoked or expired; 403 outside the caller's users). Showing it is audited."""
    enrolment, _ = _managed_enrolment(session, actor, enrolment_id)
    now = utcnow()
    status = enrolment.status_at(now)
    code = (
        codec.unseal(enrolment.code_cipher, _seal_context(enrolment.id))
        if enrolment.code_cipher and status == "pending"
        else None
    )
    if code is None:
        raise EnrolmentGone(
            f"this enrolment is {status}: make a new one",
            details={"enrolment_id": str(enrolment_id), "status": status},
        )
    audit.record(
        session,
        "enrolment_qr_shown",
        user_id=actor.user_id,
        object_type="enrolment",
        object_id=str(enrolment_id),
        address=actor.address,
    )
    return qr_svg(qr_payload(server_url, code))


def list_enrolments(
    session: Session,
    actor: Actor,
    *,
    username: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> EnrolmentPage:
    """Enrolments of the users the caller manages, newest first; `status` one of `STATUSES`."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    now = utcnow()
    creator = aliased(User)
    query = (
        select(DeviceEnrolment, User.username, creator.username)
        .join(User, User.id == DeviceEnrolment.user_id)
        .outerjoin(creator, creator.id == DeviceEnrolment.created_by_id)
        .where(managed_users(actor))
    )
    if username is not None:
        query = query.where(User.username == username)
    if status is not None:
        query = query.where(_status_is(status, now))
    rows = session.execute(
        query.order_by(DeviceEnrolment.created_at.desc(), DeviceEnrolment.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return EnrolmentPage(
        [_view(e, owner, made_by, now) for e, owner, made_by in rows], limit, offset
    )


def revoke_enrolment(session: Session, actor: Actor, enrolment_id: uuid.UUID) -> EnrolmentView:
    """Make a code unusable (409 if it was already redeemed: revoke the device instead).
    Revoking twice changes nothing the second time. Audited."""
    enrolment, username = _managed_enrolment(session, actor, enrolment_id, for_update=True)
    now = utcnow()
    if enrolment.redeemed_at is not None:
        raise Conflict(
            "this enrolment was already used; revoke the device instead",
            details={"device_id": str(enrolment.device_id)},
        )
    if enrolment.revoked_at is None:
        enrolment.revoked_at = now
        enrolment.code_cipher = None
        audit.record(
            session,
            "enrolment_revoked",
            user_id=actor.user_id,
            object_type="enrolment",
            object_id=str(enrolment_id),
            address=actor.address,
            details={"username": username},
        )
        session.flush()
    creator = session.get(User, enrolment.created_by_id) if enrolment.created_by_id else None
    return _view(enrolment, username, creator.username if creator else None, now)


def _managed_user(session: Session, actor: Actor, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise NotFound(f"no user named {username!r}", details={"username": username})
    is_managed = session.scalars(
        select(User.id).where(User.id == user.id, managed_users(actor))
    ).one_or_none()
    if is_managed is None:
        raise Forbidden(
            "you may enrol tablets only for collectors in your regions",
            details={"username": username},
        )
    return user


def _managed_enrolment(
    session: Session, actor: Actor, enrolment_id: uuid.UUID, *, for_update: bool = False
) -> tuple[DeviceEnrolment, str]:
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    query = (
        select(DeviceEnrolment, User.username, managed_users(actor))
        .join(User, User.id == DeviceEnrolment.user_id)
        .where(DeviceEnrolment.id == enrolment_id)
    )
    if for_update:
        query = query.with_for_update(of=DeviceEnrolment)
    row = session.execute(query).one_or_none()
    if row is None:
        raise NotFound("no such enrolment", details={"enrolment_id": str(enrolment_id)})
    enrolment, username, is_managed = row
    if not is_managed:
        raise Forbidden(
            "this enrolment is for a user outside your regions",
            details={"enrolment_id": str(enrolment_id)},
        )
    return enrolment, username


def _status_is(status: str, now: datetime) -> ColumnElement[bool]:
    e = DeviceEnrolment
    if status == "redeemed":
        return e.redeemed_at.is_not(None)
    if status == "revoked":
        return and_(e.redeemed_at.is_(None), e.revoked_at.is_not(None))
    unused = and_(e.redeemed_at.is_(None), e.revoked_at.is_(None))
    if status == "expired":
        return and_(unused, e.expires_at <= now)
    return and_(unused, e.expires_at > now)


def _view(
    enrolment: DeviceEnrolment, username: str, created_by: str | None, now: datetime
) -> EnrolmentView:
    return EnrolmentView(
        id=enrolment.id,
        username=username,
        label=enrolment.label,
        created_by=created_by,
        created_at=enrolment.created_at,
        expires_at=enrolment.expires_at,
        revoked_at=enrolment.revoked_at,
        redeemed_at=enrolment.redeemed_at,
        device_id=enrolment.device_id,
        status=enrolment.status_at(now),
    )


def _seal_context(enrolment_id: uuid.UUID) -> str:
    return f"enrolment:{enrolment_id}"
