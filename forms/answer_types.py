"""What a well-formed answer of each field type looks like on the wire, and its typed value.

Checks one value in isolation (type and shape only; no limits, choices or expressions). Never
raises on bad input: it returns the problem (issue code and message) instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from forms.definition import AttachmentMedia, FieldType
from forms.expressions import Value
from forms.issues import IssueCode

MAX_TEXT_LENGTH = 10_000
"""Longest text answer accepted at all, whatever the field says (keeps patterns cheap)."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", re.IGNORECASE)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_TIME = re.compile(
    r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,9}))?)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?"
)
_GEO_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
MAX_GEO_POINTS = 5_000
"""Most points a geotrace or geoshape answer may have."""
MAX_GEO_TEXT = 250_000
"""Longest geotrace or geoshape answer text accepted at all."""
MEDIA_CONTENT_TYPES: dict[AttachmentMedia, tuple[str, ...]] = {
    AttachmentMedia.AUDIO: ("audio/", "application/octet-stream"),
    AttachmentMedia.VIDEO: ("video/", "application/octet-stream"),
}
"""The content types (prefixes) an attachment of each media must declare; media not listed take
any content type (photo, signature and document always did: stored submissions stay valid)."""
_ATTACHMENT_KEYS = frozenset({"attachment", "filename", "content_type"})
_GEOPOINT_KEYS = frozenset({"latitude", "longitude", "altitude", "accuracy"})


@dataclass(frozen=True, slots=True)
class AnswerProblem:
    """Why a raw answer is not a well-formed answer of its field's type."""

    code: IssueCode
    message: str


Reader = Callable[[object], Value | AnswerProblem]
"""Reads one answered (not missing, null or '') raw value as one field type."""


def is_unanswered(raw: object) -> bool:
    """Missing, null and '' all mean "no answer"; an empty list is an answer (nothing selected)."""
    return raw is None or raw == ""


def parse_answer(
    field_type: FieldType, raw: object, *, media: AttachmentMedia | None = None
) -> Value | AnswerProblem:
    """Read `raw` (JSON data) as an answer of `field_type`: its typed value (None when unanswered)
    or, when it is not a well-formed answer of that type, the problem.

    text: a string. integer: a JSON integer, or a float without fraction; never a boolean.
    decimal: a JSON number (not a string, not a boolean, finite). boolean: true/false.
    date: `YYYY-MM-DD`. datetime: RFC 3339 with `Z` or an offset. time: `HH:MM`, `HH:MM:SS` or
    `HH:MM:SS.fff`, optionally with `Z` or an offset (its value is the wall-clock time as
    `HH:MM:SS[.fff]`, offset dropped). barcode: text. select_one: a code string.
    select_multiple: a list of distinct code strings. geopoint: `{"latitude", "longitude",
    "altitude"?, "accuracy"?}` within range. attachment: `{"attachment": "sha256:<64 hex>",
    "filename", "content_type"}`. geotrace / geoshape: ODK text `lat lon [alt [acc]];…` (at least
    2 points; a geoshape at least 4, closed). rank: choice codes separated by spaces, each once
    (a tuple of codes). An attachment's `media` may require a content type
    (`MEDIA_CONTENT_TYPES`). Notes, repeats and calculations have no parsed value here
    (always None).
    """
    if is_unanswered(raw):
        return None
    reader = reader_for(field_type, media)
    if reader is None:
        return None
    return reader(raw)


def reader_for(field_type: FieldType, media: AttachmentMedia | None = None) -> Reader | None:
    """What `parse_answer` applies to an answered value of `field_type` (None for the types that
    hold no answer: notes, repeats, calculations), for callers that look it up once. With
    `media`, an attachment's reader also checks the content type that media needs
    (`MEDIA_CONTENT_TYPES`)."""
    if field_type is FieldType.ATTACHMENT and media in MEDIA_CONTENT_TYPES:
        return _MEDIA_READERS[media]
    return _READERS.get(field_type)


def is_valid_uuid(raw: object) -> bool:
    """Whether `raw` is a UUID in its usual 8-4-4-4-12 hexadecimal text form."""
    # The pattern admits exactly the texts uuid.UUID reads in this form.
    return isinstance(raw, str) and _UUID.fullmatch(raw) is not None


def _invalid(code: IssueCode, message: str) -> AnswerProblem:
    return AnswerProblem(code, message)


def _text(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, str):
        return _invalid(IssueCode.INVALID_TYPE, "expected text")
    if len(raw) > MAX_TEXT_LENGTH:
        return _invalid(IssueCode.TOO_LONG, f"text longer than {MAX_TEXT_LENGTH} characters")
    return raw


