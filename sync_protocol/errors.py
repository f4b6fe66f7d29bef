"""Every machine-readable error code of the protocol, the single source for server, client and docs.

Request-level codes travel in `{"error": {"code": ...}}` with the HTTP status given here; item-level
codes travel in a push result's `errors` list. Never rename a member: clients match on the value.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):  # noqa: UP042 (StrEnum would change str() of members: owner's call)
    """Request-level error codes and the HTTP status each one is sent with."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    RESYNC_REQUIRED = "resync_required"
    GONE = "gone"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RESYNC_REQUIRED: 410,
    ErrorCode.GONE: 410,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.UNAVAILABLE: 503,
}


class ItemErrorCode(str, Enum):  # noqa: UP042 (as ErrorCode)
    """Codes for one submission inside a push batch (its `errors[].code`)."""

    INSTANCE_CONFLICT = "instance_conflict"
    FIELD_READ_ONLY = "field_read_only"
    CLOCK_AHEAD = "clock_ahead"
    UNKNOWN_FORM = "unknown_form"
    UNKNOWN_FORM_VERSION = "unknown_form_version"
    FORM_VERSION_RETIRED = "form_version_retired"
    FORBIDDEN = "forbidden"  # the entity is outside the caller's regions (a 403 for this item)
    NOT_FOUND = "not_found"  # the entity does not exist and the form may not create it
    INVALID_ENTITY = "invalid_entity"  # e.g. a new household without a village
    UNKNOWN_REGION = "unknown_region"
    INVALID_SUBMISSION = "invalid_submission"
    INVALID_BASE_REV = "invalid_base_rev"  # a base revision the entity never had
    # The server failed judging this one submission (logged with its traceback); the item is kept
    # in quarantine and the rest of the batch goes on.
    INTERNAL_ITEM_ERROR = "internal_item_error"

    # Message-shape codes (sync_protocol.messages.validation_details). They label a rejected
    # submission's errors and, with the same meaning, the `details` of a 400/422 request error.
    REQUIRED = "required"
    INVALID_TYPE = "invalid_type"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_VALUE = "invalid_value"
    OUT_OF_RANGE = "out_of_range"
    TOO_MANY_ITEMS = "too_many_items"
    INVALID_UUID = "invalid_uuid"
    INVALID_CLOCK = "invalid_clock"
    INVALID_DATETIME = "invalid_datetime"
    INVALID_ENTITY_KEY = "invalid_entity_key"
    INVALID_ATTACHMENT = "invalid_attachment"
