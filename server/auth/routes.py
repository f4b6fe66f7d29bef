"""HTTP: log in, redeem a tablet enrolment code, who am I, log out, revoke a device, assign a
device to a user."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from server.auth import enrolment, service
from server.auth.guard import authenticated, current_actor
from server.auth.schemas import DeviceAssignRequestSchema, LoginRequestSchema, actor_json
from server.devices.schemas import EnrolRequestSchema
from server.devices.service import revoke_device_as
from server.request_body import json_object, load_with
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("auth", __name__, url_prefix="/api/v1")


@bp.post("/auth/login")
def login() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(LoginRequestSchema(), json_object(rt.settings.max_body_size))
    issued = service.login(
        rt.db,
        rt.settings,
        rt.passwords,
        username=body["username"],
        password=body["password"],
        device_id=uuid.UUID(body["device_id"]) if body.get("device_id") else None,
        address=request.remote_addr or "-",
    )
    return {
        "token": issued.token,
        "expires_at": issued.expires_at.isoformat(),
        "user": actor_json(issued.actor),
    }, 200


@bp.get("/auth/me")
@authenticated()
def me() -> dict[str, Any]:
    return {"user": actor_json(current_actor())}


@bp.post("/auth/logout")
@authenticated()
def logout() -> tuple[str, int]:
    with runtime().db.unit_of_work() as session:
        service.logout(session, current_actor())
    return "", 204


@bp.post("/auth/enrol")
def enrol() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(EnrolRequestSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        issued = enrolment.redeem_enrolment(
            session,
            rt.settings,
            code=body["code"],
            device_id=uuid.UUID(body["device_id"]),
            label=body["label"],
            address=request.remote_addr,
        )
    return {
        "token": issued.token,
        "expires_at": issued.expires_at.isoformat(),
        "user": actor_json(issued.actor),
    }, 200


@bp.post("/devices/<uuid:device_id>/revoke")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def revoke_device(device_id: uuid.UUID) -> dict[str, Any]:
    with runtime().db.unit_of_work() as session:
        device = revoke_device_as(session, current_actor(), device_id)
        revoked_at = device.revoked_at
    return {
        "device_id": str(device_id),
        "revoked_at": revoked_at.isoformat() if revoked_at else None,
    }


@bp.post("/devices/<uuid:device_id>/assign")
@authenticated(Role.ADMIN)
def assign_device(device_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(DeviceAssignRequestSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        assigned = service.assign_device(session, current_actor(), device_id, body["username"])
    return {
        "device_id": str(assigned.device_id),
        "username": assigned.username,
        "previous_username": assigned.previous_username,
        "revoked_tokens": assigned.revoked_tokens,
    }
