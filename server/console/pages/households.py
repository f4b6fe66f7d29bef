"""The register: search households (`search_households`, the API's service), and one household's
page — each current value with who, when and which visit set it, members (sensitive values masked
unless revealed, which is audited), the timeline, the visits' files, the open case and a referral
form. Pages only lay out what the services return."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as WerkzeugResponse
from werkzeug.wsgi import wrap_file

from forms.register import (
    HOUSEHOLD,
    MEMBER,
    MonitoringStatus,
    MonitoringType,
    RegisterField,
    RiskCause,
)
from server.attachments import service as attachments
from server.attachments.store import store_for
from server.console.blueprint import bp
from server.console.i18n import current_language
from server.console.session import console_page, current_user
from server.db import utcnow
from server.errors import Conflict, Forbidden, ValidationFailed
from server.households import provenance, search, service
from server.households.schemas import HouseholdSearchQuerySchema
from server.monitoring import cases, chain, referrals, timeline
from server.monitoring.schemas import ExitCaseRequestSchema, ScreeningReferralSchema
from server.monitoring.terms import (
    CaseOutcome,
    CaseStage,
    ReferralChannel,
    StepDecision,
    member_of,
)
from server.regions import service as regions
from server.regions.codes import RegionLevel
from server.request_body import load_with
from server.runtime import runtime

# Member fields about health: shown only to the roles that may reveal, on request (audited).
HEALTH_FIELDS = ("health", "disability")
HIDDEN = "***"
TIMELINE_PAGE = 20
SEARCH_FIELDS = ("household_no", "head_name", "region", "status", "monitoring_type", "cursor")
MEMBER_COLUMNS = (
    "name",
    "relation",
    "sex",
    "birth_date",
    "id_number",
    "phone",
    "health",
    "disability",
    "labor_capacity",
    "insured",
    "employment",
)
# Household fields the page shows in its own header, not in the table of values.
HEADER_FIELDS = frozenset({"head_member_id", "village_code", "household_no", "deleted"})
# The form fields a problem may name, as the forms label them.
FIELD_LABELS: Mapping[str, Any] = {
    "household_no": _l("Household number"),
    "head_name": _l("Head of household"),
    "region": _l("Township or village"),
    "status": _l("Monitoring status"),
    "monitoring_type": _l("Monitoring type"),
    "id_number": _l("Identity number"),
    "cursor": _l("Pages"),
    "causes": _l("Risk causes"),
    "note": _l("What the screening found"),
    "income_months_above_line": _l("Months with income stably above the monitoring line"),
    "causes_resolved": _l("Risk causes now resolved"),
    "measure_outcomes": _l("What the measures achieved"),
}
EVENT_KINDS: Mapping[str, Any] = {
    "visit": _l("Visit received"),
    "change": _l("Register changed"),
    "conflict": _l("Conflict found"),
    "conflict_resolved": _l("Conflict resolved"),
    "referral": _l("Referred"),
    "case_step": _l("Case step"),
    "help": _l("Help recorded"),
}


@dataclass(frozen=True)
class ShownValue:
    """One field of the page: its label, the value as text, and where it came from."""

    name: str
    label: str
    value: str
    source: provenance.Provenance | None


def _shown(field: RegisterField | None, value: Any, language: str) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    if field is not None and field.choices is not None:
        labels = {member.value: member.label(language) for member in field.choices}
        if isinstance(value, list):
            return "、".join(labels.get(str(v), str(v)) for v in value)
        return labels.get(str(value), str(value))
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return str(value)


def _risk_causes(codes: list[str], language: str) -> str:
    labels = {cause.value: cause.label(language) for cause in RiskCause}
    return "、".join(labels.get(c, c) for c in codes)


def _values(
    fields: Mapping[str, Any],
    spec_fields: Mapping[str, RegisterField],
    sources: Mapping[str, provenance.Provenance],
    language: str,
    *,
    skip: frozenset[str] = frozenset(),
) -> list[ShownValue]:
    shown = []
    for name, value in fields.items():
        if name in skip:
            continue
        field = spec_fields.get(name)
        if name == "risk_causes" and isinstance(value, list):
            text = _risk_causes(value, language)
        else:
            text = _shown(field, value, language)
        label = field.label(language) if field is not None else name
        shown.append(ShownValue(name, label, text, sources.get(name)))
    return shown


def _grouped(values: Iterable[ShownValue]) -> list[tuple[provenance.Provenance, list[str]]]:
    """The writes that set a member's shown values, each with the labels of its fields."""
    groups: dict[provenance.Provenance, list[str]] = {}
    for value in values:
        if value.source is not None and value.value:
            groups.setdefault(value.source, []).append(value.label)
    return sorted(groups.items(), key=lambda item: item[0].at or utcnow(), reverse=True)


