"""Warnings: the risk warnings of the user's regions with their evidence (masked as the API masks
it), filtered by rule, status and region, and the three actions of `server.warnings.service`:
refer to the monitoring workflow (the same referral the API opens), handle, dismiss with a
reason."""

from __future__ import annotations

import uuid
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from forms.register import RiskCause, find_register_field
from server.console.blueprint import bp
from server.console.i18n import current_language
from server.console.pages.review import (
    PAGE_SIZE,
    filter_arguments,
    one_line,
    pager,
    problems_by_field,
)
from server.console.session import console_page, current_user
from server.db import utcnow
from server.errors import NotFound, ValidationFailed
from server.monitoring.cases import household_places
from server.request_body import load_with
from server.runtime import runtime
from server.users.models import Role
from server.warnings import service
from server.warnings.models import WarningStatus
from server.warnings.rules import BY_RULE
from server.warnings.schemas import (
    DismissWarningSchema,
    HandleWarningSchema,
    ReferWarningSchema,
    WarningListQuerySchema,
)

STAFF = (Role.ADMIN, Role.SUPERVISOR)
FILTERS = ("rule", "status", "region")
ACTIONS = ("refer", "handle", "dismiss")


def evidence_label(name: str) -> str:
    """What a value a rule read is called: its register field's label, else its name."""
    for entity in ("household", "member"):
        spec = find_register_field(entity, name)
        if spec is not None:
            return spec.label(current_language())
    return name


def _rules() -> list[tuple[str, str]]:
    language = current_language()
    return [(code, rule.zh if language == "zh" else rule.en) for code, rule in BY_RULE.items()]


def _render(
    problems: dict[str, dict[str, list[str]]] | None = None,
    entered: dict[str, dict[str, Any]] | None = None,
) -> str:
    actor = current_user()
    args = filter_arguments(WarningListQuerySchema(), FILTERS)
    if "status" not in request.args:
        args["status"] = WarningStatus.OPEN.value
    filters = service.WarningFilters(
        region=args.get("region"),
        rule=args.get("rule"),
        status=args.get("status"),
        limit=PAGE_SIZE,
        offset=args.get("offset", 0),
    )
    with runtime().db.unit_of_work(write=False) as session:
        page = service.list_warnings(session, actor, filters)
        places = household_places(session, actor, [w.household_id for w in page.warnings])
    return render_template(
        "console/warnings.html",
        page=page,
        places=places,
        chosen=args,
        rules=_rules(),
        statuses=list(WarningStatus),
        status_labels={s.value: s for s in WarningStatus},
        causes=list(RiskCause),
        problems=problems or {},
        entered=entered or {},
        language=current_language(),
        one_line=one_line,
        evidence_label=evidence_label,
        here=request.full_path if request.query_string else request.path,
        pager=pager(page.total, filters.offset),
    )


@bp.get("/warnings")
@console_page(*STAFF)
def warnings() -> str:
    return _render()


def _back(target: str | None) -> str:
    """Back to the list the user came from (a warnings list of this site only)."""
    if target and target.startswith("/warnings") and "//" not in target and "\\" not in target:
        return target
    return url_for("console.warnings")


def _version(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 8 else None


@bp.post("/warnings/<uuid:warning_id>/<action>")
@console_page(*STAFF)
def act_on_warning(warning_id: uuid.UUID, action: str) -> Response | tuple[str, int]:
    if action not in ACTIONS:
        raise NotFound(f"no action {action} on a warning")
    rt = runtime()
    form = request.form
    text = form.get("text", "").strip()
    body: dict[str, Any] = {}
    version = _version(form.get("version", ""))
    if version is not None:
        body["version"] = version
    try:
        with rt.db.unit_of_work() as session:
            if action == "refer":
                if text:
                    body["note"] = text
                causes = form.getlist("causes")
                if causes:
                    body["causes"] = causes
                loaded = load_with(ReferWarningSchema(), body)
                service.refer_warning(
                    session,
                    current_user(),
                    warning_id,
                    causes=loaded.get("causes"),
                    note=loaded.get("note"),
                    version=loaded.get("version"),
                    now=utcnow(),
                    clock=rt.clock,
                    codec=rt.codec,
                )
                message = _("Referred: the household is in the monitoring workflow.")
            elif action == "handle":
                if text:
                    body["note"] = text
                loaded = load_with(HandleWarningSchema(), body)
                service.handle_warning(
                    session,
                    current_user(),
                    warning_id,
                    note=loaded.get("note"),
                    version=loaded.get("version"),
                    now=utcnow(),
                )
                message = _("The warning is marked as handled.")
            else:
                loaded = load_with(DismissWarningSchema(), {**body, "reason": text})
                service.dismiss_warning(
                    session,
                    current_user(),
                    warning_id,
                    reason=loaded["reason"],
                    version=loaded.get("version"),
                    now=utcnow(),
                )
                message = _("The warning was dismissed.")
    except ValidationFailed as exc:
        key = str(warning_id)
        page = _render(
            {key: problems_by_field(exc.errors)}, {key: {"action": action, "text": text}}
        )
        return page, 422
    flash(message, "ok")
    return redirect(_back(form.get("back")))
