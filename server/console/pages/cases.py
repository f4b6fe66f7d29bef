"""Cases: the review queues of the user's level and a case with its evidence, where the user takes
the step they may take. Steps go through `server.monitoring.cases.take_step`, the API's service,
which decides who may take what (`chain.may_take`); the page only hides a form nobody could use.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from forms.register import MonitoringType, RiskCause
from server.console.blueprint import bp
from server.console.i18n import current_language
from server.console.pages.review import PAGE_SIZE, filter_arguments, pager, problems_by_field
from server.console.session import console_page, current_user
from server.db import utcnow
from server.errors import ValidationFailed
from server.monitoring import cases, chain
from server.monitoring.schemas import CaseListQuerySchema, StepRequestSchema
from server.monitoring.terms import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    ReferralChannel,
    StepDecision,
    member_of,
)
from server.request_body import load_with
from server.runtime import runtime
from server.users.models import Role

STAFF = (Role.ADMIN, Role.SUPERVISOR)
FILTERS = ("stage", "direction", "outcome", "region")
# What the stored details of a step or an exit case's evidence are called on the page.
DETAIL_LABELS: dict[str, Any] = {
    "visit": _l("Visit"),
    "collected_at": _l("Collected at"),
    "deliberation_date": _l("Deliberation date"),
    "notice_start": _l("Public notice from"),
    "notice_end": _l("Public notice until"),
    "notice_days": _l("Notice days"),
    "objections": _l("Objections"),
    "monitoring_type": _l("Monitoring type"),
    "risk_causes": _l("Risk causes"),
    "income_months_above_line": _l("Months of income above the line"),
    "causes_resolved": _l("Causes resolved"),
    "measure_outcomes": _l("Outcomes of the measures"),
    "note": _l("Note"),
}
CAUSE_LABELS = {cause.value: cause for cause in RiskCause}
TYPE_LABELS = {kind.value: kind for kind in MonitoringType}


def _own_stages() -> tuple[CaseStage, ...]:
    actor = current_user()
    return chain.stages_taken_by(actor.role.value, actor.region_codes)


@bp.get("/cases", endpoint="cases")
@console_page(*STAFF)
def cases_page() -> str:
    actor = current_user()
    stages = _own_stages()
    args = filter_arguments(CaseListQuerySchema(), FILTERS)
    channel = request.args.get("channel", "").strip() or None
    if channel is not None and channel not in ReferralChannel.codes():
        raise ValidationFailed(
            "bad channel",
            [{"path": "channel", "code": "invalid_choice", "message": "a referral channel"}],
        )
    # No filter chosen (the menu's link): the user's own queue, open cases waiting at the
    # stage of their level.
    if not request.args and stages:
        args = {"stage": stages[-1].value, "outcome": CaseOutcome.OPEN.value}
    filters = cases.CaseFilters(
        stage=args.get("stage"),
        direction=args.get("direction"),
        outcome=args.get("outcome"),
        region=args.get("region"),
        channel=channel,
        limit=PAGE_SIZE,
        offset=args.get("offset", 0),
    )
    with runtime().db.unit_of_work(write=False) as session:
        page = cases.list_cases(session, actor, filters)
        places = cases.household_places(session, actor, [c.household_id for c in page.cases])
    return render_template(
        "console/cases.html",
        page=page,
        places=places,
        chosen={**args, "channel": channel or ""},
        queues=[stage for stage in stages if stage is not CaseStage.VERIFICATION] or stages,
        stages=list(CaseStage),
        directions=list(CaseDirection),
        outcomes=list(CaseOutcome),
        channels=list(ReferralChannel),
        pager=pager(page.total, filters.offset, filters={**args, "channel": channel}),
    )


def _decisions(view: cases.CaseView) -> list[StepDecision]:
    """The decisions the user may take on this case now (none if they may not take its stage).
    Approving a verification is the collector's visit, never a form."""
    actor = current_user()
    if view.outcome is not CaseOutcome.OPEN:
        return []
    if chain.may_take(actor.role.value, actor.region_codes, view.stage, view.village_code):
        return []
    return [
        d
        for d in chain.decisions_at(view.stage)
        if not (view.stage is CaseStage.VERIFICATION and d is StepDecision.APPROVE)
    ]


def _render_case(
    case_id: uuid.UUID,
    *,
    problems: dict[str, list[str]] | None = None,
    entered: MultiDict[str, str] | None = None,
) -> str:
    actor = current_user()
    with runtime().db.unit_of_work(write=False) as session:
        view = cases.get_case(session, actor, case_id)
        place = cases.household_places(session, actor, [view.household_id]).get(view.household_id)
    rule = chain.RULES.get(view.stage)
    return render_template(
        "console/case.html",
        case=view,
        place=place,
        rule=rule,
        decisions=_decisions(view),
        problems=problems or {},
        entered=entered or MultiDict(),
        verifications=[s for s in view.steps if s.stage is CaseStage.VERIFICATION],
        deliberations=[
            s
            for s in view.steps
            if s.stage is CaseStage.VILLAGE_REVIEW and s.details.get("notice_start")
        ],
        detail_labels=DETAIL_LABELS,
        cause_labels=CAUSE_LABELS,
        type_labels=TYPE_LABELS,
        monitoring_types=list(MonitoringType),
        causes=list(RiskCause),
        channel_labels={c.value: c for c in ReferralChannel},
        needs_notice=view.stage is CaseStage.VILLAGE_REVIEW,
        needs_type=view.stage is CaseStage.COUNTY_REVIEW and view.direction is CaseDirection.ENTRY,
    )


@bp.get("/cases/<uuid:case_id>")
@console_page(*STAFF)
def case(case_id: uuid.UUID) -> str:
    return _render_case(case_id)


def _step_body(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form's answers as the API's step request (blank fields left out)."""
    body: dict[str, Any] = {"stage": form.get("stage", ""), "decision": form.get("decision", "")}
    for name in ("comment", "deliberation_date", "notice_start", "notice_end", "monitoring_type"):
        value = form.get(name, "").strip()
        if value:
            body[name] = value
    objections = [line.strip() for line in form.get("objections", "").splitlines() if line.strip()]
    if objections:
        body["objections"] = objections
    causes = form.getlist("risk_causes")
    if causes:
        body["risk_causes"] = causes
    return body


@bp.post("/cases/<uuid:case_id>")
@console_page(*STAFF)
def take_case_step(case_id: uuid.UUID) -> Response | tuple[str, int]:
    rt = runtime()
    try:
        body = load_with(StepRequestSchema(), _step_body(request.form))
        step = cases.StepRequest(
            stage=member_of(CaseStage, body["stage"]),
            decision=member_of(StepDecision, body["decision"]),
            comment=body.get("comment"),
            deliberation_date=body.get("deliberation_date"),
            notice_start=body.get("notice_start"),
            notice_end=body.get("notice_end"),
            objections=body.get("objections", ()),
            monitoring_type=body.get("monitoring_type"),
            risk_causes=body.get("risk_causes"),
        )
        with rt.db.unit_of_work() as session:
            view = cases.take_step(
                session,
                current_user(),
                case_id,
                step,
                now=utcnow(),
                clock=rt.clock,
                codec=rt.codec,
            )
    except ValidationFailed as exc:
        page = _render_case(case_id, problems=problems_by_field(exc.errors), entered=request.form)
        return page, 422
    flash(
        _(
            "%(decision)s: the case is now at %(stage)s.",
            decision=step.decision.label(current_language()),
            stage=view.stage.label(current_language()),
        ),
        "ok",
    )
    return redirect(url_for("console.case", case_id=case_id))
