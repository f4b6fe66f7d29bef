"""HTTP: department sources (create, list, change), file uploads to import, and the import
history — all for admins."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.departments import history, sources
from server.departments.importing import import_content
from server.departments.models import ImportOrigin, ImportStatus
from server.departments.reading import MAX_FILE_BYTES
from server.departments.schemas import (
    ImportListQuerySchema,
    ImportPageSchema,
    ImportSchema,
    PageQuerySchema,
    SourceCreateSchema,
    SourcePageSchema,
    SourceSchema,
    SourceUpdateSchema,
)
from server.errors import BadRequest, TooLarge, UnsupportedMediaType
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("departments", __name__, url_prefix="/api/v1/departments")


def _dump(schema: Any, value: Any) -> dict[str, Any]:
    result: dict[str, Any] = schema.dump(value)
    return result


@bp.get("/sources")
@authenticated(Role.ADMIN)
def list_sources() -> dict[str, Any]:
    args = load_with(PageQuerySchema(), query_arguments())
    with runtime().db.unit_of_work(write=False) as session:
        page = sources.list_sources(session, current_actor(), args["limit"], args["offset"])
    return _dump(SourcePageSchema(), page)


@bp.post("/sources")
@authenticated(Role.ADMIN)
def create_source() -> tuple[dict[str, Any], int]:
    rt = runtime()
    body = load_with(SourceCreateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        source = sources.create_source(session, current_actor(), body)
    return _dump(SourceSchema(), source), 201


@bp.patch("/sources/<uuid:source_id>")
@authenticated(Role.ADMIN)
def update_source(source_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(SourceUpdateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        source = sources.update_source(session, current_actor(), source_id, body)
    return _dump(SourceSchema(), source)


@bp.post("/sources/<uuid:source_id>/imports")
@authenticated(Role.ADMIN)
def upload_import(source_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    rt = runtime()
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("upload the file as multipart/form-data, field 'file'")
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("multipart field 'file' is missing")
    content = upload.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise TooLarge(
            "the file is larger than the import limit", details={"limit": MAX_FILE_BYTES}
        )
    with rt.db.unit_of_work() as session:
        source = sources.get_source(session, source_id)
        outcome = import_content(
            session,
            current_actor(),
            rt.codec,
            source,
            content,
            origin=ImportOrigin.UPLOAD,
            filename=upload.filename or None,
            now=utcnow(),
        )
        answer = {**_dump(ImportSchema(), outcome.record), "unchanged": outcome.unchanged}
    return answer, 200 if outcome.unchanged else 201


@bp.get("/imports")
@authenticated(Role.ADMIN)
def list_imports() -> dict[str, Any]:
    args = load_with(ImportListQuerySchema(), query_arguments())
    status = args.get("status")
    source_id = args.get("source_id")
    with runtime().db.unit_of_work(write=False) as session:
        page = history.list_imports(
            session,
            current_actor(),
            source_id=uuid.UUID(source_id) if source_id else None,
            status=ImportStatus(status) if status else None,
            limit=args["limit"],
            offset=args["offset"],
        )
    return _dump(ImportPageSchema(), page)


@bp.get("/imports/<uuid:import_id>")
@authenticated(Role.ADMIN)
def get_import(import_id: uuid.UUID) -> dict[str, Any]:
    with runtime().db.unit_of_work(write=False) as session:
        record = history.get_import(session, current_actor(), import_id)
        answer = {**_dump(ImportSchema(), record), "unchanged": False}
    return answer
