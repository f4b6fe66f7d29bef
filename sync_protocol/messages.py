"""Marshmallow schemas for every message of the sync protocol, and marshmallow errors as details.

One schema per operation, named for it. Shape and cross-field rules only: schemas never query a
database, read the current user or import Flask; stored state is the server services' business.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict, cast

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    missing,
    post_load,
    validates_schema,
)

from forms.definition_schema import FORM_ID_LENGTH
from forms.register import ENTITIES
from sync_protocol.clock import ClockFormatError, Hlc
from sync_protocol.errors import ItemErrorCode
from sync_protocol.merge import canonical_document

DEFAULT_MAX_SUBMISSIONS = 1000  # per push batch; the server passes its configured limit
DEFAULT_MAX_PULL_LIMIT = 1000
MAX_SAFE_INTEGER = 2**53 - 1  # exact in every JSON implementation, fits a BIGINT column
MAX_INT32 = 2**31 - 1
MAX_DATA_DEPTH = 32  # nesting of objects/lists inside a submission's data
# The earliest `collected_at` taken as a real visit time: visits by tablet began long after; a
# tablet whose clock was reset (to 1970, or 0001) is told to fix its date. The latest is the
# server's clock plus its allowed skew (the server checks that; the wire format ends in 9999).
EARLIEST_COLLECTED_AT = datetime(2000, 1, 1, tzinfo=UTC)
ROLES = ("admin", "supervisor", "collector")
SUBMISSION_STATUSES = ("accepted", "duplicate", "rejected")
CONFLICT_WINNERS = ("this", "other")  # from the submission's point of view

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_RFC3339_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_CONTENT_TYPE_RE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}")
_REGION_CODE_RE = re.compile(r"[0-9]{12}")
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


# --- error messages that carry their detail code ---------------------------------------------


class ProtocolMessage(str):
    """A validation message that knows its detail code (an `ItemErrorCode` value).

    It survives marshmallow's `message.format(...)` calls, so `validation_details` reads codes
    from the messages themselves instead of matching English text.
    """

    code: str

    def __new__(cls, code: str, text: str) -> ProtocolMessage:
        message = super().__new__(cls, text)
        message.code = code
        return message

    def format(self, *args: object, **kwargs: object) -> ProtocolMessage:
        return ProtocolMessage(self.code, str.format(self, *args, **kwargs))

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        # copy/deepcopy/pickle rebuild str subclasses from these arguments.
        return (self.code, str(self))


def _message(code: ItemErrorCode, text: str) -> ProtocolMessage:
    return ProtocolMessage(code.value, text)


def _coded(base: Mapping[str, str] | None = None, **messages: str) -> dict[str, str]:
    # marshmallow merges `default_error_messages`/`error_messages` along the class hierarchy.
    return {**(base or {}), **messages}


def _fail(code: ItemErrorCode, text: str) -> ValidationError:
    return ValidationError(_message(code, text))


# --- fields ----------------------------------------------------------------------------------


class _ProtocolField(fields.Field):
    default_error_messages = _coded(
        required=_message(ItemErrorCode.REQUIRED, "Missing data for required field."),
        null=_message(ItemErrorCode.INVALID_TYPE, "Field may not be null."),
        validator_failed=_message(ItemErrorCode.INVALID_VALUE, "Invalid value."),
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Invalid type."),
    )

    def deserialize(
        self,
        value: Any,
        attr: str | None = None,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """marshmallow's `Field.deserialize`, without its per-call cost for a present value.

        For a value that is there and not null, marshmallow's missing/null checks do nothing and
        its validator chain (an `And` built on every call) is empty unless `validate=` was given:
        a push runs this for every field of every submission, so that case calls `_deserialize`
        directly. Missing and null values, and fields with validators, go marshmallow's way.
        """
        if value is missing or value is None or self.validators:
            return super().deserialize(value, attr, data, **kwargs)
        return self._deserialize(value, attr, data, **kwargs)


def _check_text(text: str) -> None:
    # PostgreSQL text and jsonb refuse NUL, UTF-8 cannot encode lone surrogates: refusing them
    # here keeps a client's odd string from becoming a server error at insert time.
    if "\x00" in text or _SURROGATE_RE.search(text):
        raise _fail(
            ItemErrorCode.INVALID_VALUE,
            "Text must not contain NUL or unpaired surrogate characters.",
        )


class ProtocolString(_ProtocolField):
    """A JSON string of bounded length, without NUL or unpaired surrogates."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid string.")
    )

    def __init__(self, *, min_length: int = 1, max_length: int = 255, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_length = min_length
        self.max_length = max_length

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not self.min_length <= len(value) <= self.max_length:
            raise _fail(
                ItemErrorCode.INVALID_VALUE,
                f"Length must be between {self.min_length} and {self.max_length}.",
            )
        _check_text(value)
        return value


class ChoiceString(ProtocolString):
    """A string that must be one of a fixed set of protocol words."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in self.choices:
            raise _fail(ItemErrorCode.INVALID_VALUE, f"Must be one of: {', '.join(self.choices)}.")
        return text


class PatternString(ProtocolString):
    """A string matching a regular expression, with a caller-chosen code and message."""

    def __init__(
        self, pattern: re.Pattern[str], code: ItemErrorCode, text: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pattern = pattern
        self.mismatch = _message(code, text)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.pattern.fullmatch(text):
            raise ValidationError(self.mismatch)
        return text


class UuidString(_ProtocolField):
    """A UUID in its canonical 8-4-4-4-12 hex form, either case; loaded lower-case."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid string.")
    )

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else str(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not _UUID_RE.fullmatch(value):
            raise _fail(ItemErrorCode.INVALID_UUID, "Not a valid UUID (8-4-4-4-12 hex digits).")
        return value.lower()


class HlcField(_ProtocolField):
    """A hybrid logical clock stamp: loaded as `Hlc`, dumped from `Hlc` (or a valid stamp text)."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid string.")
    )

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return str(value if isinstance(value, Hlc) else Hlc.parse(value))

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Hlc:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return Hlc.parse(value)
        except ClockFormatError as error:
            raise _fail(ItemErrorCode.INVALID_CLOCK, str(error)) from error


class Rfc3339DateTime(_ProtocolField):
    """An RFC 3339 date-time *with* offset (`Z` or `±hh:mm`) that has a UTC time; loaded as an
    aware `datetime`. With `earliest`, an earlier time is `out_of_range`."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid string.")
    )

    def __init__(self, *, earliest: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.earliest = earliest

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError("only timezone-aware datetimes can be sent")
        return value.isoformat()

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        match = _RFC3339_RE.fullmatch(value)
        if match is None:
            raise _fail(
                ItemErrorCode.INVALID_DATETIME,
                "Not an RFC 3339 date-time with offset, e.g. 2026-11-20T08:15:00+08:00.",
            )
        offset = match["offset"]
        fraction = (match["fraction"] or "")[:6]
        text = f"{match['date']}T{match['time']}" + (
            f".{fraction.ljust(6, '0')}" if fraction else ""
        )
        text += "+00:00" if offset in ("Z", "z") else offset
        try:
            moment = datetime.fromisoformat(text)
            moment.astimezone(UTC)  # 0001-01-01T00:00:00+14:00 has no UTC time
        except (ValueError, OverflowError) as error:
            raise _fail(
                ItemErrorCode.INVALID_DATETIME, f"Not a valid date-time: {error}."
            ) from error
        if self.earliest is not None and moment < self.earliest:
            raise _fail(
                ItemErrorCode.OUT_OF_RANGE,
                f"Must not be before {self.earliest.isoformat()}; fix the tablet's date.",
            )
        return moment


class StrictInteger(_ProtocolField):
    """A JSON integer (not a float, not a boolean, not a string) within `minimum..maximum`."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid integer.")
    )

    def __init__(self, *, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int:
        return _strict_int(value, self.minimum, self.maximum)


def _strict_int(value: object, minimum: int, maximum: int) -> int:
    if type(value) is not int:
        raise _fail(ItemErrorCode.INVALID_TYPE, "Not a valid integer.")
    if not minimum <= value <= maximum:
        raise _fail(ItemErrorCode.OUT_OF_RANGE, f"Must be between {minimum} and {maximum}.")
    return value


class StrictBoolean(_ProtocolField):
    """A JSON `true` or `false` (no "yes", 1 or "on")."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid boolean.")
    )

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value


