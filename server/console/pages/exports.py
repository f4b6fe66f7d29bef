"""Exports, for supervisors and administrators: choose a dataset, its filters (region from the
user's own tree, type, status, form and version, changed since), a format and how choices are
written; download now (streamed by the export service) or run in the background as an export job
whose progress the jobs list shows, with the file to download once done. Revealing identity
numbers is offered only to roles that may, and is audited by the export service as in the API.

Calls `server.exports` services only; the query is the API's (`ExportQuerySchema`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as WerkzeugResponse

from forms.register import MonitoringStatus, MonitoringType
from server.console.blueprint import bp
from server.console.i18n import TIMEZONE
from server.console.session import console_page, current_user
from server.db import utcnow
from server.errors import AppError
from server.exports import jobs, service
from server.exports.formats import MEDIA_TYPES
from server.exports.job_models import ExportJobStatus
from server.exports.job_routes import job_file_response
from server.exports.registry import Dataset, all_datasets
from server.forms import service as forms_service
from server.regions.codes import RegionLevel, level_of
from server.regions.models import Region
from server.regions.service import regions_within
from server.runtime import runtime
from server.users.models import Role

STAFF = (Role.ADMIN, Role.SUPERVISOR)
# Indents a region under its parent in the region list (an ideographic space).
INDENT = "\u3000"
# Jobs the list shows (newest first).
JOBS_SHOWN = 20
# The fields of the export form that are passed on as the export's query parameters.
QUERY_FIELDS = (
    "region",
    "monitoring_type",
    "monitoring_status",
    "status",
    "form_id",
    "form_version",
    "year",
    "changed_since",
    "format",
    "labels",
    "bom",
    "reveal",
)
# The status words each dataset with a `status` filter knows (see server/exports/schemas.py).
STATUS_CHOICES = {
    "conflicts": ("open", "resolved"),
    "cases": ("open", "approved", "rejected"),
    "warnings": ("open", "referred", "handled", "dismissed"),
}
STATUS_LABELS = {
    "open": _l("Open"),
    "resolved": _l("Resolved"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "referred": _l("Referred"),
    "handled": _l("Handled"),
    "dismissed": _l("Dismissed"),
}
FORMAT_LABELS = {
    "csv": _l("CSV"),
    "xlsx": _l("Excel (XLSX)"),
    "jsonl": _l("JSON Lines"),
    "zip": _l("ZIP (CSV inside)"),
}
LABEL_CHOICES = {
    "code": _l("Codes"),
    "zh": _l("Chinese labels"),
    "en": _l("English labels"),
}
JOB_STATUS_LABELS = {
    ExportJobStatus.QUEUED: _l("Queued"),
    ExportJobStatus.RUNNING: _l("Running"),
    ExportJobStatus.SUCCEEDED: _l("Done"),
    ExportJobStatus.FAILED: _l("Failed"),
    ExportJobStatus.EXPIRED: _l("Expired"),
}


@bp.get("/exports")
@console_page(*STAFF)
def exports() -> str:
    return _exports_page(request.args)


@bp.get("/exports/jobs")
@console_page(*STAFF)
def export_jobs() -> str:
    """The jobs list alone, a page at a time (the page's script reloads it from here while jobs
    run)."""
    raw = request.args.get("offset", "0")
    offset = int(raw) if raw.isdigit() and len(raw) <= 9 else 0
    with runtime().db.unit_of_work(write=False) as session:
        found = jobs.list_jobs(
            session, current_user(), status=None, limit=JOBS_SHOWN + 1, offset=offset
        )
        return render_template(
            "console/exports/jobs.html",
            offset=offset,
            has_more=len(found) > JOBS_SHOWN,
            shown=JOBS_SHOWN,
            **_jobs_context(found[:JOBS_SHOWN], offset=offset),
        )


def _exports_page(
    values: Any, *, errors: list[dict[str, Any]] | None = None, error: str = ""
) -> str:
    rt = runtime()
    actor = current_user()
    datasets = all_datasets()
    name = values.get("dataset") or next(iter(datasets))
    dataset = datasets.get(name) or next(iter(datasets.values()))
    with rt.db.unit_of_work(write=False) as session:
        regions = regions_within(session, actor) if "region" in dataset.filters else []
        form_ids = (
            [o.form.form_id for o in forms_service.list_forms(session)]
            if "form_id" in dataset.filters
            else []
        )
        found = jobs.list_jobs(session, actor, status=None, limit=JOBS_SHOWN + 1, offset=0)
        return render_template(
            "console/exports/index.html",
            datasets=datasets,
            dataset=dataset,
            values=values,
            regions=_region_options(regions),
            form_ids=form_ids,
            monitoring_types=list(MonitoringType),
            monitoring_statuses=list(MonitoringStatus),
            status_choices=STATUS_CHOICES.get(dataset.name, ()),
            status_labels=STATUS_LABELS,
            format_labels=FORMAT_LABELS,
            label_choices=LABEL_CHOICES,
            may_reveal=actor.role.value in rt.settings.reveal_roles,
            errors=errors or [],
            error=error,
            has_more=len(found) > JOBS_SHOWN,
            **_jobs_context(found[:JOBS_SHOWN]),
        )


def _region_options(regions: list[Region]) -> list[tuple[str, str]]:
    """(code, text) of each region, indented by its depth below the shallowest one shown."""
    if not regions:
        return []
    levels = list(RegionLevel)
    top = min(levels.index(r.level) for r in regions)
    return [
        (r.code, f"{INDENT * (levels.index(level_of(r.code)) - top)}{r.name} ({r.code})")
        for r in regions
    ]


def _jobs_context(found: list[Any], *, offset: int = 0) -> dict[str, Any]:
    active = any(j.status in (ExportJobStatus.QUEUED, ExportJobStatus.RUNNING) for j in found)
    return {
        "jobs": found,
        "jobs_active": active,
        "job_status_labels": JOB_STATUS_LABELS,
        "jobs_source": url_for("console.export_jobs", offset=offset or None),
    }


def _export_query(values: Any) -> tuple[Dataset | None, dict[str, str]]:
    """The dataset named by the form and the export's query parameters (empty fields left out;
    a `datetime-local` time is read in the console's time zone)."""
    dataset = all_datasets().get(values.get("dataset", ""))
    query: dict[str, str] = {}
    for name in QUERY_FIELDS:
        value = values.get(name, "")
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        if name == "changed_since":
            value = _with_offset(value)
        query[name] = value
    if query.get("format") != "csv":
        query.pop("bom", None)
    if query.get("labels") == "code":
        query.pop("labels")
    return dataset, query


