"""Users (administrators): list and filter, create, grant and revoke regions through a picker over
the region tree, reset a password, disable and enable. Each action is one call to the users
service's `*_as` functions — the ones the API calls — which check the role and audit the change
with the acting user. No rule about users is decided here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from server.auth.actor import Actor
from server.auth.passwords import PasswordHasher
from server.console.blueprint import bp
from server.console.session import console_page, current_user
from server.errors import AppError, Conflict, ValidationFailed
from server.regions import service as regions
from server.request_body import load_with
from server.runtime import runtime
from server.users import service
from server.users.models import Role
from server.users.schemas import (
    GrantRequestSchema,
    PasswordResetSchema,
    UserCreateSchema,
    UserListQuerySchema,
    member_of,
)

PAGE_SIZE = 50
# The listing's own query arguments (others, such as `lang`, belong to the whole console).
LIST_ARGUMENTS = ("role", "region", "active", "offset")
# Region codes typed into the create form: separated by spaces, commas or new lines.
CODE_SEPARATORS = re.compile(r"[\s,，、;；]+")

# What each field must be, as the forms say it (the services' messages are for API clients).
FIELD_RULES: dict[str, Any] = {
    "username": _l("1–64 letters, digits, “_” or “.”, not only dots."),
    "password": _l("At least %(count)s characters.", count=PasswordHasher.MIN_LENGTH),
    "password_again": _l("The two passwords differ."),
    "role": _l("Choose a role."),
    "display_name": _l("At most 100 characters."),
    "regions": _l("Each region must be an existing 12-digit division code."),
    "region": _l("Choose an existing region (a 12-digit division code)."),
    "active": _l("Choose active or disabled."),
    "offset": _l("Not a page of this list."),
}


def field_errors(exc: ValidationFailed) -> dict[str, str]:
    """Field name → what the field must be, for each field the error names."""
    errors: dict[str, str] = {}
    for item in exc.details.get("errors", []):
        field = re.split(r"[.\[]", str(item.get("path", "")), maxsplit=1)[0]
        rule = FIELD_RULES.get(field)
        errors[field] = str(rule) if rule is not None else str(item.get("message", ""))
    return errors


# --- the list, and creating a user -------------------------------------------------------------


@bp.get("/users")
@console_page(Role.ADMIN)
def users() -> tuple[str, int]:
    return _list_page()


@bp.post("/users")
@console_page(Role.ADMIN)
def create_user() -> Response | tuple[str, int]:
    form = request.form
    entered = {
        "username": form.get("username", "").strip(),
        "display_name": form.get("display_name", "").strip(),
        "role": form.get("role", ""),
        "regions": " ".join(CODE_SEPARATORS.split(form.get("regions", ""))).strip(),
    }
    password = form.get("password", "")
    if password != form.get("password_again", ""):
        return _list_page(entered, {"password_again": str(FIELD_RULES["password_again"])}, 422)
    rt = runtime()
    try:
        body = load_with(
            UserCreateSchema(),
            {**entered, "password": password, "regions": entered["regions"].split()},
        )
        with rt.db.unit_of_work() as session:
            view = service.create_user_as(
                session,
                current_user(),
                rt.passwords,
                username=body["username"],
                password=body["password"],
                role=member_of(Role, body["role"]),
                regions=body["regions"],
                display_name=body["display_name"],
            )
    except ValidationFailed as exc:
        return _list_page(entered, field_errors(exc), 422)
    except Conflict:
        errors = {"username": _("A user with this name already exists.")}
        return _list_page(entered, errors, 409)
    flash(_("User %(username)s created.", username=view.username), "ok")
    return redirect(url_for("console.user", username=view.username))


def _list_page(
    entered: Mapping[str, str] | None = None,
    create_errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    actor = current_user()
    asked = {
        name: request.args[name] for name in LIST_ARGUMENTS if request.args.get(name, "") != ""
    }
    filter_errors: dict[str, str] = {}
    try:
        query = load_with(UserListQuerySchema(), asked)
    except ValidationFailed as exc:
        filter_errors = field_errors(exc)
        query = {"offset": 0}
        status = max(status, 422)
    filters = service.UserFilters(
        role=member_of(Role, query["role"]) if "role" in query else None,
        region=query.get("region"),
        is_active=query["active"] == "true" if "active" in query else None,
        # One more than shown, to know whether there is a next page.
        limit=PAGE_SIZE + 1,
        offset=query["offset"],
    )
    with runtime().db.unit_of_work(write=False) as session:
        page = service.list_user_views(session, actor, filters)
        shown = page.users[:PAGE_SIZE]
        names = service.region_names(session, (code for user in shown for code in user.regions))
    kept: dict[str, Any] = {name: value for name, value in asked.items() if name != "offset"}
    offset = filters.offset
    return (
        render_template(
            "console/users.html",
            users=shown,
            names=names,
            roles=list(Role),
            asked=asked,
            filter_errors=filter_errors,
            entered=entered or {},
            create_errors=create_errors or {},
            previous_url=(
                url_for("console.users", **kept, offset=max(offset - PAGE_SIZE, 0) or None)
                if offset > 0
                else None
            ),
            next_url=(
                url_for("console.users", **kept, offset=offset + PAGE_SIZE)
                if len(page.users) > PAGE_SIZE
                else None
            ),
            min_password=PasswordHasher.MIN_LENGTH,
        ),
        status,
    )


# --- one user ----------------------------------------------------------------------------------


@bp.get("/users/<username>")
@console_page(Role.ADMIN)
def user(username: str) -> tuple[str, int]:
    return _user_page(username)


@bp.post("/users/<username>/grants")
@console_page(Role.ADMIN)
def grant_region(username: str) -> Response | tuple[str, int]:
    under = request.form.get("under", "")
    try:
        region = load_with(GrantRequestSchema(), {"region": request.form.get("region", "")})
        with runtime().db.unit_of_work() as session:
            service.grant_region_as(session, current_user(), username, region["region"])
    except ValidationFailed as exc:
        return _user_page(username, failed="grant", errors=field_errors(exc), status=422)
    flash(_("Region %(code)s granted.", code=region["region"]), "ok")
    return redirect(_user_url(username, under))


@bp.post("/users/<username>/grants/<region_code>/revoke")
@console_page(Role.ADMIN)
def revoke_region(username: str, region_code: str) -> Response:
    with runtime().db.unit_of_work() as session:
        service.revoke_region_as(session, current_user(), username, region_code)
    flash(_("Region %(code)s withdrawn.", code=region_code), "ok")
    return redirect(_user_url(username, request.form.get("under", "")))


@bp.post("/users/<username>/password")
@console_page(Role.ADMIN)
def reset_password(username: str) -> Response | tuple[str, int]:
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        errors = {"password_again": str(FIELD_RULES["password_again"])}
        return _user_page(username, failed="password", errors=errors, status=422)
    rt = runtime()
    try:
        body = load_with(PasswordResetSchema(), {"password": password})
        with rt.db.unit_of_work() as session:
            ended = service.reset_password_as(
                session, current_user(), rt.passwords, username, body["password"]
            )
    except ValidationFailed as exc:
        return _user_page(username, failed="password", errors=field_errors(exc), status=422)
    flash(
        _(
            "Password of %(username)s changed; %(count)s sessions and tablets must log in again.",
            username=username,
            count=ended,
        ),
        "ok",
    )
    return redirect(url_for("console.user", username=username))


@bp.post("/users/<username>/disable")
@console_page(Role.ADMIN)
def disable_user(username: str) -> Response | tuple[str, int]:
    try:
        with runtime().db.unit_of_work() as session:
            service.disable_user_as(session, current_user(), username)
    except Conflict:
        problem = _("You cannot disable your own account.")
        return _user_page(username, failed="status", problem=problem, status=409)
    flash(_("%(username)s is disabled and logged out everywhere.", username=username), "ok")
    return redirect(url_for("console.user", username=username))


@bp.post("/users/<username>/enable")
@console_page(Role.ADMIN)
def enable_user(username: str) -> Response:
    with runtime().db.unit_of_work() as session:
        service.enable_user_as(session, current_user(), username)
    flash(_("%(username)s may log in again.", username=username), "ok")
    return redirect(url_for("console.user", username=username))


def _user_url(username: str, under: str) -> str:
    """The user's page, the region picker left where it was (a region code, or the top)."""
    keep = under if under.isdigit() and len(under) == 12 else None
    return url_for("console.user", username=username, under=keep)


