"""Shapes of the jobs API: the listing's query, a job with its schedule and latest runs, a run."""

from __future__ import annotations

import re

from marshmallow import fields

from server.request_body import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from server.scheduler.models import RunStatus, RunTrigger
from server.scheduler.registry import NAME_PATTERN
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    ChoiceString,
    JsonObject,
    PatternString,
    ProtocolNested,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
)

JOB_NAME_RE = re.compile(NAME_PATTERN)


class JobListQuerySchema(RequestSchema):
    """`GET /api/v1/jobs`: the page of runs (newest first), filtered by job, status and trigger."""

    job = PatternString(JOB_NAME_RE, ItemErrorCode.INVALID_VALUE, "Not a job name.")
    status = ChoiceString(tuple(s.value for s in RunStatus))
    trigger = ChoiceString(tuple(t.value for t in RunTrigger))
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_PAGE_LIMIT)
    offset = QueryInteger(minimum=0, load_default=0)


class JobRunSchema(ResponseSchema):
    """One run: `scheduled_for` is the schedule's fire time (for a manual run, when it was asked
    for); `duration_ms` and `finished_at` are null while it runs; `error` says why it failed or
    was skipped; `summary` is what the job reported."""

    id = fields.Integer()
    job = fields.String()
    trigger = ChoiceString(tuple(t.value for t in RunTrigger))
    status = ChoiceString(tuple(s.value for s in RunStatus))
    scheduled_for = Rfc3339DateTime()
    started_at = Rfc3339DateTime()
    finished_at = Rfc3339DateTime(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    summary = JsonObject(allow_none=True)
    host = fields.String()
    pid = fields.Integer()
    requested_by = fields.String(allow_none=True)


class JobSchema(ResponseSchema):
    """A job: its schedule (`cron …` in the scheduler's time zone, `every <seconds>`, or `off`),
    its next fire time (null when off), whether a run is running, and its latest runs."""

    name = fields.String()
    description = fields.String()
    schedule = fields.String()
    next_run_at = Rfc3339DateTime(allow_none=True)
    is_running = fields.Boolean()
    recent_runs = fields.List(ProtocolNested(JobRunSchema))


class JobListingSchema(ResponseSchema):
    jobs = fields.List(ProtocolNested(JobSchema))
    runs = fields.List(ProtocolNested(JobRunSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