def _integer(raw: object) -> Value | AnswerProblem:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return _invalid(IssueCode.INVALID_TYPE, "expected a whole number")
    if isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            return _invalid(IssueCode.INVALID_TYPE, "expected a whole number")
        raw = int(raw)
    if abs(raw) > 10**15:
        return _invalid(IssueCode.INVALID_TYPE, "number out of range")
    return raw


def _decimal(raw: object) -> Value | AnswerProblem:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return _invalid(IssueCode.INVALID_TYPE, "expected a number")
    if isinstance(raw, float) and not math.isfinite(raw):
        return _invalid(IssueCode.INVALID_TYPE, "expected a finite number")
    if abs(raw) > 10**15:
        return _invalid(IssueCode.INVALID_TYPE, "number out of range")
    return raw


def _boolean(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, bool):
        return _invalid(IssueCode.INVALID_TYPE, "expected true or false")
    return raw


def parse_iso_date(raw: object) -> date | None:
    """A date from `YYYY-MM-DD` text, or None."""
    if not isinstance(raw, str) or not _DATE.fullmatch(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def parse_rfc3339(raw: object) -> datetime | None:
    """An aware datetime from RFC 3339 text with `Z` or an offset, or None."""
    if not isinstance(raw, str):
        return None
    match = _DATETIME.fullmatch(raw)
    if match is None:
        return None
    day, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]  # Python keeps microseconds: at most 6 digits
    offset = "+00:00" if offset.upper() == "Z" else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
    except ValueError:
        return None


def parse_time(raw: object) -> str | None:
    """The wall-clock time of `HH:MM[:SS[.fff]]` text with an optional `Z`/offset, as
    `HH:MM:SS` or `HH:MM:SS.fff` (trailing zeros of the fraction dropped, offset dropped), or
    None. Such texts order as the times do, so they compare as strings."""
    if not isinstance(raw, str):
        return None
    match = _TIME.fullmatch(raw)
    if match is None:
        return None
    hours, minutes, seconds, fraction, _offset = match.groups()
    fraction = (fraction or "").rstrip("0")
    return f"{hours}:{minutes}:{seconds or '00'}" + (f".{fraction}" if fraction else "")


def _time(raw: object) -> Value | AnswerProblem:
    parsed = parse_time(raw)
    if parsed is None:
        return _invalid(
            IssueCode.INVALID_TIME, "expected a 24-hour time as HH:MM or HH:MM:SS (offset optional)"
        )
    return parsed


def _date(raw: object) -> Value | AnswerProblem:
    parsed = parse_iso_date(raw)
    if parsed is None:
        return _invalid(IssueCode.INVALID_DATE, "expected a date as YYYY-MM-DD")
    return parsed


def _datetime(raw: object) -> Value | AnswerProblem:
    parsed = parse_rfc3339(raw)
    if parsed is None:
        return _invalid(IssueCode.INVALID_DATETIME, "expected an RFC 3339 date-time with an offset")
    return parsed


def _select_one(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, str):
        return _invalid(IssueCode.INVALID_TYPE, "expected one choice code")
    return raw


def _select_multiple(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, list) or not all(isinstance(code, str) for code in raw):
        return _invalid(IssueCode.INVALID_TYPE, "expected a list of choice codes")
    if len(set(raw)) != len(raw):
        return _invalid(IssueCode.INVALID_CHOICE, "a choice is selected more than once")
    return tuple(raw)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _geopoint(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, dict) or not set(raw) <= _GEOPOINT_KEYS:
        return _invalid(
            IssueCode.INVALID_GEOPOINT,
            "expected {latitude, longitude, altitude?, accuracy?}",
        )
    latitude, longitude = raw.get("latitude"), raw.get("longitude")
    if not (_is_number(latitude) and _is_number(longitude)):
        return _invalid(IssueCode.INVALID_GEOPOINT, "latitude and longitude must be numbers")
    assert isinstance(latitude, int | float) and isinstance(longitude, int | float)
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return _invalid(IssueCode.INVALID_GEOPOINT, "latitude or longitude out of range")
    for key in ("altitude", "accuracy"):
        if key in raw and not _is_number(raw[key]):
            return _invalid(IssueCode.INVALID_GEOPOINT, f"{key} must be a number")
    if "accuracy" in raw and raw["accuracy"] < 0:
        return _invalid(IssueCode.INVALID_GEOPOINT, "accuracy must not be negative")
    return f"{latitude} {longitude}"


