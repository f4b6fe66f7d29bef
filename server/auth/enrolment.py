"""Redeeming a tablet enrolment code (`POST /api/v1/auth/enrol`): the tablet sends the code from
the QR code with its device id and gets what a login gives — a token bound to that device, which
is registered to (or already owned by) the enrolment's user.

Exactly once: the code is claimed by one conditional UPDATE (unused, unrevoked, unexpired), so of
two tablets redeeming one code at the same moment one wins and the other is told it was used.
Any refusal after the claim (a revoked device, another user's device, a disabled account) rolls
the claim back, so the code stays usable for the right tablet. Making and listing codes is
`server.devices.enrolment`."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.service import IssuedToken, issue_token
from server.config import Settings
from server.db import upsert_insert, utcnow
from server.devices.enrolment import EnrolmentGone, code_digest
from server.devices.models import Device, DeviceEnrolment
from server.errors import Conflict, Forbidden, Unauthorized
from server.users.models import User


class UnknownEnrolmentCode(Unauthorized):
    pass


def redeem_enrolment(
    session: Session,
    settings: Settings,
    *,
    code: str,
    device_id: uuid.UUID,
    label: str = "",
    address: str | None = None,
) -> IssuedToken:
    """Use an enrolment code for the tablet `device_id` and issue its token (`TOKEN_TTL`).

    401 for a code never made, 409 for one already used, 410 for one revoked or expired, 403 for
    a device that is revoked or belongs to another user, 401 if the account was disabled since.
    `label` (if given) names the tablet. Audited (`device_enrolled`)."""
    now = utcnow()
    claimed = session.execute(
        update(DeviceEnrolment)
        .where(
            DeviceEnrolment.code_hash == code_digest(code),
            DeviceEnrolment.redeemed_at.is_(None),
            DeviceEnrolment.revoked_at.is_(None),
            DeviceEnrolment.expires_at > now,
        )
        .values(redeemed_at=now, code_cipher=None)
        .returning(DeviceEnrolment.id, DeviceEnrolment.user_id)
    ).one_or_none()
    if claimed is None:
        raise _refusal(session, code, now)
    enrolment_id, user_id = claimed
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("the account of this enrolment is disabled")
    created = _register_device(session, user, device_id, label=label, now=now)
    session.execute(
        update(DeviceEnrolment)
        .where(DeviceEnrolment.id == enrolment_id)
        .values(device_id=device_id)
    )
    issued = issue_token(session, settings, user, device_id=device_id, address=address, now=now)
    audit.record(
        session,
        "device_enrolled",
        user_id=user.id,
        object_type="enrolment",
        object_id=str(enrolment_id),
        address=address,
        details={
            "device_id": str(device_id),
            "token_id": issued.actor.token_id,
            "registered": created,
        },
    )
    return issued


def _refusal(session: Session, code: str, now: datetime) -> Exception:
    """Why a code could not be claimed, as the error to answer."""
    enrolment = session.scalars(
        select(DeviceEnrolment).where(DeviceEnrolment.code_hash == code_digest(code))
    ).one_or_none()
    if enrolment is None:
        return UnknownEnrolmentCode("unknown enrolment code")
    status = enrolment.status_at(now)
    details = {"enrolment_id": str(enrolment.id), "status": status}
    if status == "redeemed":
        return Conflict("this enrolment code was already used", details=details)
    return EnrolmentGone(f"this enrolment code is {status}: ask for a new one", details=details)


def _register_device(
    session: Session, user: User, device_id: uuid.UUID, *, label: str, now: datetime
) -> bool:
    """Register the tablet to `user`, or take it as theirs if it already is; whether it is new.
    A revoked device, or one of another user, is refused (403) and the claim rolls back."""
    created = session.execute(
        upsert_insert(session, Device)
        .values(
            id=device_id,
            label=label,
            registered_by_id=user.id,
            owner_id=user.id,
            registered_at=now,
            last_seen_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(Device.id)
    ).first()
    device = session.scalars(select(Device).where(Device.id == device_id).with_for_update()).one()
    if created is None:
        if device.is_revoked:
            raise Forbidden("this device has been revoked", details={"device_id": str(device_id)})
        if device.owner_id != user.id:
            raise Forbidden(
                "this device is registered to another user; an administrator can assign it",
                details={"device_id": str(device_id)},
            )
        device.last_seen_at = now
        if label:
            device.label = label
    return created is not None
