"""HTTP: the quarantine of rejected submissions, for supervisors and administrators: the listing,
and dismissing or correcting one of them."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.request_body import json_object, load_with
from server.runtime import runtime
from server.submissions import service
from server.submissions.schemas import (
    DismissRequestSchema,
    QuarantineQuerySchema,
    ResubmitRequestSchema,
    ReviewedSubmissionSchema,
)
from server.users.models import Role

bp = Blueprint("submissions", __name__, url_prefix="/api/v1")


@bp.get("/submissions/quarantine")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def quarantine() -> dict[str, Any]:
    rt = runtime()
    names = ("limit", "offset", "reveal", "review_status")
    args = load_with(
        QuarantineQuerySchema(), {k: request.args[k] for k in names if k in request.args}
    )
    limit, offset, reveal = args["limit"], args["offset"], args.get("reveal") == "sensitive"
    review = args["review_status"]
    with rt.db.unit_of_work(write=reveal) as session:
        rows = service.quarantine(
            session,
            current_actor(),
            rt.settings,
            rt.codec,
            limit=limit,
            offset=offset,
            reveal=reveal,
            review=review,
        )
    return {
        "submissions": rows,
        "limit": limit,
        "offset": offset,
        "revealed": reveal,
        "review_status": review,
    }


def _review(review: service.Review, **extra: Any) -> dict[str, Any]:
    shown: dict[str, Any] = ReviewedSubmissionSchema().dump(
        {
            "instance_id": review.instance_id,
            "review_status": review.review_status.value,
            "reviewed_by": review.reviewed_by,
            "reviewed_at": review.reviewed_at,
            "review_reason": review.review_reason,
            "corrected_by_instance_id": review.corrected_by_instance_id,
            **extra,
        }
    )
    return shown


@bp.post("/submissions/<uuid:instance_id>/dismiss")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def dismiss_submission(instance_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(DismissRequestSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        review = service.dismiss_submission(
            session, current_actor(), instance_id, reason=body["reason"], now=utcnow()
        )
    return _review(review)


@bp.post("/submissions/<uuid:instance_id>/resubmit")
@authenticated(Role.SUPERVISOR, Role.ADMIN)
def resubmit_submission(instance_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(ResubmitRequestSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        done = service.resubmit_corrected(
            session,
            current_actor(),
            rt.settings,
            rt.codec,
            rt.clock,
            instance_id,
            body["answers"],
            now=utcnow(),
        )
    return _review(done.review, village_code=done.village_code, result=done.result)
