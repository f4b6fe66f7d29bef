"""HTTP: read one household of the register (scoped; sensitive fields masked unless revealed), and
search the register (scoped, masked, identity-number lookups audited)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from forms.register import Category, MonitoringStatus, MonitoringType
from server.auth.guard import authenticated, current_actor
from server.households import search, service
from server.households.schemas import HouseholdSearchPageSchema, HouseholdSearchQuerySchema
from server.request_body import load_with, page_arguments, query_arguments
from server.runtime import runtime
from server.users.models import Role
from server.users.schemas import member_of

bp = Blueprint("households", __name__, url_prefix="/api/v1")


@bp.get("/households/<uuid:household_id>")
@authenticated()
def get_household(household_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    reveal = request.args.get("reveal", "").lower() in {"1", "true", "sensitive"}
    with rt.db.unit_of_work(write=reveal) as session:
        return service.get_household(
            session, current_actor(), rt.settings, rt.codec, household_id, reveal=reveal
        )


@bp.get("/households/flagged")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def flagged_households() -> dict[str, Any]:
    limit, offset = page_arguments()
    with runtime().db.unit_of_work(write=False) as session:
        rows = service.flagged_households(session, current_actor(), limit=limit, offset=offset)
    return {"households": rows, "limit": limit, "offset": offset}


@bp.get("/households")
@authenticated()
def search_households() -> dict[str, Any]:
    rt = runtime()
    args = load_with(HouseholdSearchQuerySchema(), query_arguments())
    query = search.HouseholdSearch(
        household_no=args.get("household_no"),
        head_name=args.get("head_name"),
        region=args.get("region"),
        status=member_of(MonitoringStatus, args["status"]) if "status" in args else None,
        monitoring_type=(
            member_of(MonitoringType, args["monitoring_type"])
            if "monitoring_type" in args
            else None
        ),
        category=member_of(Category, args["category"]) if "category" in args else None,
        id_number=args.get("id_number"),
        limit=args["limit"],
        cursor=args.get("cursor"),
    )
    with rt.db.unit_of_work(write="id_number" in args) as session:
        page = search.search_households(session, current_actor(), rt.codec, query)
    result: dict[str, Any] = HouseholdSearchPageSchema().dump(page)
    return result
