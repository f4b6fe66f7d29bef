"""HTTP: the quarantine of rejected submissions, for supervisors and administrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.request_body import load_with
from server.runtime import runtime
from server.submissions import service
from server.submissions.schemas import QuarantineQuerySchema
from server.users.models import Role

bp = Blueprint("submissions", __name__, url_prefix="/api/v1")


@bp.get("/submissions/quarantine")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def quarantine() -> dict[str, Any]:
    rt = runtime()
    names = ("limit", "offset", "reveal")
    args = load_with(
        QuarantineQuerySchema(), {k: request.args[k] for k in names if k in request.args}
    )
    limit, offset, reveal = args["limit"], args["offset"], args.get("reveal") == "sensitive"
    with rt.db.unit_of_work(write=reveal) as session:
        rows = service.quarantine(
            session,
            current_actor(),
            rt.settings,
            rt.codec,
            limit=limit,
            offset=offset,
            reveal=reveal,
        )
    return {"submissions": rows, "limit": limit, "offset": offset, "revealed": reveal}
