"""HTTP: the region tree within the caller's scope (any role)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.regions import service
from server.regions.schemas import RegionListQuerySchema, RegionListSchema, RegionPathSchema
from server.request_body import load_with, query_arguments
from server.runtime import runtime

bp = Blueprint("regions", __name__, url_prefix="/api/v1")


@bp.get("/regions")
@authenticated()
def list_regions() -> dict[str, Any]:
    parent = load_with(RegionListQuerySchema(), query_arguments()).get("parent")
    with runtime().db.unit_of_work(write=False) as session:
        nodes = service.list_regions(session, current_actor(), parent)
    result: dict[str, Any] = RegionListSchema().dump({"parent": parent, "regions": nodes})
    return result


@bp.get("/regions/<region_code>")
@authenticated()
def get_region(region_code: str) -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        path = service.region_path(session, current_actor(), region_code)
    result: dict[str, Any] = RegionPathSchema().dump(path)
    return result
