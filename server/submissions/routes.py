"""HTTP: the quarantine of rejected submissions, for supervisors and administrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.request_body import page_arguments
from server.runtime import runtime
from server.submissions import service
from server.users.models import Role

bp = Blueprint("submissions", __name__, url_prefix="/api/v1")


@bp.get("/submissions/quarantine")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def quarantine() -> dict[str, Any]:
    limit, offset = page_arguments()
    with runtime().db.unit_of_work(write=False) as session:
        rows = service.quarantine(session, current_actor(), limit=limit, offset=offset)
    return {"submissions": rows, "limit": limit, "offset": offset}
