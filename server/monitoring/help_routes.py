"""HTTP: a monitored household's helpers and measures (read in scope; changed by supervisors and
admins) and the follow-up visits that are due or overdue, by region."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.monitoring import assistance, followups
from server.monitoring.help_schemas import (
    FollowupPageSchema,
    FollowupQuerySchema,
    HelperCreateSchema,
    HelperEndSchema,
    HelperSchema,
    HelperUpdateSchema,
    HelpQuerySchema,
    HouseholdHelpSchema,
    MeasureCreateSchema,
    MeasureSchema,
    MeasureUpdateSchema,
)
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime

bp = Blueprint("monitoring_help", __name__, url_prefix="/api/v1")


def _dump(schema: Any, value: Any) -> dict[str, Any]:
    result: dict[str, Any] = schema.dump(value)
    return result


@bp.get("/households/<uuid:household_id>/help")
@authenticated()
def household_help(household_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    reveal = "reveal" in load_with(HelpQuerySchema(), query_arguments())
    with rt.db.unit_of_work(write=reveal) as session:
        view = assistance.household_help(
            session, current_actor(), rt.settings, rt.codec, household_id, reveal=reveal
        )
    return _dump(HouseholdHelpSchema(), view)


@bp.post("/households/<uuid:household_id>/helpers")
@authenticated(*assistance.CHANGE_ROLES)
def assign_helper(household_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(HelperCreateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        helper = assistance.assign_helper(
            session, current_actor(), rt.codec, rt.clock, household_id, body
        )
    return _dump(HelperSchema(), helper), 201


@bp.patch("/monitoring/helpers/<uuid:helper_id>")
@authenticated(*assistance.CHANGE_ROLES)
def update_helper(helper_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(HelperUpdateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        helper = assistance.update_helper(
            session, current_actor(), rt.codec, rt.clock, helper_id, body
        )
    return _dump(HelperSchema(), helper)


@bp.post("/monitoring/helpers/<uuid:helper_id>/end")
@authenticated(*assistance.CHANGE_ROLES)
def end_helper(helper_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(HelperEndSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        helper = assistance.end_helper(
            session, current_actor(), rt.codec, rt.clock, helper_id, body.get("ended_on")
        )
    return _dump(HelperSchema(), helper)


@bp.post("/households/<uuid:household_id>/measures")
@authenticated(*assistance.CHANGE_ROLES)
def add_measure(household_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(MeasureCreateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        measure = assistance.add_measure(session, current_actor(), rt.clock, household_id, body)
    return _dump(MeasureSchema(), measure), 201


@bp.patch("/monitoring/measures/<uuid:measure_id>")
@authenticated(*assistance.CHANGE_ROLES)
def update_measure(measure_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(MeasureUpdateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        measure = assistance.update_measure(session, current_actor(), rt.clock, measure_id, body)
    return _dump(MeasureSchema(), measure)


@bp.get("/monitoring/followups")
@authenticated(*assistance.CHANGE_ROLES)
def list_followups() -> dict[str, Any]:
    args = load_with(FollowupQuerySchema(), query_arguments())
    with runtime().db.unit_of_work(write=False) as session:
        page = followups.list_followups(
            session,
            current_actor(),
            region=args.get("region"),
            state=args["state"],
            limit=args["limit"],
            offset=args["offset"],
            as_of=utcnow(),
        )
    return _dump(FollowupPageSchema(), page)
