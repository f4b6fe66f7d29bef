"""HTTP: background export jobs. Thin: parse, call the jobs service in one unit of work, then (for
a new job) start it in a thread of this process when EXPORT_JOB_THREADS is on."""

from __future__ import annotations

import os
import uuid
from typing import Any

from flask import Blueprint, Response, request, url_for
from werkzeug.wsgi import wrap_file

from server.auth.actor import Actor
from server.auth.guard import authenticated, current_actor
from server.exports import jobs
from server.exports.formats import MEDIA_TYPES
from server.exports.job_models import ExportJob, ExportJobStatus
from server.exports.job_schemas import (
    ExportJobListQuerySchema,
    ExportJobListSchema,
    ExportJobSchema,
)
from server.request_body import load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("export_jobs", __name__, url_prefix="/api/v1/exports")

STAFF = (Role.ADMIN, Role.SUPERVISOR)


def _document(job: ExportJob) -> dict[str, Any]:
    document: dict[str, Any] = ExportJobSchema().dump(job)
    document["id"] = str(job.id)
    document["file"] = (
        url_for("export_jobs.download_job", job_id=job.id)
        if job.status is ExportJobStatus.SUCCEEDED
        else None
    )
    return document


@bp.post("/<dataset>/jobs")
@authenticated(*STAFF)
def create_job(dataset: str) -> tuple[dict[str, Any], int]:
    rt = runtime()
    query = query_arguments()
    with rt.db.unit_of_work() as session:
        job = jobs.create_job(session, current_actor(), rt.settings, dataset, query)
        document = _document(job)
    if rt.settings.export_job_threads:
        jobs.start_in_thread(rt, job.id)
    return document, 202


@bp.get("/jobs")
@authenticated(*STAFF)
def list_jobs() -> dict[str, Any]:
    args = load_with(ExportJobListQuerySchema(), query_arguments())
    rt = runtime()
    with rt.db.unit_of_work(write=False) as session:
        found = jobs.list_jobs(
            session,
            current_actor(),
            status=args.get("status"),
            limit=args["limit"],
            offset=args["offset"],
        )
        documents = [_document(job) for job in found]
    result: dict[str, Any] = ExportJobListSchema().dump(
        {"jobs": [], "limit": args["limit"], "offset": args["offset"]}
    )
    result["jobs"] = documents
    return result


@bp.get("/jobs/<uuid:job_id>")
@authenticated(*STAFF)
def get_job(job_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    with rt.db.unit_of_work(write=False) as session:
        return _document(jobs.get_job(session, current_actor(), job_id))


@bp.get("/jobs/<uuid:job_id>/file")
@authenticated(*STAFF)
def download_job(job_id: uuid.UUID) -> Response:
    return job_file_response(current_actor(), job_id)


def job_file_response(actor: Actor, job_id: uuid.UUID) -> Response:
    """A finished job's file as a download (409 until done, 410 once expired); a revealing job's
    download is audited, and nothing is sent unless that audit committed. The API's download
    and the console's."""
    rt = runtime()
    content = None
    try:
        with rt.db.unit_of_work() as session:
            job, content = jobs.open_job_file(session, actor, rt.settings, job_id)
            media_type, name = MEDIA_TYPES[job.format], jobs.file_name_of(job)
    except BaseException:
        if content is not None:
            content.close()
        raise
    response = Response(
        wrap_file(request.environ, content), mimetype=media_type, direct_passthrough=True
    )
    response.content_length = os.fstat(content.fileno()).st_size
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.delete("/jobs/<uuid:job_id>")
@authenticated(*STAFF)
def remove_job(job_id: uuid.UUID) -> tuple[str, int]:
    rt = runtime()
    with rt.db.unit_of_work() as session:
        jobs.remove_job(session, current_actor(), rt.settings, job_id)
    return "", 204
