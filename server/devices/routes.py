"""HTTP: the devices page (administrators: every tablet; supervisors: those of collectors in their
regions) and tablet enrolment codes. Revoking and assigning a device are in `server.auth.routes`;
redeeming a code is `POST /api/v1/auth/enrol` there too."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, request

from server.auth.guard import authenticated, current_actor
from server.devices import enrolment, listing
from server.devices.schemas import (
    DeviceListQuerySchema,
    DevicePageSchema,
    EnrolmentCreateSchema,
    EnrolmentListQuerySchema,
    EnrolmentPageSchema,
    EnrolmentSchema,
    NewEnrolmentSchema,
)
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("devices", __name__, url_prefix="/api/v1")

STAFF = (Role.ADMIN, Role.SUPERVISOR)


def server_url() -> str:
    """The base URL tablets reach this server at: `PUBLIC_URL`, else the one this request used."""
    return runtime().settings.public_url or request.url_root.rstrip("/")


@bp.get("/devices")
@authenticated(*STAFF)
def list_devices() -> dict[str, Any]:
    args = load_with(DeviceListQuerySchema(), query_arguments())
    filters = listing.DeviceFilters(
        owner=args.get("owner"),
        is_revoked=args["revoked"] == "true" if "revoked" in args else None,
        limit=args["limit"],
        offset=args["offset"],
    )
    with runtime().db.unit_of_work(write=False) as session:
        page = listing.list_device_views(session, current_actor(), filters)
    result: dict[str, Any] = DevicePageSchema().dump(page)
    return result


@bp.post("/devices/enrolments")
@authenticated(*STAFF)
def create_enrolment() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(EnrolmentCreateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        made = enrolment.create_enrolment(
            session,
            current_actor(),
            rt.settings,
            rt.codec,
            username=body["username"],
            label=body["label"],
            expires_in=body.get("expires_in"),
            server_url=server_url(),
        )
    result: dict[str, Any] = NewEnrolmentSchema().dump(
        {
            "enrolment": made.enrolment,
            "code": made.code,
            "qr_payload": made.qr_payload,
            "qr_svg": f"/api/v1/devices/enrolments/{made.enrolment.id}/qr.svg",
        }
    )
    return result, 201


@bp.get("/devices/enrolments")
@authenticated(*STAFF)
def list_enrolments() -> dict[str, Any]:
    args = load_with(EnrolmentListQuerySchema(), query_arguments())
    with runtime().db.unit_of_work(write=False) as session:
        page = enrolment.list_enrolments(
            session,
            current_actor(),
            username=args.get("username"),
            status=args.get("status"),
            limit=args["limit"],
            offset=args["offset"],
        )
    result: dict[str, Any] = EnrolmentPageSchema().dump(page)
    return result


@bp.get("/devices/enrolments/<uuid:enrolment_id>/qr.svg")
@authenticated(*STAFF)
def enrolment_qr(enrolment_id: uuid.UUID) -> Response:
    rt = runtime()
    with rt.db.unit_of_work() as session:
        svg = enrolment.enrolment_qr_svg(
            session, current_actor(), rt.codec, enrolment_id, server_url=server_url()
        )
    # The picture holds a credential: no cache may keep it.
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


@bp.post("/devices/enrolments/<uuid:enrolment_id>/revoke")
@authenticated(*STAFF)
def revoke_enrolment(enrolment_id: uuid.UUID) -> dict[str, Any]:
    with runtime().db.unit_of_work() as session:
        view = enrolment.revoke_enrolment(session, current_actor(), enrolment_id)
    result: dict[str, Any] = EnrolmentSchema().dump(view)
    return result
