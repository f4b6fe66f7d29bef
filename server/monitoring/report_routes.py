"""HTTP: a household's timeline and the monitoring summary of a region (read-only, scoped)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.monitoring import summary, timeline
from server.monitoring.report_schemas import (
    SummaryQuerySchema,
    TimelinePageSchema,
    TimelineQuerySchema,
)
from server.request_body import load_with
from server.runtime import runtime

bp = Blueprint("monitoring_reports", __name__, url_prefix="/api/v1")


@bp.get("/households/<uuid:household_id>/timeline")
@authenticated()
def household_timeline(household_id: uuid.UUID) -> dict[str, Any]:
    args = load_with(TimelineQuerySchema(), request.args.to_dict())
    with runtime().db.unit_of_work(write=False) as session:
        page = timeline.household_timeline(
            session,
            current_actor(),
            household_id,
            cursor=args.get("cursor"),
            limit=args["limit"],
        )
    result: dict[str, Any] = TimelinePageSchema().dump(page)
    return result


@bp.get("/monitoring/summary")
@authenticated()
def monitoring_summary() -> dict[str, Any]:
    args = load_with(SummaryQuerySchema(), request.args.to_dict())
    year = args.get("year") or datetime.now(summary.REPORT_TIMEZONE).year
    with runtime().db.unit_of_work(write=False) as session:
        result = summary.summarize(session, current_actor(), args["region"], year)
    return summary.as_document(result)
