"""HTTP: list, read and resolve conflicts (supervisors and admins, within their regions)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.conflicts import service
from server.conflicts.schemas import (
    ConflictListQuerySchema,
    ConflictPageSchema,
    ConflictQuerySchema,
    ConflictSchema,
    ResolvedConflictSchema,
    ResolveRequestSchema,
)
from server.request_body import json_object, load_with
from server.runtime import runtime

bp = Blueprint("conflicts", __name__, url_prefix="/api/v1")


@bp.get("/conflicts")
@authenticated(*service.REVIEW_ROLES)
def list_conflicts() -> dict[str, Any]:
    rt = runtime()
    args = load_with(ConflictListQuerySchema(), request.args.to_dict())
    reveal = "reveal" in args
    filters = service.ConflictFilters(
        status=args.get("status"),
        region=args.get("region"),
        entity=args.get("entity"),
        entity_id=uuid.UUID(args["entity_id"]) if "entity_id" in args else None,
        field=args.get("field"),
        limit=args["limit"],
        offset=args["offset"],
    )
    with rt.db.unit_of_work(write=reveal) as session:
        page = service.list_conflicts(
            session, current_actor(), rt.settings, rt.codec, filters, reveal=reveal
        )
    result: dict[str, Any] = ConflictPageSchema().dump(page)
    return result


@bp.get("/conflicts/<uuid:conflict_id>")
@authenticated(*service.REVIEW_ROLES)
def get_conflict(conflict_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    reveal = "reveal" in load_with(ConflictQuerySchema(), request.args.to_dict())
    with rt.db.unit_of_work(write=reveal) as session:
        view = service.get_conflict(
            session, current_actor(), rt.settings, rt.codec, conflict_id, reveal=reveal
        )
    result: dict[str, Any] = ConflictSchema().dump(view)
    return result


@bp.post("/conflicts/<uuid:conflict_id>/resolve")
@authenticated(*service.REVIEW_ROLES)
def resolve_conflict(conflict_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(ResolveRequestSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        resolved = service.resolve_conflict(
            session,
            current_actor(),
            rt.codec,
            rt.clock,
            conflict_id,
            choose=body.get("choose"),
            value=body.get("value"),
        )
    result: dict[str, Any] = ResolvedConflictSchema().dump(resolved)
    return result
