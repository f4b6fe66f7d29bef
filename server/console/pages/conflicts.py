"""Conflicts: the queue of concurrent writes in the user's regions, both values side by side with
where each came from, resolved in one click (keep the winner, take the loser, or enter a value)
through `server.conflicts.service.resolve_conflict`, the API's service. Sensitive values stay
masked here (the API's audited reveal is not offered)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from forms.register import find_register_field
from server.conflicts import service
from server.conflicts.models import ConflictStatus
from server.conflicts.schemas import ConflictListQuerySchema, ResolveRequestSchema
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
from server.errors import ValidationFailed
from server.request_body import load_with
from server.runtime import runtime

FILTERS = ("status", "region", "entity", "field")


def shown_value(entity: str, field: str, value: Any) -> str:
    """A register value as people read it: the label of a choice, else the value on one line."""
    spec = find_register_field(entity, field)
    if spec is not None and spec.choices is not None and value is not None:
        labels = {member.value: member.label(current_language()) for member in spec.choices}
        if isinstance(value, list):
            return "、".join(labels.get(str(v), str(v)) for v in value)
        return labels.get(str(value), str(value))
    return one_line(value)


def field_label(entity: str, field: str) -> str:
    spec = find_register_field(entity, field)
    return spec.label(current_language()) if spec is not None else field


def _back(target: str | None) -> str:
    """Back to the list the user came from (a conflicts list of this site only)."""
    if target and target.startswith("/conflicts") and "//" not in target and "\\" not in target:
        return target
    return url_for("console.conflicts")


def _render(problems: dict[str, dict[str, list[str]]] | None = None) -> str:
    rt = runtime()
    args = filter_arguments(ConflictListQuerySchema(), FILTERS)
    if "status" not in request.args:
        args["status"] = ConflictStatus.OPEN.value
    filters = service.ConflictFilters(
        status=args.get("status"),
        region=args.get("region"),
        entity=args.get("entity"),
        field=args.get("field"),
        limit=PAGE_SIZE,
        offset=args.get("offset", 0),
    )
    with rt.db.unit_of_work(write=False) as session:
        page = service.list_conflicts(session, current_user(), rt.settings, rt.codec, filters)
    return render_template(
        "console/conflicts.html",
        page=page,
        chosen=args,
        statuses=list(ConflictStatus),
        problems=problems or {},
        shown_value=shown_value,
        field_label=field_label,
        here=request.full_path if request.query_string else request.path,
        pager=pager(page.total, filters.offset),
    )


@bp.get("/conflicts")
@console_page(*service.REVIEW_ROLES)
def conflicts() -> str:
    return _render()


@bp.post("/conflicts/<uuid:conflict_id>/resolve")
@console_page(*service.REVIEW_ROLES)
def resolve_conflict(conflict_id: uuid.UUID) -> Response | tuple[str, int]:
    rt = runtime()
    form = request.form
    body: dict[str, Any] = {}
    if form.get("choose"):
        body["choose"] = form["choose"]
    else:
        body["value"] = service.entered_value(
            form.get("entity", ""), form.get("field", ""), form.get("value", "")
        )
    try:
        loaded = load_with(ResolveRequestSchema(), body)
        with rt.db.unit_of_work() as session:
            resolved = service.resolve_conflict(
                session,
                current_user(),
                rt.codec,
                rt.clock,
                conflict_id,
                choose=loaded.get("choose"),
                value=loaded.get("value"),
            )
    except ValidationFailed as exc:
        return _render({str(conflict_id): problems_by_field(exc.errors)}), 422
    flash(
        _(
            "Resolved: %(field)s is now %(value)s.",
            field=field_label(resolved.entity, resolved.field),
            value=shown_value(
                resolved.entity,
                resolved.field,
                resolved.resolution.value if resolved.resolution else None,
            )
            or "—",
        ),
        "ok",
    )
    return redirect(_back(form.get("back")))