# --- search ---------------------------------------------------------------------------------


def _search_form(
    arguments: Mapping[str, str],
    page: search.HouseholdSearchPage | None,
    errors: list[dict[str, Any]],
    *,
    by_id_number: bool = False,
    status: int = 200,
) -> tuple[str, int]:
    actor = current_user()
    with runtime().db.unit_of_work(write=False) as session:
        places = regions.regions_within(session, actor, (RegionLevel.TOWNSHIP, RegionLevel.VILLAGE))
    criteria = {k: v for k, v in arguments.items() if k != "cursor"}
    base = url_for("console.households")
    first_url = f"{base}?{urlencode(criteria)}" if "cursor" in arguments else None
    next_url = None
    if page is not None and page.next_cursor and not by_id_number:
        next_url = f"{base}?{urlencode({**criteria, 'cursor': page.next_cursor})}"
    html = render_template(
        "console/households.html",
        first_url=first_url,
        next_url=next_url,
        args=arguments,
        page=page,
        errors=errors,
        places=places,
        statuses=list(MonitoringStatus),
        types=list(MonitoringType),
        by_id_number=by_id_number,
        searched=page is not None,
    )
    return html, status


def _run_search(arguments: Mapping[str, str]) -> search.HouseholdSearchPage:
    rt = runtime()
    args = load_with(HouseholdSearchQuerySchema(), arguments)
    query = search.HouseholdSearch(
        household_no=args.get("household_no"),
        head_name=args.get("head_name"),
        region=args.get("region"),
        status=member_of(MonitoringStatus, args["status"]) if "status" in args else None,
        monitoring_type=(
            member_of(MonitoringType, args["monitoring_type"])
            if "monitoring_type" in args
            else None
        ),
        id_number=args.get("id_number"),
        limit=args["limit"],
        cursor=args.get("cursor"),
    )
    with rt.db.unit_of_work(write=query.id_number is not None) as session:
        return search.search_households(session, current_user(), rt.codec, query)


@bp.get("/households")
@console_page()
def households() -> tuple[str, int]:
    arguments = {k: v.strip() for k, v in request.args.items() if k in SEARCH_FIELDS and v.strip()}
    try:
        page = _run_search(arguments)
    except ValidationFailed as exc:
        return _search_form(arguments, None, exc.errors, status=422)
    return _search_form(arguments, page, [])


@bp.post("/households/lookup")
@console_page()
def household_lookup() -> tuple[str, int]:
    """Find households by a member's identity number: sent in the body, never in the address
    (history, logs), looked up through its keyed hash and audited by the service."""
    number = request.form.get("id_number", "").strip()
    if not number:
        problem = {"path": "id_number", "message": _("Enter an identity number.")}
        return _search_form({}, None, [problem], by_id_number=True, status=422)
    try:
        page = _run_search({"id_number": number, "limit": "50"})
    except ValidationFailed as exc:
        return _search_form({}, None, exc.errors, by_id_number=True, status=422)
    return _search_form({}, page, [], by_id_number=True)


# --- one household ----------------------------------------------------------------------------


