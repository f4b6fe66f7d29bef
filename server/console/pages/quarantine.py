"""Quarantine: the rejected submissions of the user's regions with their errors and what was sent
(sensitive values masked), each dismissable with a reason through
`server.submissions.service.dismiss_submission` or correctable; the ones waiting for review by
default, or those already dismissed or corrected with who did it, when and why."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.console.blueprint import bp
from server.console.pages.review import PAGE_SIZE, one_line, problems_by_field
from server.console.session import console_page, current_user
from server.db import utcnow
from server.errors import BadRequest, ValidationFailed
from server.request_body import load_with
from server.runtime import runtime
from server.submissions import service
from server.submissions.models import REVIEW_FILTERS, WAITING, ReviewStatus
from server.submissions.schemas import QuarantineQuerySchema
from server.users.models import Role

STAFF = (Role.ADMIN, Role.SUPERVISOR)


def _render(
    problems: dict[str, dict[str, list[str]]] | None = None, entered: dict[str, str] | None = None
) -> str:
    rt = runtime()
    args = load_with(
        QuarantineQuerySchema(),
        {k: v for k, v in request.args.items() if k in ("offset", "review_status")},
    )
    offset, review = args["offset"], args["review_status"]
    with rt.db.unit_of_work(write=False) as session:
        # One more than a page: whether there is a next one.
        rows = service.quarantine(
            session,
            current_user(),
            rt.settings,
            rt.codec,
            limit=PAGE_SIZE + 1,
            offset=offset,
            review=review,
        )
    for row in rows:
        for moment in ("received_at", "collected_at", "reviewed_at"):
            if row.get(moment):
                row[moment] = datetime.fromisoformat(row[moment])
    # The filter only in links when it is not the default, so the plain page keeps its address.
    kept = {} if review == WAITING else {"review_status": review}
    return render_template(
        "console/quarantine.html",
        submissions=rows[:PAGE_SIZE],
        review=review,
        review_filters=REVIEW_FILTERS,
        review_statuses={status.value: status for status in ReviewStatus},
        previous=url_for("console.quarantine", offset=max(0, offset - PAGE_SIZE), **kept)
        if offset
        else None,
        next=url_for("console.quarantine", offset=offset + PAGE_SIZE, **kept)
        if len(rows) > PAGE_SIZE
        else None,
        problems=problems or {},
        entered=entered or {},
        one_line=one_line,
    )


@bp.get("/quarantine")
@console_page(*STAFF)
def quarantine() -> str:
    return _render()


@bp.post("/quarantine/<uuid:instance_id>/dismiss")
@console_page(*STAFF)
def dismiss_submission(instance_id: uuid.UUID) -> Response | tuple[str, int]:
    reason = request.form.get("reason", "")
    try:
        with runtime().db.unit_of_work() as session:
            service.dismiss_submission(
                session, current_user(), instance_id, reason=reason, now=utcnow()
            )
    except ValidationFailed as exc:
        key = str(instance_id)
        return _render({key: problems_by_field(exc.errors)}, {key: reason}), 422
    flash(_("The submission was dismissed from the quarantine."), "ok")
    return redirect(url_for("console.quarantine"))


def _render_correction(
    instance_id: uuid.UUID, *, text: str | None = None, problems: list[Any] | None = None
) -> str:
    rt = runtime()
    with rt.db.unit_of_work(write=False) as session:
        correction = service.correction_of(session, current_user(), rt.codec, instance_id)
    return render_template(
        "console/quarantine_correct.html",
        correction=correction,
        text=text
        if text is not None
        else json.dumps(correction.answers, ensure_ascii=False, indent=2),
        problems=problems or [],
    )


@bp.get("/quarantine/<uuid:instance_id>/correct")
@console_page(*STAFF)
def correct_submission(instance_id: uuid.UUID) -> str:
    return _render_correction(instance_id)


@bp.post("/quarantine/<uuid:instance_id>/correct")
@console_page(*STAFF)
def resubmit_submission(instance_id: uuid.UUID) -> Response | tuple[str, int]:
    rt = runtime()
    text = request.form.get("answers", "")
    try:
        if len(text) > rt.settings.max_body_size:
            raise BadRequest("the answers are too long")
        try:
            answers = json.loads(text)
        except ValueError as exc:
            raise ValidationFailed(
                "not JSON",
                [{"path": "answers", "code": "invalid_json", "message": str(exc)}],
            ) from None
        if not isinstance(answers, dict):
            raise ValidationFailed(
                "not an object",
                [{"path": "answers", "code": "invalid_type", "message": '{ "name": value, … }'}],
            )
        with rt.db.unit_of_work() as session:
            done = service.resubmit_corrected(
                session,
                current_user(),
                rt.settings,
                rt.codec,
                rt.clock,
                instance_id,
                answers,
                now=utcnow(),
            )
    except ValidationFailed as exc:
        return _render_correction(instance_id, text=text, problems=exc.errors), 422
    flash(
        _("Corrected and accepted as submission %(id)s.", id=str(done.instance_id)),
        "ok",
    )
    return redirect(url_for("console.quarantine"))
