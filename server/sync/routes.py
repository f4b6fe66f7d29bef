"""HTTP: `POST /api/v1/sync/push` and `GET /api/v1/sync/pull`, as the sync protocol says."""

from __future__ import annotations

import functools
import logging
from typing import Any

from flask import Blueprint, g
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError

from server import failpoints
from server.attachments.service import missing_attachments, record_references
from server.attachments.store import store_for
from server.auth.guard import authenticated, current_actor
from server.db import is_retryable, utcnow
from server.errors import TooLarge, ValidationFailed
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime
from server.serving import pause_collection, resume_collection
from server.sync import pull, push
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import PullRequestSchema, PushRequestSchema, validation_details

bp = Blueprint("sync", __name__, url_prefix="/api/v1/sync")
log = logging.getLogger(__name__)
# Times a push's write transaction is run when the database ends it to break a deadlock.
PUSH_ATTEMPTS = 5

# Request schemas, built once: building one costs more than loading a small push with it, and
# loading never changes a schema, so every thread of a process may share them.
_PULL_SCHEMA = PullRequestSchema()


@functools.cache
def _push_schema(max_submissions: int) -> PushRequestSchema:
    return PushRequestSchema(max_submissions=max_submissions)


@bp.before_request
def _pause_collection() -> None:
    g.collection_was_enabled = pause_collection()


@bp.teardown_request
def _resume_collection(_error: BaseException | None) -> None:
    # Teardown: the response is built and the request's objects are freed.
    resume_collection(g.pop("collection_was_enabled", False))


@bp.post("/push")
@authenticated()
def push_batch() -> dict[str, Any]:
    rt = runtime()
    body = json_object(rt.settings.max_body_size)
    try:
        batch = _push_schema(rt.settings.max_batch_items).load(body)
    except ValidationError as err:
        details = validation_details(err)
        if any(d["code"] == ItemErrorCode.TOO_MANY_ITEMS for d in details):
            raise TooLarge(
                f"a batch holds at most {rt.settings.max_batch_items} submissions",
                details={"limit": rt.settings.max_batch_items},
            ) from err
        raise ValidationFailed("push request is well-formed but invalid", details) from err
    now, actor = utcnow(), current_actor()
    planned_apart = None
    if not push.plans_in_write_transaction(rt.db.kind, batch):
        with rt.db.unit_of_work(write=False) as session:
            planned_apart = push.plan_push(session, actor, rt.settings, batch, now=now)
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            with rt.db.unit_of_work() as session:
                plan = planned_apart or push.plan_push(session, actor, rt.settings, batch, now=now)
                result = push.accept_push(
                    session, actor, rt.settings, rt.codec, rt.clock, plan, now=now
                )
                record_references(session, result.attachment_refs)
                failpoints.reach(failpoints.PUSH_BEFORE_COMMIT, rt.settings)
            break
        except DBAPIError as error:
            # Two pushes that found members moved under them can lock each other's households
            # in opposite orders; PostgreSQL ends one of them, nothing of it applied. Again from
            # the start, it finds the members where they are now. After the last attempt the
            # tablet is told to retry (503), never a 500.
            if attempt == PUSH_ATTEMPTS or not is_retryable(error):
                raise
            log.info("event=push_retried attempt=%d error=%s", attempt, type(error.orig).__name__)
    failpoints.reach(failpoints.PUSH_AFTER_COMMIT, rt.settings)
    # After the commit, which ends the households' locks: which files to upload depends only on
    # the caller's own uploads and the store, nothing this push wrote.
    with rt.db.autocommit_reads() as session:
        missing = missing_attachments(
            session, actor, store_for(rt.settings), result.referenced_attachments
        )
    return {
        "batch_id": result.batch_id,
        "clock": result.clock,
        "results": result.results,
        "missing_attachments": missing,
    }


@bp.get("/pull")
@authenticated()
def pull_page() -> dict[str, Any]:
    rt = runtime()
    args = load_with(_PULL_SCHEMA, query_arguments())
    return pull.pull_page(
        rt.db,
        current_actor(),
        rt.clock,
        cursor=args.get("cursor"),
        limit=args["limit"],
        secret=rt.settings.secret_key,
    )