def _household_page(
    household_id: uuid.UUID,
    *,
    reveal: bool = False,
    timeline_cursor: str | None = None,
    referral_errors: list[dict[str, Any]] | None = None,
    referral_form: Mapping[str, Any] | None = None,
    exit_errors: list[dict[str, Any]] | None = None,
    exit_form: Mapping[str, Any] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    rt = runtime()
    actor = current_user()
    language = current_language()
    may_reveal = actor.role.value in rt.settings.reveal_roles
    if reveal and not may_reveal:
        raise Forbidden(_("Your role may not see identity numbers, phones or health in full."))
    with rt.db.unit_of_work(write=reveal) as session:
        found = service.get_household(
            session,
            actor,
            rt.settings,
            rt.codec,
            household_id,
            reveal=reveal,
            also_revealed=HEALTH_FIELDS,
        )
        sources = provenance.field_provenance(session, household_id)
        events = timeline.household_timeline(
            session, actor, household_id, cursor=timeline_cursor, limit=TIMELINE_PAGE
        )
        open_cases = cases.list_cases(
            session,
            actor,
            cases.CaseFilters(household_id=household_id, outcome=CaseOutcome.OPEN.value, limit=5),
        ).cases
        files = provenance.household_files(session, household_id)
        village = regions.region_path(session, actor, found["fields"]["village_code"])
    fields = found["fields"]
    members = []
    for member in found["members"]:
        if member["deleted"]:
            continue
        values = dict(member["fields"])
        if not reveal:
            for name in HEALTH_FIELDS:
                if values.get(name) is not None:
                    values[name] = HIDDEN
        member_sources = sources.get(uuid.UUID(member["id"]), {})
        shown = {
            v.name: v
            for v in _values(values, MEMBER.fields, member_sources, language)
            if v.name in MEMBER_COLUMNS
        }
        members.append({"id": member["id"], "values": shown, "origins": _grouped(shown.values())})
    # The exit chain starts at a verification visit: offered to whoever may take that step here.
    may_open_exit = (
        fields["monitoring_status"] == MonitoringStatus.MONITORED.value
        and not open_cases
        and chain.may_take(
            actor.role.value, actor.region_codes, CaseStage.VERIFICATION, fields["village_code"]
        )
        is None
    )
    head_id = fields.get("head_member_id")
    head = next((m for m in members if m["id"] == head_id), None)
    household_sources = sources.get(household_id, {})
    html = render_template(
        "console/household.html",
        household=found,
        fields=fields,
        household_status=member_of(MonitoringStatus, fields["monitoring_status"]),
        head=head,
        village=village,
        values=_values(fields, HOUSEHOLD.fields, household_sources, language, skip=HEADER_FIELDS),
        members=members,
        member_columns=[(name, MEMBER.fields[name].label(language)) for name in MEMBER_COLUMNS],
        events=events,
        event_kinds=EVENT_KINDS,
        describe=lambda event: _describe(event, language),
        open_cases=open_cases,
        files=files,
        may_download=actor.role in attachments.DOWNLOAD_ROLES,
        reveal=reveal,
        may_reveal=may_reveal,
        causes=list(RiskCause),
        referral_errors=referral_errors or [],
        referral_form=referral_form or {},
        may_open_exit=may_open_exit,
        exit_errors=exit_errors or [],
        exit_form=exit_form or {},
        case_link=_case_link,
    )
    return html, status


def _case_link(case_id: uuid.UUID) -> str | None:
    """The console's page of a case, where the cases area provides one."""
    from flask import current_app

    if "console.case" in current_app.view_functions:
        return url_for("console.case", case_id=case_id)
    if "console.cases" in current_app.view_functions:
        return url_for("console.cases")
    return None


def _describe(event: timeline.TimelineEvent, language: str) -> str:
    """One line saying what a timeline event did, in the page's language."""
    data = event.data
    if event.kind == "change":
        spec = HOUSEHOLD if data.get("entity") == "household" else MEMBER
        parts = []
        for name, value in (data.get("fields") or {}).items():
            if name == "household_id":
                continue
            field = spec.fields.get(name)
            if name in HEALTH_FIELDS:
                value = HIDDEN
            elif name == "risk_causes" and isinstance(value, list):
                value = _risk_causes(value, language)
            else:
                value = _shown(field, value, language)
            parts.append(f"{field.label(language) if field else name}: {value}")
        return "; ".join(parts)
    if event.kind == "visit":
        return f"{data.get('form_id')} v{data.get('form_version')}"
    if event.kind == "referral":
        channel = member_of(ReferralChannel, data["channel"]).label(language)
        return f"{channel} · {_risk_causes(list(data.get('causes') or []), language)}"
    if event.kind == "case_step":
        stage = member_of(CaseStage, data["stage"]).label(language)
        decision = member_of(StepDecision, data["decision"]).label(language)
        comment = data.get("comment") or ""
        return f"{stage} · {decision}" + (f" · {comment}" if comment else "")
    if event.kind in ("conflict", "conflict_resolved"):
        spec = HOUSEHOLD if data.get("entity") == "household" else MEMBER
        field = spec.fields.get(data.get("field", ""))
        name = field.label(language) if field else data.get("field", "")
        if data.get("field") in HEALTH_FIELDS:
            return f"{name}: {HIDDEN} / {HIDDEN}"
        return f"{name}: {data['winner']['value']} / {data['loser']['value']}"
    if event.kind == "help":
        return str(data.get("action", ""))
    return ""


@bp.get("/households/<uuid:household_id>")
@console_page()
def household(household_id: uuid.UUID) -> tuple[str, int]:
    reveal = request.args.get("reveal") == "1"
    cursor = request.args.get("timeline") or None
    return _household_page(household_id, reveal=reveal, timeline_cursor=cursor)


def _problems(exc: ValidationFailed | Conflict) -> list[dict[str, Any]]:
    """What to show next to a form: each invalid field, or the conflict's message."""
    if isinstance(exc, ValidationFailed):
        return exc.errors
    return [{"path": "", "message": exc.message}]


@bp.app_template_filter("field_label")
def _field_label(path: str) -> str:
    """The label of the form field a problem names (its path when the form has no such field)."""
    return str(FIELD_LABELS.get(path.split(".", 1)[0].split("[", 1)[0], path))


@bp.post("/households/<uuid:household_id>/refer")
@console_page()
def refer_household(household_id: uuid.UUID) -> WerkzeugResponse | tuple[str, int]:
    """Refer the household to the monitoring workflow (a cadre's screening), as the API does."""
    rt = runtime()
    form = {
        "household_id": str(household_id),
        "causes": request.form.getlist("causes"),
        "note": request.form.get("note", "").strip(),
    }
    try:
        body = load_with(ScreeningReferralSchema(), form)
        with rt.db.unit_of_work() as session:
            result = referrals.refer(
                session,
                current_user(),
                household_id,
                ReferralChannel.CADRE_SCREENING,
                body["causes"],
                note=body["note"],
                evidence={},
                now=utcnow(),
                clock=rt.clock,
                codec=rt.codec,
            )
    except (ValidationFailed, Conflict) as exc:
        return _household_page(
            household_id,
            referral_errors=_problems(exc),
            referral_form=form,
            status=exc.code.http_status,
        )
    if result.opened_case:
        flash(_("Referred: a new case waits for the door-to-door verification."), "ok")
    else:
        flash(_("Referred: the referral was added to the household's case as evidence."), "ok")
    return redirect(url_for("console.household", household_id=household_id))


@bp.post("/households/<uuid:household_id>/exit")
@console_page()
def open_exit_case(household_id: uuid.UUID) -> WerkzeugResponse | tuple[str, int]:
    """Open the household's exit case (风险消除) with its evidence, as the API does."""
    rt = runtime()
    months = request.form.get("income_months_above_line", "").strip()
    form: dict[str, Any] = {
        "household_id": str(household_id),
        "income_months_above_line": int(months) if months.isdigit() else months,
        "causes_resolved": request.form.getlist("causes_resolved"),
        "measure_outcomes": request.form.get("measure_outcomes", "").strip(),
    }
    note = request.form.get("exit_note", "").strip()
    if note:
        form["note"] = note
    try:
        body = load_with(ExitCaseRequestSchema(), form)
        evidence = cases.ExitEvidence(
            income_months_above_line=body["income_months_above_line"],
            causes_resolved=body["causes_resolved"],
            measure_outcomes=body["measure_outcomes"],
            note=body.get("note"),
        )
        with rt.db.unit_of_work() as session:
            cases.open_exit_case(
                session,
                current_user(),
                household_id,
                evidence,
                now=utcnow(),
                clock=rt.clock,
                codec=rt.codec,
            )
    except (ValidationFailed, Conflict) as exc:
        return _household_page(
            household_id,
            exit_errors=_problems(exc),
            exit_form=form,
            status=exc.code.http_status,
        )
    flash(_("The exit case is open: it waits for the verification visit."), "ok")
    return redirect(url_for("console.household", household_id=household_id))


@bp.get("/households/<uuid:household_id>/files/<digest>")
@console_page()
def household_file(household_id: uuid.UUID, digest: str) -> Response:
    """A file a visit sent, with the attachment download's checks and audit."""
    rt = runtime()
    actor = current_user()
    store = store_for(rt.settings)
    with rt.db.unit_of_work() as session:
        service.get_household(session, actor, rt.settings, rt.codec, household_id)
        download = attachments.open_download(session, actor, store, digest, audited=True)
    response = Response(
        wrap_file(request.environ, attachments.open_content(store, download)),
        content_type=download.content_type,
        headers={
            "Cache-Control": "private, no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
        direct_passthrough=True,
    )
    response.content_length = download.size
    return response
