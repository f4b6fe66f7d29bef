"""HTTP: managing users (administrators): list, create, read, grant and revoke regions, reset a
password, disable and enable; supervisors may list and read the collectors they manage. Every
change is audited by the service."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime
from server.users import service
from server.users.models import Role
from server.users.schemas import (
    GrantRequestSchema,
    PasswordResetResultSchema,
    PasswordResetSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserPageSchema,
    UserSchema,
    member_of,
)

bp = Blueprint("users", __name__, url_prefix="/api/v1")


def _user(view: service.UserView) -> dict[str, Any]:
    result: dict[str, Any] = UserSchema().dump(view)
    return result


@bp.get("/users")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def list_users() -> dict[str, Any]:
    args = load_with(UserListQuerySchema(), query_arguments())
    filters = service.UserFilters(
        role=member_of(Role, args["role"]) if "role" in args else None,
        region=args.get("region"),
        is_active=args["active"] == "true" if "active" in args else None,
        limit=args["limit"],
        offset=args["offset"],
    )
    with runtime().db.unit_of_work(write=False) as session:
        page = service.list_user_views(session, current_actor(), filters)
    result: dict[str, Any] = UserPageSchema().dump(page)
    return result


@bp.post("/users")
@authenticated(Role.ADMIN)
def create_user() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(UserCreateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        view = service.create_user_as(
            session,
            current_actor(),
            rt.passwords,
            username=body["username"],
            password=body["password"],
            role=member_of(Role, body["role"]),
            regions=body["regions"],
            display_name=body["display_name"],
        )
    return _user(view), 201


@bp.get("/users/<username>")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def get_user(username: str) -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        return _user(service.get_user_view(session, current_actor(), username))


@bp.post("/users/<username>/grants")
@authenticated(Role.ADMIN)
def grant_region(username: str) -> dict[str, Any]:
    rt = runtime()
    body = load_with(GrantRequestSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        return _user(service.grant_region_as(session, current_actor(), username, body["region"]))


@bp.delete("/users/<username>/grants/<region_code>")
@authenticated(Role.ADMIN)
def revoke_region(username: str, region_code: str) -> dict[str, Any]:
    with runtime().db.unit_of_work() as session:
        return _user(service.revoke_region_as(session, current_actor(), username, region_code))


@bp.post("/users/<username>/password")
@authenticated(Role.ADMIN)
def reset_password(username: str) -> dict[str, Any]:
    rt = runtime()
    body = load_with(PasswordResetSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        ended = service.reset_password_as(
            session, current_actor(), rt.passwords, username, body["password"]
        )
    result: dict[str, Any] = PasswordResetResultSchema().dump(
        {"username": username, "tokens_ended": ended}
    )
    return result


@bp.post("/users/<username>/disable")
@authenticated(Role.ADMIN)
def disable_user(username: str) -> dict[str, Any]:
    with runtime().db.unit_of_work() as session:
        return _user(service.disable_user_as(session, current_actor(), username))


@bp.post("/users/<username>/enable")
@authenticated(Role.ADMIN)
def enable_user(username: str) -> dict[str, Any]:
    with runtime().db.unit_of_work() as session:
        return _user(service.enable_user_as(session, current_actor(), username))
