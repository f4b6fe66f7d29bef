"""HTTP: the scheduled jobs, their runs, and "run now" (admins)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.request_body import load_with, query_arguments
from server.runtime import runtime
from server.scheduler import service
from server.scheduler.schemas import JobListingSchema, JobListQuerySchema, JobRunSchema
from server.users.models import Role

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")


@bp.get("/jobs")
@authenticated(Role.ADMIN)
def list_jobs() -> dict[str, Any]:
    args = load_with(JobListQuerySchema(), query_arguments())
    rt = runtime()
    with rt.db.unit_of_work(write=False) as session:
        listing = service.list_jobs(
            session,
            current_actor(),
            rt.settings,
            job=args.get("job"),
            status=args.get("status"),
            trigger=args.get("trigger"),
            limit=args["limit"],
            offset=args["offset"],
        )
    result: dict[str, Any] = JobListingSchema().dump(listing)
    return result


@bp.post("/jobs/<name>/run")
@authenticated(Role.ADMIN)
def run_job(name: str) -> dict[str, Any]:
    # The run opens its own units of work (the job's, and the run's record before and after).
    run = service.run_now(runtime(), current_actor(), name)
    result: dict[str, Any] = JobRunSchema().dump(run)
    return result
