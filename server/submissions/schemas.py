"""Messages of the quarantine: the listing's query arguments, and a reviewer's dismissal or
correction of one quarantined submission with what it answers."""

from __future__ import annotations

from marshmallow import fields

from server.request_body import PageQuerySchema
from server.submissions.models import REVIEW_FILTERS, REVIEW_REASON_LENGTH, WAITING
from sync_protocol.messages import (
    ChoiceString,
    JsonObject,
    ProtocolString,
    RequestSchema,
    ResponseSchema,
    Rfc3339DateTime,
    UuidString,
)


class QuarantineQuerySchema(PageQuerySchema):
    """`?limit=&offset=&reveal=&review_status=`: `reveal=sensitive` shows identity numbers and
    phones in clear to roles in REVEAL_ROLES (each submission so shown is audited); any other
    value is a 422. `review_status` is `waiting` (the default: not reviewed yet), `dismissed`,
    `corrected` or `all`."""

    reveal = ChoiceString(("sensitive",))
    review_status = ChoiceString(REVIEW_FILTERS, load_default=WAITING)


class DismissRequestSchema(RequestSchema):
    """`POST /api/v1/submissions/{instance_id}/dismiss`: why it needs no further action."""

    reason = ProtocolString(required=True, max_length=REVIEW_REASON_LENGTH)


class ResubmitRequestSchema(RequestSchema):
    """`POST /api/v1/submissions/{instance_id}/resubmit`: the corrected answers (the `data` of
    the submission; values left as they were shown, masked, mean "as sent")."""

    answers = JsonObject(required=True)


class ReviewedSubmissionSchema(ResponseSchema):
    """A quarantined submission's review: `dismissed` with its reason, or `corrected` with the
    instance id of the accepted submission that replaced it and that push's per-item `result`."""

    instance_id = UuidString()
    review_status = fields.String()
    reviewed_by = fields.String()
    reviewed_at = Rfc3339DateTime()
    review_reason = fields.String(allow_none=True)
    corrected_by_instance_id = UuidString(allow_none=True)
    village_code = fields.String(allow_none=True)
    result = JsonObject(allow_none=True)
