"""HTTP: the stored daily figures of a region — summary snapshots and overdue follow-ups per day
(read-only, scoped like the live summary)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.monitoring import snapshots
from server.monitoring.snapshot_schemas import (
    DailyQuerySchema,
    OverdueTrendSchema,
    SnapshotListSchema,
)
from server.request_body import load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("monitoring_snapshots", __name__, url_prefix="/api/v1")


def _days(args: dict[str, Any]) -> tuple[Any, Any]:
    first, last = snapshots.default_range(utcnow())
    return args.get("first", first), args.get("last", last)


@bp.get("/monitoring/summary/snapshots")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def summary_snapshots() -> dict[str, Any]:
    args = load_with(DailyQuerySchema(), query_arguments())
    first, last = _days(args)
    with runtime().db.unit_of_work(write=False) as session:
        found = snapshots.list_snapshots(session, current_actor(), args["region"], first, last)
    result: dict[str, Any] = SnapshotListSchema().dump(
        {"region": args["region"], "snapshots": found}
    )
    return result


@bp.get("/monitoring/followups/overdue-trend")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def overdue_trend() -> dict[str, Any]:
    args = load_with(DailyQuerySchema(), query_arguments())
    first, last = _days(args)
    with runtime().db.unit_of_work(write=False) as session:
        days = snapshots.overdue_trend(session, current_actor(), args["region"], first, last)
    result: dict[str, Any] = OverdueTrendSchema().dump({"region": args["region"], "days": days})
    return result
