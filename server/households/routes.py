"""HTTP: read one household of the register (scoped; sensitive fields masked unless revealed)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.households import service
from server.request_body import page_arguments
from server.runtime import runtime
from server.users.models import Role

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