class JsonValue(_ProtocolField):
    """Any JSON value, checked (see `check_json_value`) and passed through unchanged."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        errors, _ = _check_data(value, None)
        if errors:
            raise ValidationError(_nest(errors))
        return value


class JsonObject(JsonValue):
    """A JSON object of any content; with `check_attachments`, attachment refs are validated."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid object.")
    )

    def __init__(self, *, check_attachments: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_attachments = check_attachments
        self._ref_schema: AttachmentRefSchema | None = None

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        return self._checked(value).value

    def _checked(self, value: Any) -> CheckedData:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if self.check_attachments and self._ref_schema is None:
            # One per field, that is per schema instance (never shared between requests):
            # building a schema costs several times more than loading a reference with it.
            self._ref_schema = AttachmentRefSchema()
        errors, digests = _check_data(value, self._ref_schema if self.check_attachments else None)
        if errors:
            raise ValidationError(_nest(errors))
        return CheckedData(value, digests)


class CheckedData(NamedTuple):
    """A checked JSON object and the attachment digests it refers to (see `SubmissionData`)."""

    value: dict[str, Any]
    referenced_attachments: list[str]


class SubmissionData(JsonObject):
    """A submission's `data`: `JsonObject(check_attachments=True)`, same checks, same errors.

    Loads as `CheckedData`, keeping the digests that the check met on its way through the data;
    `SubmissionSchema` puts them beside `data` (its `referenced_attachments`).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(check_attachments=True, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> CheckedData:
        return self._checked(value)


class EntityRevs(_ProtocolField):
    """A map `"<entity>/<uuid>"` → revision, e.g. `{"household/8f1c…": 7}`; ids lower-cased."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid object.")
    )

    def __init__(self, *, minimum: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else dict(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, int]:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        result: dict[str, int] = {}
        errors: dict[str, list[ProtocolMessage]] = {}
        for key, rev in value.items():
            try:
                entity, entity_id = parse_entity_key(key)
            except ValueError as error:
                errors[key] = [_message(ItemErrorCode.INVALID_ENTITY_KEY, str(error))]
                continue
            normalized = entity_key(entity, entity_id)
            if normalized in result:
                errors[key] = [
                    _message(ItemErrorCode.INVALID_ENTITY_KEY, "The same entity appears twice.")
                ]
                continue
            try:
                result[normalized] = _strict_int(rev, self.minimum, MAX_SAFE_INTEGER)
            except ValidationError as error:
                errors[key] = cast(list[ProtocolMessage], error.messages)
        if errors:
            raise ValidationError(cast(dict[str, Any], errors))
        return result


class ClockMap(_ProtocolField):
    """A map field name → `Hlc` (the per-field clocks of a pulled entity)."""

    default_error_messages = _coded(
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid object.")
    )

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return {
            name: str(clock if isinstance(clock, Hlc) else Hlc.parse(clock))
            for name, clock in value.items()
        }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, Hlc]:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        result: dict[str, Hlc] = {}
        errors: dict[str, Any] = {}
        for name, stamp in value.items():
            try:
                result[name] = Hlc.parse(stamp)
            except ClockFormatError as error:
                errors[name] = [_message(ItemErrorCode.INVALID_CLOCK, str(error))]
        if errors:
            raise ValidationError(errors)
        return result


