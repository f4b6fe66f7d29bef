"""HTTP: referrals (cadre screening, department warnings), exit cases, case steps, cases with
their history, and the workflow's settings per region. Thin: parse, call one service, dump."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.monitoring import cases, referrals, settings
from server.monitoring.schemas import (
    CaseListQuerySchema,
    CasePageSchema,
    CaseSchema,
    DepartmentReferralSchema,
    ExitCaseRequestSchema,
    ReferralResultSchema,
    ScreeningReferralSchema,
    SettingsQuerySchema,
    SettingsSchema,
    SettingsUpdateSchema,
    StepRequestSchema,
)
from server.monitoring.terms import CaseStage, ReferralChannel, StepDecision, member_of
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("monitoring", __name__, url_prefix="/api/v1/monitoring")

ANY = (Role.ADMIN, Role.SUPERVISOR, Role.COLLECTOR)
STAFF = (Role.ADMIN, Role.SUPERVISOR)


@bp.post("/referrals")
@authenticated(*ANY)
def refer_household() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(ScreeningReferralSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        result = referrals.refer(
            session,
            current_actor(),
            uuid.UUID(body["household_id"]),
            ReferralChannel.CADRE_SCREENING,
            body["causes"],
            note=body["note"],
            evidence=body.get("evidence") or {},
            now=utcnow(),
            clock=rt.clock,
            codec=rt.codec,
        )
    return ReferralResultSchema().dump(result), 201


@bp.post("/referrals/department")
@authenticated(Role.ADMIN)
def refer_from_department() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(DepartmentReferralSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        result = referrals.refer(
            session,
            current_actor(),
            uuid.UUID(body["household_id"]),
            ReferralChannel.DEPARTMENT_WARNING,
            body["causes"],
            note=body.get("note"),
            evidence=body["evidence"],
            department=body["department"],
            warning_id=uuid.UUID(body["warning_id"]) if "warning_id" in body else None,
            now=utcnow(),
            clock=rt.clock,
            codec=rt.codec,
        )
    return ReferralResultSchema().dump(result), 201


@bp.post("/exit-cases")
@authenticated(*ANY)
def open_exit_case() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(ExitCaseRequestSchema(), json_object(rt.settings.max_body_size))
    evidence = cases.ExitEvidence(
        income_months_above_line=body["income_months_above_line"],
        causes_resolved=body["causes_resolved"],
        measure_outcomes=body["measure_outcomes"],
        note=body.get("note"),
    )
    with rt.db.unit_of_work() as session:
        view = cases.open_exit_case(
            session,
            current_actor(),
            uuid.UUID(body["household_id"]),
            evidence,
            now=utcnow(),
            clock=rt.clock,
            codec=rt.codec,
        )
    return CaseSchema().dump(view), 201


@bp.get("/cases")
@authenticated(*ANY)
def list_cases() -> dict[str, Any]:
    rt = runtime()
    args = load_with(CaseListQuerySchema(), query_arguments())
    filters = cases.CaseFilters(
        stage=args.get("stage"),
        direction=args.get("direction"),
        outcome=args.get("outcome"),
        region=args.get("region"),
        household_id=uuid.UUID(args["household_id"]) if "household_id" in args else None,
        limit=args["limit"],
        offset=args["offset"],
    )
    with rt.db.unit_of_work(write=False) as session:
        page = cases.list_cases(session, current_actor(), filters)
    result: dict[str, Any] = CasePageSchema().dump(page)
    return result


@bp.get("/cases/<uuid:case_id>")
@authenticated(*ANY)
def get_case(case_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    with rt.db.unit_of_work(write=False) as session:
        view = cases.get_case(session, current_actor(), case_id)
    result: dict[str, Any] = CaseSchema().dump(view)
    return result


@bp.post("/cases/<uuid:case_id>/steps")
@authenticated(*ANY)
def take_step(case_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(StepRequestSchema(), json_object(rt.settings.max_body_size))
    request = cases.StepRequest(
        stage=member_of(CaseStage, body["stage"]),
        decision=member_of(StepDecision, body["decision"]),
        comment=body.get("comment"),
        attachments=body.get("attachments", ()),
        deliberation_date=body.get("deliberation_date"),
        notice_start=body.get("notice_start"),
        notice_end=body.get("notice_end"),
        objections=body.get("objections", ()),
        monitoring_type=body.get("monitoring_type"),
        risk_causes=body.get("risk_causes"),
    )
    with rt.db.unit_of_work() as session:
        view = cases.take_step(
            session, current_actor(), case_id, request, now=utcnow(), clock=rt.clock, codec=rt.codec
        )
    return CaseSchema().dump(view), 201


@bp.get("/settings")
@authenticated(*STAFF)
def get_settings() -> dict[str, Any]:
    rt = runtime()
    region = load_with(SettingsQuerySchema(), query_arguments()).get("region", settings.EVERYWHERE)
    with rt.db.unit_of_work(write=False) as session:
        values = settings.describe(session, region)
    return _settings_body(region, values)


@bp.put("/settings")
@authenticated(*STAFF)
def put_settings() -> dict[str, Any]:
    rt = runtime()
    body = load_with(SettingsUpdateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        settings.set_values(session, current_actor(), body["region"], body["values"])
        values = settings.describe(session, body["region"])
    return _settings_body(body["region"], values)


def _settings_body(region: str, values: list[settings.SettingValue]) -> dict[str, Any]:
    result: dict[str, Any] = SettingsSchema().dump(
        {
            "region": region,
            "settings": [
                {
                    "name": v.spec.name,
                    "value": v.value,
                    "default": v.spec.default,
                    "minimum": v.spec.minimum,
                    "maximum": v.spec.maximum,
                    "label": v.spec.zh,
                    "set_on": v.set_on,
                }
                for v in values
            ],
        }
    )
    return result
