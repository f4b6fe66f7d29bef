"""Devices (administrators: every tablet; supervisors: those of collectors in their regions): each
tablet with its owner, last sync, `device_seq` numbers never received and open conflicts; revoke
one; provision a tablet by QR code — a one-time enrolment code for a user, shown as a QR code
holding the server's address and the code, revocable until used. Each action is one call to
`server.devices.listing` or `server.devices.enrolment`, the services the API calls; they check the
caller's scope and audit every change."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as WerkzeugResponse

from server.console.blueprint import bp
from server.console.pages.users import field_errors
from server.console.session import console_page, current_user
from server.devices import enrolment, listing
from server.devices import service as devices_service
from server.devices.routes import server_url
from server.devices.schemas import DeviceListQuerySchema, EnrolmentCreateSchema
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.request_body import load_with
from server.runtime import runtime
from server.users import service as users_service
from server.users.models import Role

STAFF = (Role.ADMIN, Role.SUPERVISOR)
PAGE_SIZE = 50
# How many users the provisioning form suggests (any other name can still be typed).
SUGGESTED_USERS = 200
# The listing's own query arguments (others, such as `lang`, belong to the whole console).
LIST_ARGUMENTS = ("owner", "revoked", "offset")
# How long a new enrolment code stays usable: the choices the form offers (seconds).
VALIDITY = {3600: _l("1 hour"), 24 * 3600: _l("24 hours"), 7 * 24 * 3600: _l("7 days")}
DEFAULT_VALIDITY = 24 * 3600
STATUS_LABELS = {
    "pending": _l("Waiting for the tablet"),
    "redeemed": _l("Used by a tablet"),
    "revoked": _l("Revoked"),
    "expired": _l("Expired"),
}
ENROL_RULES: dict[str, Any] = {
    "username": _l("Enter the username of the tablet's user."),
    "label": _l("At most 100 characters."),
    "expires_in": _l("Choose how long the code stays valid."),
}


@bp.app_template_filter("enrolment_status")
def enrolment_status(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


# --- the devices page --------------------------------------------------------------------------


@bp.get("/devices")
@console_page(*STAFF)
def devices() -> tuple[str, int]:
    return _devices_page()


@bp.post("/devices/<uuid:device_id>/revoke")
@console_page(*STAFF)
def revoke_device(device_id: uuid.UUID) -> WerkzeugResponse:
    with runtime().db.unit_of_work() as session:
        devices_service.revoke_device_as(session, current_user(), device_id)
    flash(_("Tablet revoked: it is logged out and can no longer log in."), "ok")
    return redirect(url_for("console.devices", **_kept_filters(request.form)))


@bp.post("/devices/enrolments")
@console_page(*STAFF)
def create_enrolment() -> WerkzeugResponse | tuple[str, int]:
    entered = {
        "username": request.form.get("username", "").strip(),
        "label": request.form.get("label", "").strip(),
        "expires_in": request.form.get("expires_in", str(DEFAULT_VALIDITY)),
    }
    validity = _validity(entered["expires_in"], default=0)
    if validity not in VALIDITY:
        return _devices_page(entered, {"expires_in": str(ENROL_RULES["expires_in"])}, 422)
    rt = runtime()
    try:
        body = load_with(EnrolmentCreateSchema(), {**entered, "expires_in": validity})
        with rt.db.unit_of_work() as session:
            made = enrolment.create_enrolment(
                session,
                current_user(),
                rt.settings,
                rt.codec,
                username=body["username"],
                label=body["label"],
                expires_in=body["expires_in"],
                server_url=server_url(),
            )
    except ValidationFailed as exc:
        errors = {
            field: str(ENROL_RULES.get(field, message))
            for field, message in field_errors(exc).items()
        }
        return _devices_page(entered, errors, 422)
    except NotFound:
        return _devices_page(entered, {"username": _("There is no user of this name.")}, 404)
    except Forbidden:
        message = _("You may provision tablets only for collectors in your regions.")
        return _devices_page(entered, {"username": message}, 403)
    except Conflict:
        message = _("This account is disabled: enable it first.")
        return _devices_page(entered, {"username": message}, 409)
    flash(_("Enrolment code made: scan the QR code with the tablet."), "ok")
    return redirect(url_for("console.enrolment_page", enrolment_id=made.enrolment.id))


def _validity(entered: str, default: int = DEFAULT_VALIDITY) -> int:
    """The validity chosen in the form, if it is one of the choices offered."""
    seconds = int(entered) if entered.isdigit() and len(entered) < 10 else 0
    return seconds if seconds in VALIDITY else default


def _kept_filters(values: Mapping[str, str]) -> dict[str, Any]:
    return {name: values[name] for name in LIST_ARGUMENTS if values.get(name, "") != ""}


def _devices_page(
    entered: Mapping[str, str] | None = None,
    enrol_errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    actor = current_user()
    asked = _kept_filters(request.args)
    filter_errors: dict[str, str] = {}
    try:
        query = load_with(DeviceListQuerySchema(), asked)
    except ValidationFailed as exc:
        filter_errors = field_errors(exc)
        query = {"offset": 0}
        status = max(status, 422)
    filters = listing.DeviceFilters(
        owner=query.get("owner"),
        is_revoked=query["revoked"] == "true" if "revoked" in query else None,
        # One more than shown, to know whether there is a next page.
        limit=PAGE_SIZE + 1,
        offset=query["offset"],
    )
    with runtime().db.unit_of_work(write=False) as session:
        page = listing.list_device_views(session, actor, filters)
        pending = enrolment.list_enrolments(session, actor, status="pending", limit=PAGE_SIZE)
        # The active users the caller may provision tablets for, offered as the form types.
        suggested = users_service.list_user_views(
            session, actor, users_service.UserFilters(is_active=True, limit=SUGGESTED_USERS)
        ).users
    kept: dict[str, Any] = {name: value for name, value in asked.items() if name != "offset"}
    offset = filters.offset
    if entered is None:
        entered = {"username": request.args.get("enrol", ""), "label": ""}
    return (
        render_template(
            "console/devices.html",
            devices=page.devices[:PAGE_SIZE],
            pending=pending.enrolments,
            suggested=suggested,
            listed_gaps=listing.LISTED_GAPS,
            asked=asked,
            filter_errors=filter_errors,
            entered=entered,
            enrol_errors=enrol_errors or {},
            validity=VALIDITY,
            chosen_validity=_validity(entered.get("expires_in", "")),
            previous_url=(
                url_for("console.devices", **kept, offset=max(offset - PAGE_SIZE, 0) or None)
                if offset > 0
                else None
            ),
            next_url=(
                url_for("console.devices", **kept, offset=offset + PAGE_SIZE)
                if len(page.devices) > PAGE_SIZE
                else None
            ),
        ),
        status,
    )


# --- one enrolment: its QR code, its status, revoking it ---------------------------------------


@bp.get("/devices/enrolments/<uuid:enrolment_id>")
@console_page(*STAFF)
def enrolment_page(enrolment_id: uuid.UUID) -> tuple[str, int]:
    return _enrolment_page(enrolment_id)


@bp.get("/devices/enrolments/<uuid:enrolment_id>/qr.svg")
@console_page(*STAFF)
def enrolment_qr(enrolment_id: uuid.UUID) -> Response:
    rt = runtime()
    with rt.db.unit_of_work() as session:
        svg = enrolment.enrolment_qr_svg(
            session, current_user(), rt.codec, enrolment_id, server_url=server_url()
        )
    # The picture holds a credential: no cache may keep it.
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


@bp.get("/devices/enrolments/<uuid:enrolment_id>/status")
@console_page(*STAFF)
def enrolment_state(enrolment_id: uuid.UUID) -> Response:
    """The enrolment's status for the page's script, which tells when the tablet has used it."""
    with runtime().db.unit_of_work(write=False) as session:
        view = enrolment.get_enrolment(session, current_user(), enrolment_id)
    return jsonify(status=view.status, text=enrolment_status(view.status))


@bp.post("/devices/enrolments/<uuid:enrolment_id>/revoke")
@console_page(*STAFF)
def revoke_enrolment(enrolment_id: uuid.UUID) -> WerkzeugResponse | tuple[str, int]:
    try:
        with runtime().db.unit_of_work() as session:
            enrolment.revoke_enrolment(session, current_user(), enrolment_id)
    except Conflict:
        problem = _("A tablet has already used this code: revoke the tablet instead.")
        return _enrolment_page(enrolment_id, problem=problem, status=409)
    flash(_("Enrolment code revoked: no tablet can use it."), "ok")
    if request.form.get("back") == "devices":
        return redirect(url_for("console.devices"))
    return redirect(url_for("console.enrolment_page", enrolment_id=enrolment_id))


def _enrolment_page(
    enrolment_id: uuid.UUID, *, problem: str = "", status: int = 200
) -> tuple[str, int]:
    with runtime().db.unit_of_work(write=False) as session:
        view = enrolment.get_enrolment(session, current_user(), enrolment_id)
    context: dict[str, Any] = {"enrolment": view, "server": server_url(), "problem": problem}
    return render_template("console/enrolment.html", **context), status