class ProtocolList(fields.List):
    """A JSON array, optionally bounded; the bound is checked before any item is loaded."""

    default_error_messages = _coded(
        _ProtocolField.default_error_messages,
        invalid=_message(ItemErrorCode.INVALID_TYPE, "Not a valid list."),
    )

    def __init__(self, inner: fields.Field, *, max_items: int | None = None, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[Any]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if self.max_items is not None and len(value) > self.max_items:
            raise _fail(ItemErrorCode.TOO_MANY_ITEMS, f"At most {self.max_items} items.")
        return super()._deserialize(value, attr, data, **kwargs)


class ProtocolNested(fields.Nested):
    """A nested protocol object (its schema's own unknown-field policy applies)."""

    default_error_messages = _coded(
        _ProtocolField.default_error_messages,
        type=_message(ItemErrorCode.INVALID_TYPE, "Not a valid object."),
    )


# --- schemas: the unknown-field policy -------------------------------------------------------


class ProtocolSchema(Schema):
    """Base of every protocol schema: coded error messages, and the unknown-field policy.

    The policy is a protocol decision, made once here through the two bases below. What the
    *server receives* is strict (`RequestSchema`: an unknown field is a `422 unknown_field`, so a
    client with a typo learns it at once instead of losing data silently). What *clients receive*
    is lenient (`ResponseSchema`: unknown fields are dropped, so a newer server may add fields
    without breaking older tablets). Nested schemas follow the same split.
    """

    error_messages = _coded(
        unknown=_message(ItemErrorCode.UNKNOWN_FIELD, "Unknown field."),
        type=_message(ItemErrorCode.INVALID_TYPE, "Not a valid object."),
    )


class RequestSchema(ProtocolSchema):
    """A message a client sends to the server: unknown fields are refused, and the refusal lists
    the fields the message accepts, so a client with a misspelt key learns the right one."""

    class Meta:
        unknown = RAISE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accepted = sorted(field.data_key or name for name, field in self.load_fields.items())
        self.error_messages = {
            **self.error_messages,
            "unknown": _message(
                ItemErrorCode.UNKNOWN_FIELD, f"Unknown field; accepted: {', '.join(accepted)}."
            ),
        }


class ResponseSchema(ProtocolSchema):
    """A message the server sends to clients: unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE


# --- requests --------------------------------------------------------------------------------


class LoginRequestSchema(RequestSchema):
    """`POST /api/v1/auth/login` body."""

    # As long as `users.username` (and the login log) can hold: a longer name has no account.
    username = ProtocolString(required=True, max_length=64)
    password = ProtocolString(required=True, max_length=1024)
    device_id = UuidString()


class AttachmentRefSchema(RequestSchema):
    """An attachment reference in submission data: `{"attachment", "filename", "content_type"}`."""

    attachment = PatternString(
        _DIGEST_RE,
        ItemErrorCode.INVALID_ATTACHMENT,
        'Must be "sha256:" followed by 64 lower-case hex digits.',
        required=True,
        max_length=71,
    )
    filename = ProtocolString(required=True, max_length=255)
    content_type = PatternString(
        _CONTENT_TYPE_RE,
        ItemErrorCode.INVALID_VALUE,
        "Must be a media type such as image/jpeg.",
        required=True,
    )

    @validates_schema
    def _filename_has_no_directory(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "/" in data.get("filename", "") or "\\" in data.get("filename", ""):
            raise ValidationError(
                _message(ItemErrorCode.INVALID_VALUE, "A file name, without directories."),
                "filename",
            )


class SubmissionSchema(RequestSchema):
    """One completed form instance inside a push.

    `hlc` loads as `Hlc`, `collected_at` as an aware `datetime`, `base_revs` keys lower-case.
    Inside `data`, every object with an `attachment` key is an attachment reference and must
    match `AttachmentRefSchema` (forms therefore never name an answer `attachment`). The loaded
    submission also has `referenced_attachments`: the digests those references name, found while
    `data` was checked (what `referenced_attachments(data)` returns). It is not a wire field.
    """

    instance_id = UuidString(required=True)
    form_id = ProtocolString(required=True, max_length=FORM_ID_LENGTH)
    form_version = StrictInteger(required=True, minimum=1, maximum=MAX_INT32)
    collected_at = Rfc3339DateTime(required=True, earliest=EARLIEST_COLLECTED_AT)
    hlc = HlcField(required=True)
    device_seq = StrictInteger(required=True, minimum=1)
    base_revs = EntityRevs(load_default=dict)
    data = SubmissionData(required=True)

    @post_load
    def _attachments_beside_data(self, loaded: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        checked: CheckedData = loaded["data"]
        loaded["data"] = checked.value
        loaded["referenced_attachments"] = checked.referenced_attachments
        return loaded


class Submission(TypedDict):
    """A submission as `SubmissionSchema` loads it."""

    instance_id: str
    form_id: str
    form_version: int
    collected_at: datetime
    hlc: Hlc
    device_seq: int
    base_revs: dict[str, int]
    data: dict[str, Any]
    # Every attachment digest in `data`, sorted, once each: `referenced_attachments(data)`.
    referenced_attachments: list[str]


@dataclass(frozen=True)
class SubmissionItem:
    """One entry of a push's `submissions`, loaded on its own.

    `raw` is exactly what the device sent (store it verbatim, also when rejected). Either
    `submission` is the loaded submission and `errors` is empty, or `submission` is None and
    `errors` lists what is wrong, with paths relative to the submission (`hlc`, `data.x`). A
    loaded submission's `referenced_attachments` lists the attachment digests of its data.
    """

    index: int
    raw: Any
    submission: Submission | None
    errors: list[ErrorDetail] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return self.submission is not None

    @property
    def instance_id(self) -> str | None:
        """The instance id to report in this item's result (what was sent, if it is a string)."""
        if self.submission is not None:
            return self.submission["instance_id"]
        if isinstance(self.raw, dict) and isinstance(self.raw.get("instance_id"), str):
            return cast(str, self.raw["instance_id"])
        return None


class SubmissionList(ProtocolList):
    """A push's submissions: each loaded on its own into a `SubmissionItem`.

    A bad submission is an item outcome (`rejected` with its errors), never an error of the whole
    request: "one bad submission never sinks the others". Only a wrong container shape or too many
    items fail the request. Two entries with the same `instance_id` are not a shape error either:
    the server processes them in order, so the second is a re-send (`duplicate`, or `rejected`
    with `instance_conflict` if its content differs), exactly as across batches.
    """

    def __init__(self, *, max_items: int = DEFAULT_MAX_SUBMISSIONS, **kwargs: Any) -> None:
        super().__init__(JsonValue(), max_items=max_items, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        schema = SubmissionSchema()
        dumped = []
        for item in value:
            if isinstance(item, SubmissionItem):
                dumped.append(item.raw if item.submission is None else schema.dump(item.submission))
            else:
                dumped.append(schema.dump(item))
        return dumped

    def _submission_schema(self) -> SubmissionSchema:
        """One `SubmissionSchema` per list field, made on first use: building a schema costs more
        than loading a small batch with it, and loading never changes it (threads may share it)."""
        schema: SubmissionSchema | None = self.__dict__.get("_loader")
        if schema is None:
            schema = self.__dict__["_loader"] = SubmissionSchema()
        return schema

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[SubmissionItem]:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if self.max_items is not None and len(value) > self.max_items:
            raise _fail(ItemErrorCode.TOO_MANY_ITEMS, f"At most {self.max_items} items.")
        schema = self._submission_schema()
        items = []
        for index, raw in enumerate(value):
            try:
                items.append(SubmissionItem(index, raw, cast(Submission, schema.load(raw))))
            except ValidationError as error:
                items.append(SubmissionItem(index, raw, None, validation_details(error)))
        return items


class PushRequestSchema(RequestSchema):
    """`POST /api/v1/sync/push` body. `PushRequestSchema(max_submissions=n)` sets the batch limit.

    `submissions` loads as a list of `SubmissionItem` (see `SubmissionList`); more than
    `max_submissions` entries fail with code `too_many_items` at path `submissions`, which the
    server answers with `413 too_large`.
    """

    device_id = UuidString(required=True)
    batch_id = UuidString(required=True)
    clock = HlcField(required=True)
    submissions = SubmissionList(required=True)

    def __init__(self, *, max_submissions: int = DEFAULT_MAX_SUBMISSIONS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cast(SubmissionList, self.fields["submissions"]).max_items = max_submissions


class PushRequest(TypedDict):
    """A push as `PushRequestSchema` loads it."""

    device_id: str
    batch_id: str
    clock: Hlc
    submissions: list[SubmissionItem]


class QueryInteger(StrictInteger):
    """An integer that may also arrive as the decimal text of a query string (`?limit=50`)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class PullRequestSchema(RequestSchema):
    """`GET /api/v1/sync/pull` query arguments; `PullRequestSchema(max_limit=n)` bounds `limit`.

    `limit` defaults to the maximum. The cursor stays opaque here (the server decodes it and
    answers `400` when it is malformed).
    """

    cursor = ProtocolString(max_length=2048)
    limit = QueryInteger(
        minimum=1, maximum=DEFAULT_MAX_PULL_LIMIT, load_default=DEFAULT_MAX_PULL_LIMIT
    )

    def __init__(self, *, max_limit: int = DEFAULT_MAX_PULL_LIMIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        limit = cast(QueryInteger, self.fields["limit"])
        limit.maximum = max_limit
        limit.load_default = max_limit


# --- responses -------------------------------------------------------------------------------


class ErrorDetail(TypedDict):
    """One entry of a 422 `details` list or of a rejected submission's `errors`."""

    path: str
    code: str
    message: str


class ErrorDetailSchema(ResponseSchema):
    path = ProtocolString(required=True, min_length=0, max_length=4096)
    code = ProtocolString(required=True, max_length=100)
    message = ProtocolString(required=True, min_length=0, max_length=4096)


class ErrorDetails(_ProtocolField):
    """An error's `details`: an object, or (validation errors) a list of `{path, code, message}`."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if isinstance(value, dict):
            return value
        if isinstance(value, list):
            return ErrorDetailSchema(many=True).load(value)
        raise self.make_error("invalid")


class ErrorBodySchema(ResponseSchema):
    code = ProtocolString(required=True, max_length=100)
    message = ProtocolString(required=True, min_length=0, max_length=4096)
    details = ErrorDetails(load_default=dict)


class ErrorResponseSchema(ResponseSchema):
    """Every error response: `{"error": {"code", "message", "details"}}`."""

    error = ProtocolNested(ErrorBodySchema, required=True)


class LoginUserSchema(ResponseSchema):
    username = ProtocolString(required=True, max_length=150)
    role = ChoiceString(ROLES, required=True)
    regions = ProtocolList(
        PatternString(_REGION_CODE_RE, ItemErrorCode.INVALID_VALUE, "Must be a 12-digit code."),
        required=True,
    )


class LoginResponseSchema(ResponseSchema):
    """`POST /api/v1/auth/login` answer."""

    token = ProtocolString(required=True, max_length=4096)
    expires_at = Rfc3339DateTime(required=True)
    user = ProtocolNested(LoginUserSchema, required=True)


class ConflictSchema(ResponseSchema):
    """A conflict reported in a push result, from the submission's point of view.

    `value` is the submission's value, `other_value` the one it met; `winner` is `this` or `other`.
    """

    entity = ProtocolString(required=True, max_length=64)
    id = UuidString(required=True)
    field = ProtocolString(required=True, max_length=100)
    value = JsonValue(required=True, allow_none=True)
    other_value = JsonValue(required=True, allow_none=True)
    winner = ChoiceString(CONFLICT_WINNERS, required=True)
    conflict_id = UuidString(required=True)


class PushResultSchema(ResponseSchema):
    """One submission's outcome: `accepted`, `duplicate` or `rejected` (with errors)."""

    # The instance id as sent (a rejected item's may be any string, even ""), or null if none.
    instance_id = fields.String(required=True, allow_none=True)
    status = ChoiceString(SUBMISSION_STATUSES, required=True)
    revs = EntityRevs(minimum=1)
    conflicts = ProtocolList(ProtocolNested(ConflictSchema))
    errors = ProtocolList(ProtocolNested(ErrorDetailSchema))

    @validates_schema
    def _errors_match_status(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("status") == "rejected" and not data.get("errors"):
            raise ValidationError(
                _message(ItemErrorCode.REQUIRED, "A rejected submission lists its errors."),
                "errors",
            )
        if data.get("status") in ("accepted", "duplicate") and data.get("errors"):
            raise ValidationError(
                _message(ItemErrorCode.INVALID_VALUE, "Only a rejected submission has errors."),
                "errors",
            )


class PushResponseSchema(ResponseSchema):
    """`POST /api/v1/sync/push` answer: one result per submission, in order."""

    batch_id = UuidString(required=True)
    clock = HlcField(required=True)
    results = ProtocolList(ProtocolNested(PushResultSchema), required=True)
    missing_attachments = ProtocolList(
        PatternString(
            _DIGEST_RE,
            ItemErrorCode.INVALID_ATTACHMENT,
            'Must be "sha256:" followed by 64 lower-case hex digits.',
            max_length=71,
        ),
        load_default=list,
    )


class EntityRefSchema(ResponseSchema):
    entity = ProtocolString(required=True, max_length=64)
    id = UuidString(required=True)


class PulledEntitySchema(ResponseSchema):
    """One entity in its latest state; `clocks` gives each field's HLC (loaded as `Hlc`)."""

    entity = ProtocolString(required=True, max_length=64)
    id = UuidString(required=True)
    rev = StrictInteger(required=True, minimum=1)
    deleted = StrictBoolean(required=True)
    clocks = ClockMap(required=True)

    class Meta(ResponseSchema.Meta):
        # `fields` is a Schema attribute, so the field of that name is declared here.
        include = {"fields": JsonObject(required=True)}  # noqa: RUF012 (marshmallow option)


class PulledHelperSchema(ResponseSchema):
    """A helper still responsible for a household (帮扶责任人); `phone` masked."""

    id = UuidString(required=True)
    user = fields.String(allow_none=True)
    name = fields.String(required=True)
    phone = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    assigned_on = fields.String(required=True)  # YYYY-MM-DD


class PulledMeasureSchema(ResponseSchema):
    """An assistance measure (帮扶措施) of a household."""

    id = UuidString(required=True)
    type = fields.String(required=True)
    description = fields.String(allow_none=True)
    start_date = fields.String(required=True)
    end_date = fields.String(allow_none=True)
    amount = fields.Float(allow_none=True)
    status = fields.String(required=True)
    outcome = fields.String(allow_none=True)


class PulledHelpSchema(ResponseSchema):
    """The whole current help of a household on the page (replaces what the tablet had)."""

    household_id = UuidString(required=True)
    helpers = ProtocolList(ProtocolNested(PulledHelperSchema), load_default=list)
    measures = ProtocolList(ProtocolNested(PulledMeasureSchema), load_default=list)


class DueFollowupSchema(ResponseSchema):
    """A monitored household whose follow-up visit is `overdue` or `due` soon."""

    household_id = UuidString(required=True)
    village_code = fields.String(required=True)
    monitoring_type = fields.String(allow_none=True)
    interval_days = fields.Integer(required=True)
    last_visit_at = fields.String(allow_none=True)
    due_at = fields.String(allow_none=True)  # null: never visited
    state = fields.String(required=True)


class DueFollowupsSchema(ResponseSchema):
    """The caller's due follow-ups at `as_of`: the complete list, replacing the previous one."""

    as_of = fields.String(required=True)
    due = ProtocolList(ProtocolNested(DueFollowupSchema), load_default=list)


class PullResponseSchema(ResponseSchema):
    """`GET /api/v1/sync/pull` answer; page until `more` is false. `help` (the help of the
    households on the page) and `followups` (last page only) serve the monitoring work; older
    clients ignore them."""

    entities = ProtocolList(ProtocolNested(PulledEntitySchema), required=True)
    removed = ProtocolList(ProtocolNested(EntityRefSchema), load_default=list)
    cursor = ProtocolString(required=True, max_length=2048)
    more = StrictBoolean(required=True)
    clock = HlcField(required=True)
    help = ProtocolList(ProtocolNested(PulledHelpSchema))
    followups = ProtocolNested(DueFollowupsSchema)


# --- entity keys, attachments, fingerprints --------------------------------------------------


def entity_key(entity: str, entity_id: str) -> str:
    """The `base_revs`/`revs` key of an entity: `"household/<uuid>"` (id lower-cased)."""
    return f"{entity}/{entity_id.lower()}"


def parse_entity_key(key: object) -> tuple[str, str]:
    """Split `"<entity>/<uuid>"` into (entity type, lower-case id).

    Raises `ValueError` unless the entity type is a register entity (`forms.register.ENTITIES`)
    and the id a UUID.
    """
    if not isinstance(key, str) or key.count("/") != 1:
        raise ValueError('Must be "<entity>/<uuid>", e.g. "household/8f1c…".')
    entity, entity_id = key.split("/")
    if entity not in ENTITIES:
        raise ValueError(f"Unknown entity type; expected one of: {', '.join(sorted(ENTITIES))}.")
    if not _UUID_RE.fullmatch(entity_id):
        raise ValueError("The entity id must be a UUID (8-4-4-4-12 hex digits).")
    return entity, entity_id.lower()


def referenced_attachments(data: Any) -> list[str]:
    """Every attachment digest (`sha256:…`) referenced in submission data, sorted, once each.

    A submission loaded by `SubmissionSchema` already carries this list (its
    `referenced_attachments`, found while `data` was checked); this walks `data` again, for
    callers that have only the data (a tablet, before it loads its own submission). On data that
    was not loaded, objects whose `attachment` is not a string are left out.
    """
    digests = set()
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DATA_DEPTH:
            continue
        if isinstance(item, dict):
            if "attachment" in item:
                digest = item.get("attachment")
                if isinstance(digest, str):
                    digests.add(digest)
                continue
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return sorted(digests)


def submission_fingerprint(raw: Any) -> str:
    """A digest of a submission's content, independent of key order and number spelling.

    Two sends of one `instance_id` with equal fingerprints are a re-send (`duplicate`); different
    fingerprints are `instance_conflict`. Raises `TypeError` if `raw` is not JSON data.
    """
    text = canonical_document(raw)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


PathKey = str | int


def check_json_value(
    value: Any, *, max_depth: int = MAX_DATA_DEPTH
) -> list[tuple[tuple[PathKey, ...], ProtocolMessage]]:
    """Problems that would make `value` unsafe to store as JSON, as (path, message) pairs.

    Refused: non-finite numbers, NUL or unpaired surrogates in strings or keys, non-string keys,
    non-JSON types and nesting deeper than `max_depth`. Iterative, so any depth is safe.
    """
    errors: list[tuple[tuple[PathKey, ...], ProtocolMessage]] = []
    stack: list[tuple[tuple[PathKey, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if len(path) > max_depth:
            errors.append(
                (
                    path,
                    _message(ItemErrorCode.INVALID_VALUE, f"Nested deeper than {max_depth}."),
                )
            )
            continue
        if isinstance(item, dict):
            for key in reversed(list(item)):
                if not isinstance(key, str):
                    errors.append(
                        (path, _message(ItemErrorCode.INVALID_TYPE, "Keys must be strings."))
                    )
                    continue
                try:
                    _check_text(key)
                except ValidationError:
                    errors.append(
                        (
                            path,
                            _message(
                                ItemErrorCode.INVALID_VALUE,
                                "Keys must not contain NUL or surrogates.",
                            ),
                        )
                    )
                    continue
                stack.append(((*path, key), item[key]))
        elif isinstance(item, list):
            stack.extend(((*path, index), item[index]) for index in reversed(range(len(item))))
        elif isinstance(item, str):
            try:
                _check_text(item)
            except ValidationError as error:
                errors.append((path, cast(list[ProtocolMessage], error.messages)[0]))
        elif isinstance(item, float):
            if not math.isfinite(item):
                errors.append(
                    (path, _message(ItemErrorCode.INVALID_VALUE, "Numbers must be finite."))
                )
        elif item is not None and not isinstance(item, bool | int):
            errors.append((path, _message(ItemErrorCode.INVALID_TYPE, "Not a JSON value.")))
    return errors


_STR_ONLY = frozenset({str})


def _check_data(
    value: Any, ref_schema: AttachmentRefSchema | None
) -> tuple[list[tuple[tuple[PathKey, ...], Any]], list[str]]:
    """`check_json_value(value)` followed by the problems of every attachment reference in it
    (objects with an `attachment` key, each loaded with `ref_schema`; none when it is None), as
    (path, message) pairs; and when there are none, the digests the references name, sorted,
    once each (else an empty list).

    One walk for data without problems, which is nearly all data: `_plain_refs` checks it and
    finds its references at once. Only when that walk meets something to report (or a value
    that is not exactly a JSON type) do `check_json_value` and `_walk_attachment_refs` run, so
    errors, their paths and their order are theirs by construction.
    """
    refs = _plain_refs(value, find_refs=ref_schema is not None)
    if refs is not None and (ref_schema is None or _all_load(ref_schema, refs)):
        return [], sorted({ref["attachment"] for ref in refs})
    # Something to report: the reporting walks, exactly as they always ran.
    errors: list[tuple[tuple[PathKey, ...], Any]] = list(check_json_value(value))
    digests = set()
    if ref_schema is not None:
        for path, ref in _walk_attachment_refs(value):
            try:
                ref_schema.load(ref)
            except ValidationError as error:
                errors.extend(((*path, key), msg) for key, msg in _leaves(error.messages))
            else:
                digests.add(ref["attachment"])
    return (errors, []) if errors else ([], sorted(digests))


def _all_load(schema: Schema, objects: list[dict[str, Any]]) -> bool:
    try:
        for obj in objects:
            schema.load(obj)
    except ValidationError:
        return False
    return True


def _plain_refs(value: Any, *, find_refs: bool) -> list[dict[str, Any]] | None:
    # The objects with an `attachment` key in `value` (when find_refs), if `value` holds only
    # exact JSON types and nothing check_json_value would report; None otherwise. No paths are
    # built and every string is checked at once: this runs for every submission of every push.
    refs: list[dict[str, Any]] = []
    texts: list[str] = []  # every key and string value, checked for NUL and surrogates at once
    stack: list[tuple[Any, int]] = [([value], -1)]  # the root as the only child of a list
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if type(item) is dict:
            if not _STR_ONLY.issuperset(map(type, item)):
                return None
            texts.extend(item)
            if find_refs and "attachment" in item:
                # A reference holding objects or lists fails AttachmentRefSchema, so the
                # reporting walk runs: references never nest in data that passes.
                refs.append(item)
            children = item.values()
        else:
            children = item
        if depth >= MAX_DATA_DEPTH and children:
            return None  # its children are nested deeper than MAX_DATA_DEPTH
        for child in children:
            kind = type(child)
            if kind is str:
                texts.append(child)
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is float:
                if not math.isfinite(child):
                    return None
            elif not (kind is int or kind is bool or child is None):
                return None
    text = "".join(texts)
    if "\x00" in text:
        return None
    try:
        text.encode("utf-8")  # strict UTF-8 refuses exactly the surrogate code points
    except UnicodeEncodeError:
        return None
    return refs


def _walk_attachment_refs(data: Any) -> Iterator[tuple[tuple[PathKey, ...], dict[str, Any]]]:
    # Iterative and depth-bounded like check_json_value; yields in document order.
    stack: list[tuple[tuple[PathKey, ...], Any]] = [((), data)]
    while stack:
        path, item = stack.pop()
        if len(path) > MAX_DATA_DEPTH:
            continue
        if isinstance(item, dict):
            if "attachment" in item:
                yield path, item
                continue
            stack.extend(((*path, key), item[key]) for key in reversed(list(item)))
        elif isinstance(item, list):
            stack.extend(((*path, index), item[index]) for index in reversed(range(len(item))))


def _nest(errors: list[tuple[tuple[PathKey, ...], Any]]) -> Any:
    # Turn (path, message) pairs into marshmallow's nested message shape; () is the field itself.
    root: dict[PathKey, Any] = {}
    own: list[Any] = []
    for path, message in errors:
        if not path:
            own.append(message)
            continue
        node = root
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                child = node[key] = {"_schema": child}
            node = child
        leaf = node.setdefault(path[-1], [])
        if isinstance(leaf, dict):
            leaf.setdefault("_schema", []).append(message)
        else:
            leaf.append(message)
    if own and root:
        root["_schema"] = own
        return root
    return own or root


def _leaves(messages: Any) -> Iterator[tuple[PathKey, Any]]:
    # Top-level keys of a flat schema error (AttachmentRefSchema has no nesting).
    if isinstance(messages, dict):
        for key, value in messages.items():
            for message in value if isinstance(value, list) else [value]:
                yield key, message


# --- marshmallow errors as protocol details --------------------------------------------------


def _fallback_codes() -> dict[str, str]:
    # Messages of schemas that are not ours (the server's own marshmallow schemas) get a code from
    # marshmallow's default message for the same error key; anything else is `invalid_value`.
    by_key = {
        "required": ItemErrorCode.REQUIRED,
        "null": ItemErrorCode.INVALID_TYPE,
        "invalid": ItemErrorCode.INVALID_TYPE,
        "type": ItemErrorCode.INVALID_TYPE,
        "too_large": ItemErrorCode.OUT_OF_RANGE,
        "invalid_uuid": ItemErrorCode.INVALID_UUID,
        "validator_failed": ItemErrorCode.INVALID_VALUE,
    }
    codes: dict[str, str] = {}
    for name in dir(fields):
        cls = getattr(fields, name)
        if isinstance(cls, type) and issubclass(cls, fields.Field):
            for key, text in getattr(cls, "default_error_messages", {}).items():
                if key in by_key and "{" not in text:
                    codes.setdefault(text, by_key[key].value)
    codes[Schema._default_error_messages["unknown"]] = ItemErrorCode.UNKNOWN_FIELD.value
    codes[Schema._default_error_messages["type"]] = ItemErrorCode.INVALID_TYPE.value
    return codes


_FALLBACK_CODES = _fallback_codes()


def validation_details(error: ValidationError, root: str = "") -> list[ErrorDetail]:
    """Flatten a marshmallow `ValidationError` into the contract's `[{path, code, message}]`.

    Paths join object keys with `.` and list indexes as `[i]` (`submissions[3].hlc`,
    `data.members[2].birth_date`); keys that are not identifiers are written `["key"]`
    (`base_revs["household/8f1c…"]`). Schema-level errors take the path of their object. `root`
    is prefixed. Codes are `ItemErrorCode` values carried by our messages, or for foreign
    messages a code derived from marshmallow's defaults (`required`, `invalid_type`,
    `unknown_field`, …), else `invalid_value`. Order follows the input document.
    """
    details: list[ErrorDetail] = []
    stack: list[tuple[str, Any]] = [(root, error.messages)]
    while stack:
        path, messages = stack.pop()
        if isinstance(messages, dict):
            for key in reversed(list(messages)):
                child = path if key == "_schema" else _join_path(path, key)
                stack.append((child, messages[key]))
        elif isinstance(messages, list | tuple):
            stack.extend((path, message) for message in reversed(messages))
        else:
            text = str(messages)
            code = getattr(messages, "code", None) or _FALLBACK_CODES.get(
                text, ItemErrorCode.INVALID_VALUE.value
            )
            details.append({"path": path, "code": code, "message": text})
    return details


def _join_path(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    text = str(key)
    if _IDENTIFIER_RE.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"
