"""HTTP: `GET /api/v1/health`, unauthenticated, for load balancers and operators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from server import migrate
from server.errors import error_response
from server.runtime import runtime
from sync_protocol.errors import ErrorCode

bp = Blueprint("health", __name__, url_prefix="/api/v1")


@bp.get("/health")
def health() -> Any:
    from server import __version__

    rt = runtime()
    try:
        state = migrate.migration_state(rt.db.engine)
    except SQLAlchemyError:
        return error_response(
            ErrorCode.UNAVAILABLE, "database is not reachable", {"database": rt.db.kind}
        )
    return {
        "status": "ok" if state.is_current else "migrations_pending",
        "version": __version__,
        "database": rt.db.kind,
        "migrations": {
            "current": state.current,
            "head": state.head,
            "up_to_date": state.is_current,
        },
    }
