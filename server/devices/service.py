"""Changing devices from the console and the API: revoking a tablet within the caller's scope.
The revocation itself (tokens ended, logins refused) is the auth service's."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth import service as auth_service
from server.auth.actor import Actor
from server.devices.models import Device
from server.errors import Forbidden, NotFound
from server.users.models import Role, User
from server.users.service import managed_users


def revoke_device_as(session: Session, actor: Actor, device_id: uuid.UUID) -> Device:
    """Revoke a tablet: every token bound to it stops working and it can log in no more.
    Administrators: any device; supervisors: devices of collectors in their regions (403 for
    others). Audited."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    owner = session.scalars(
        select(User).join(Device, Device.owner_id == User.id).where(Device.id == device_id)
    ).one_or_none()
    if owner is None:
        raise NotFound("no such device", details={"device_id": str(device_id)})
    if (
        not actor.is_admin
        and session.scalars(
            select(User.id).where(User.id == owner.id, managed_users(actor))
        ).one_or_none()
        is None
    ):
        raise Forbidden(
            "this device belongs to a user outside your regions",
            details={"device_id": str(device_id)},
        )
    return auth_service.revoke_device(session, actor, device_id)
