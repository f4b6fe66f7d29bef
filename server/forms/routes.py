"""HTTP: forms for tablets (list, current definition and versions, with ETag/304) and for
administrators (drafts, validate, publish, retire, versions, diff, XLSForm import and download)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from forms.definition_schema import FORM_ID
from forms.xlsform_writer import XLSX_MEDIA_TYPE
from server.auth.guard import authenticated, current_actor
from server.errors import BadRequest, NotFound, UnsupportedMediaType
from server.forms import service
from server.forms.models import FormVersion
from server.forms.schemas import DiffQuerySchema, RetireRequestSchema
from server.forms.xlsform_export import XlsformExport, export_draft, export_version
from server.forms.xlsform_import import import_xlsform_draft
from server.request_body import json_object, load_with
from server.runtime import runtime
from server.users.models import Role
from sync_protocol.messages import MAX_INT32

bp = Blueprint("forms", __name__, url_prefix="/api/v1/forms")
_FORM_ID = re.compile(FORM_ID)
# Version numbers are 32-bit in the database: a larger one names no version (404, not an error).
_VERSION = f"int(min=1, max={MAX_INT32})"


@bp.url_value_preprocessor
def _known_form_id_shape(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # A form id that no form can have names nothing: 404 before it reaches a query (PostgreSQL
    # refuses NUL in text; an odd id would be a 500 there instead).
    form_id = (values or {}).get("form_id")
    if form_id is not None and not _FORM_ID.fullmatch(form_id):
        raise NotFound("no such form: form ids are 2-64 lower-case letters, digits or '_'")


def _version_summary(row: FormVersion) -> dict[str, Any]:
    return {
        "form_id": row.form_id,
        "version": row.version,
        "title": row.definition.get("title"),
        "hash": row.content_hash,
        "published_at": row.published_at.isoformat(),
        "retired_at": row.retired_at.isoformat() if row.retired_at else None,
    }


def _definition_response(row: FormVersion) -> Response:
    """The definition with its hash as ETag; `304` when the tablet already has it."""
    if request.if_none_match.contains(row.content_hash):
        response = Response(status=304)
    else:
        response = jsonify(row.definition)
    response.set_etag(row.content_hash)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("")
@authenticated()
def list_forms() -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        rows = service.list_published(session)
        forms = [
            {key: value for key, value in _version_summary(row).items() if key != "retired_at"}
            for row in rows
        ]
    return {"forms": forms}


@bp.get("/<form_id>")
@authenticated()
def get_current(form_id: str) -> Response:
    with runtime().db.unit_of_work(write=False) as session:
        return _definition_response(service.current_version(session, form_id))


@bp.get(f"/<form_id>/versions/<{_VERSION}:version>")
@authenticated()
def get_version(form_id: str, version: int) -> Response:
    with runtime().db.unit_of_work(write=False) as session:
        return _definition_response(service.get_version(session, form_id, version))


@bp.get("/<form_id>/versions")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def list_versions(form_id: str) -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        rows = service.list_versions(session, form_id)
        return {"form_id": form_id, "versions": [_version_summary(row) for row in rows]}


@bp.get("/<form_id>/diff")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def diff(form_id: str) -> dict[str, Any]:
    args = load_with(DiffQuerySchema(), request.args.to_dict())
    old, new = args["from"], args["to"]
    with runtime().db.unit_of_work(write=False) as session:
        changes = service.diff_versions(session, form_id, old, new)
    return {"form_id": form_id, "from": old, "to": new, "changes": changes.to_dict()}


@bp.post("")
@authenticated(Role.ADMIN)
def create_form() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = json_object(rt.settings.max_body_size)
    with rt.db.unit_of_work() as session:
        report = service.create_form(session, current_actor(), body)
    return report.to_dict(), 201


@bp.get("/<form_id>/draft")
@authenticated(Role.ADMIN)
def get_draft(form_id: str) -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        return service.get_draft(session, form_id)


@bp.put("/<form_id>/draft")
@authenticated(Role.ADMIN)
def replace_draft(form_id: str) -> dict[str, Any]:
    rt = runtime()
    body = json_object(rt.settings.max_body_size)
    with rt.db.unit_of_work() as session:
        return service.replace_draft(session, current_actor(), form_id, body).to_dict()


@bp.post("/<form_id>/draft/validate")
@authenticated(Role.ADMIN)
def validate_draft(form_id: str) -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        return service.validate_draft(session, form_id).to_dict()


@bp.post("/<form_id>/publish")
@authenticated(Role.ADMIN)
def publish(form_id: str) -> dict[str, Any]:
    with runtime().db.unit_of_work() as session:
        published = service.publish(session, current_actor(), form_id)
    return {
        "form_id": published.form_id,
        "version": published.version,
        "hash": published.hash,
        "changes": published.changes.to_dict() if published.changes else None,
    }


@bp.post("/<form_id>/retire")
@authenticated(Role.ADMIN)
def retire(form_id: str) -> dict[str, Any]:
    rt = runtime()
    version = None
    if request.content_length:
        version = load_with(RetireRequestSchema(), json_object(rt.settings.max_body_size)).get(
            "version"
        )
    with rt.db.unit_of_work() as session:
        retired = service.retire(session, current_actor(), form_id, version)
    return {
        "form_id": form_id,
        "retired_versions": retired,
        "grace_days": rt.settings.form_retire_grace_days,
    }


@bp.post("/import/xlsform")
@authenticated(Role.ADMIN)
def import_xlsform() -> tuple[dict[str, Any], int]:
    rt = runtime()
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("upload the XLSForm as multipart/form-data, field 'file'")
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("multipart field 'file' is missing")
    content = upload.read(rt.settings.max_body_size + 1)
    choices_files = {
        extra.filename: extra.read(rt.settings.max_body_size + 1)
        for extra in request.files.getlist("choices_file")
        if extra.filename
    }
    with rt.db.unit_of_work() as session:
        report, created = import_xlsform_draft(
            session,
            current_actor(),
            content,
            filename=upload.filename or None,
            choices_files=choices_files,
        )
    return report.to_dict(), 201 if created else 200


def _workbook_response(export: XlsformExport) -> Response:
    response = Response(export.content, mimetype=XLSX_MEDIA_TYPE)
    response.headers.set("Content-Disposition", "attachment", filename=export.filename)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(f"/<form_id>/versions/<{_VERSION}:version>/xlsform")
@authenticated(Role.ADMIN, Role.SUPERVISOR)
def export_version_xlsform(form_id: str, version: int) -> Response:
    with runtime().db.unit_of_work(write=False) as session:
        return _workbook_response(export_version(session, form_id, version))


@bp.get("/<form_id>/draft/xlsform")
@authenticated(Role.ADMIN)
def export_draft_xlsform(form_id: str) -> Response:
    with runtime().db.unit_of_work(write=False) as session:
        return _workbook_response(export_draft(session, form_id))
