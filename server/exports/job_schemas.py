"""Shapes of the export jobs API: the listing's query and a job with its progress."""

from __future__ import annotations

from marshmallow import fields

from server.exports.job_models import ExportJobStatus
from server.request_body import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from sync_protocol.messages import (
    ChoiceString,
    JsonObject,
    ProtocolNested,
    QueryInteger,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
)

STATUS_WORDS = tuple(s.value for s in ExportJobStatus)


class ExportJobListQuerySchema(RequestSchema):
    """`GET /api/v1/exports/jobs`: the caller's jobs (admins: everyone's), newest first."""

    status = ChoiceString(STATUS_WORDS)
    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_PAGE_LIMIT)
    offset = QueryInteger(minimum=0, load_default=0)


class ExportJobSchema(ResponseSchema):
    """A background export: `status` queued, running, succeeded, failed or expired; `rows_done`
    and `bytes_done` its progress (final once it succeeded); `query` the export's parameters as
    sent; `file` the download's URL once it succeeded; `cursor` the incremental cursor of a
    single-dataset export (as X-Export-Cursor of a direct one); `error` why it failed;
    `expires_at` when its file is removed."""

    id = fields.String()
    username = fields.String()
    dataset = fields.String()
    format = fields.String()
    query = JsonObject()
    reveal = fields.Boolean()
    status = ChoiceString(STATUS_WORDS)
    rows_done = fields.Integer()
    bytes_done = fields.Integer()
    created_at = Rfc3339DateTime()
    started_at = Rfc3339DateTime(allow_none=True)
    finished_at = Rfc3339DateTime(allow_none=True)
    expires_at = Rfc3339DateTime()
    error = fields.String(allow_none=True)
    cursor = fields.String(allow_none=True, attribute="next_cursor")
    file = fields.String(allow_none=True)


class ExportJobListSchema(ResponseSchema):
    jobs = fields.List(ProtocolNested(ExportJobSchema))
    limit = fields.Integer()
    offset = fields.Integer()