def parse_geo_points(raw: str) -> list[tuple[float, ...]] | str:
    """The points of ODK geotrace/geoshape text (`lat lon [alt [acc]]` separated by `;`, spaces
    around points and one trailing `;` allowed), or why it is not such text."""
    if len(raw) > MAX_GEO_TEXT:
        return f"longer than {MAX_GEO_TEXT} characters"
    parts = [part.strip() for part in raw.split(";")]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if len(parts) > MAX_GEO_POINTS:
        return f"more than {MAX_GEO_POINTS} points"
    points = []
    for index, part in enumerate(parts):
        numbers = part.split()
        if not 2 <= len(numbers) <= 4 or not all(_GEO_NUMBER.fullmatch(n) for n in numbers):
            return f"point {index + 1} is not 'latitude longitude [altitude [accuracy]]'"
        point = tuple(float(n) for n in numbers)
        if not all(math.isfinite(n) for n in point):
            return f"point {index + 1} has a number out of range"
        if not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
            return f"point {index + 1}: latitude or longitude out of range"
        if len(point) == 4 and point[3] < 0:
            return f"point {index + 1}: accuracy must not be negative"
        points.append(point)
    return points


def _geotrace(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, str):
        return _invalid(IssueCode.INVALID_GEOTRACE, "expected 'lat lon alt acc;lat lon …' text")
    points = parse_geo_points(raw)
    if isinstance(points, str):
        return _invalid(IssueCode.INVALID_GEOTRACE, points)
    if len(points) < 2:
        return _invalid(IssueCode.INVALID_GEOTRACE, "a geotrace needs at least 2 points")
    return raw.strip()


def _geoshape(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, str):
        return _invalid(IssueCode.INVALID_GEOSHAPE, "expected 'lat lon alt acc;lat lon …' text")
    points = parse_geo_points(raw)
    if isinstance(points, str):
        return _invalid(IssueCode.INVALID_GEOSHAPE, points)
    if len(points) < 4:
        return _invalid(IssueCode.INVALID_GEOSHAPE, "a geoshape needs at least 4 points")
    if points[0][:2] != points[-1][:2]:
        return _invalid(
            IssueCode.INVALID_GEOSHAPE, "a geoshape must be closed: its last point is its first"
        )
    return raw.strip()


def _rank(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, str) or len(raw) > MAX_TEXT_LENGTH:
        return _invalid(IssueCode.INVALID_TYPE, "expected choice codes separated by spaces")
    codes = raw.split()
    if len(set(codes)) != len(codes):
        return _invalid(IssueCode.INVALID_RANK, "a choice is ranked more than once")
    return tuple(codes)


def _attachment(raw: object) -> Value | AnswerProblem:
    if not isinstance(raw, dict) or set(raw) != _ATTACHMENT_KEYS:
        return _invalid(
            IssueCode.INVALID_ATTACHMENT, "expected {attachment, filename, content_type}"
        )
    reference, filename, content_type = raw["attachment"], raw["filename"], raw["content_type"]
    if not isinstance(reference, str) or not _SHA256.fullmatch(reference):
        return _invalid(IssueCode.INVALID_ATTACHMENT, "attachment must be sha256:<64 hex digits>")
    if (
        not isinstance(filename, str)
        or not 0 < len(filename) <= 255
        or any(c in filename for c in "/\\\x00")
    ):
        return _invalid(IssueCode.INVALID_ATTACHMENT, "filename must be a plain file name")
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        return _invalid(IssueCode.INVALID_ATTACHMENT, "content_type must be a media type")
    return reference


def _media_reader(media: AttachmentMedia) -> Reader:
    accepted = MEDIA_CONTENT_TYPES[media]

    def read(raw: object) -> Value | AnswerProblem:
        reference = _attachment(raw)
        if isinstance(reference, AnswerProblem):
            return reference
        assert isinstance(raw, dict)
        content_type = raw["content_type"].lower()
        if not any(
            content_type.startswith(kind) if kind.endswith("/") else content_type == kind
            for kind in accepted
        ):
            return _invalid(
                IssueCode.INVALID_ATTACHMENT,
                f"a {media.value} attachment must be {accepted[0]}* (or {accepted[1]}), "
                f"not {content_type}",
            )
        return reference

    return read


_READERS: dict[FieldType, Reader] = {
    FieldType.TEXT: _text,
    FieldType.INTEGER: _integer,
    FieldType.DECIMAL: _decimal,
    FieldType.BOOLEAN: _boolean,
    FieldType.DATE: _date,
    FieldType.DATETIME: _datetime,
    FieldType.SELECT_ONE: _select_one,
    FieldType.SELECT_MULTIPLE: _select_multiple,
    FieldType.GEOPOINT: _geopoint,
    FieldType.ATTACHMENT: _attachment,
    FieldType.TIME: _time,
    FieldType.BARCODE: _text,
    FieldType.GEOTRACE: _geotrace,
    FieldType.GEOSHAPE: _geoshape,
    FieldType.RANK: _rank,
}

_MEDIA_READERS: dict[AttachmentMedia, Reader] = {
    media: _media_reader(media) for media in MEDIA_CONTENT_TYPES
}
