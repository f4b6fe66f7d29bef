"""HTTP: the quarantine of rejected submissions, for supervisors and administrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.errors import ValidationFailed
from server.request_body import page_arguments
from server.runtime import runtime
from server.submissions import service
from server.users.models import Role
from sync_protocol.errors import ItemErrorCode

bp = Blueprint("submissions", __name__, url_prefix="/api/v1")


@bp.get("/submissions/quarantine")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def quarantine() -> dict[str, Any]:
    rt = runtime()
    limit, offset = page_arguments()
    reveal = _reveal_argument()
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


def _reveal_argument() -> bool:
    """`?reveal=sensitive` asks for identity numbers and phones in clear (audited)."""
    value = request.args.get("reveal")
    if value is None:
        return False
    if value != "sensitive":
        raise ValidationFailed(
            "bad reveal",
            [
                {
                    "path": "reveal",
                    "code": ItemErrorCode.INVALID_VALUE.value,
                    "message": "Must be one of: sensitive.",
                }
            ],
        )
    return True