def _with_offset(value: str) -> str:
    """`2026-12-01T08:00` (a `datetime-local` field, Shanghai time) as RFC 3339; anything else
    is passed on for the schema to judge."""
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return value
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(TIMEZONE))
    return local.isoformat()


def _refused(values: Any, exc: AppError) -> tuple[str, int]:
    errors = exc.details.get("errors") if isinstance(exc.details.get("errors"), list) else []
    page = _exports_page(values, errors=errors, error=exc.message)
    return page, exc.code.http_status


@bp.post("/exports/download")
@console_page(*STAFF)
def export_download() -> Response | tuple[str, int]:
    """Download now: the export streamed as the API streams it. A POST, as it may reveal (an
    audited act) and carries the form's CSRF token, which never goes into a URL."""
    rt = runtime()
    dataset, query = _export_query(request.form)
    if dataset is None:
        return _exports_page(request.form, error=_("Choose a dataset.")), 422
    try:
        with rt.db.unit_of_work(write=query.get("reveal") == "sensitive") as session:
            plan = jobs.plan_query(session, current_user(), rt.settings, dataset.name, query)
    except AppError as exc:
        return _refused(request.form, exc)
    body = service.render(rt.db, rt.codec, plan.plans, plan.fmt, bom=plan.bom, header=plan.header)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    response = Response(stream_with_context(body), mimetype=MEDIA_TYPES[plan.fmt])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{dataset.name}-{stamp}.{jobs.EXTENSIONS[plan.fmt]}"'
    )
    return response


@bp.post("/exports/jobs")
@console_page(*STAFF)
def export_job_create() -> WerkzeugResponse | tuple[str, int]:
    """Run in the background: an export job, then back to the list that shows its progress."""
    rt = runtime()
    values = request.form
    dataset, query = _export_query(values)
    if dataset is None:
        return _exports_page(values, error=_("Choose a dataset.")), 422
    try:
        with rt.db.unit_of_work() as session:
            job = jobs.create_job(session, current_user(), rt.settings, dataset.name, query)
            job_id = job.id
    except AppError as exc:
        return _refused(values, exc)
    if rt.settings.export_job_threads:
        jobs.start_in_thread(rt, job_id)
    flash(_("The export runs in the background; it is listed below."), "ok")
    return redirect(url_for("console.exports", dataset=dataset.name, _anchor="jobs"))


@bp.get("/exports/jobs/<uuid:job_id>/file")
@console_page(*STAFF)
def export_job_file(job_id: uuid.UUID) -> Response:
    return job_file_response(current_user(), job_id)


@bp.post("/exports/jobs/<uuid:job_id>/remove")
@console_page(*STAFF)
def export_job_remove(job_id: uuid.UUID) -> WerkzeugResponse:
    rt = runtime()
    with rt.db.unit_of_work() as session:
        jobs.remove_job(session, current_user(), rt.settings, job_id)
    flash(_("The export job and its file are removed."), "ok")
    return redirect(url_for("console.exports", _anchor="jobs"))