def _user_page(
    username: str,
    *,
    failed: str = "",
    errors: Mapping[str, str] | None = None,
    problem: str = "",
    status: int = 200,
) -> tuple[str, int]:
    actor = current_user()
    under = request.values.get("under", "")
    with runtime().db.unit_of_work(write=False) as session:
        view = service.get_user_view(session, actor, username)
        names = service.region_names(session, view.regions)
        picker = _picker(session, actor, under)
    return (
        render_template(
            "console/user.html",
            user=view,
            names=names,
            picker=picker,
            failed=failed,
            errors=errors or {},
            problem=problem,
            is_self=view.username == actor.username,
            min_password=PasswordHasher.MIN_LENGTH,
        ),
        status,
    )


def _picker(session: Session, actor: Actor, under: str) -> dict[str, Any]:
    """The region picker at `under` (the top of the tree when empty): the path to it and the
    regions directly below it, from the region tree as the acting user may see it."""
    if not under:
        return {"path": None, "regions": regions.region_roots(session, actor)}
    try:
        path = regions.region_path(session, actor, under)
    except AppError:
        # A stale or mistyped picker position: show the top of the tree instead.
        return {"path": None, "regions": regions.region_roots(session, actor)}
    return {"path": path, "regions": regions.region_children(session, actor, under)}
