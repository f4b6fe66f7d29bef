"""How each XLSForm question type (as pyxform 4 resolves it, aliases included) becomes a
fieldsync field: ONE table (`map_type`), the field's JSON shape next to each entry.

Every construct the form language gained in issue 13 (time, audio/video/file, barcode, a range's
step, geotrace/geoshape, rank) maps to its own field type; what fieldsync has no equivalent for is
dropped with a located warning, metadata is dropped because the server records it itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyxform.question_type_dictionary import QUESTION_TYPE_DICT


@dataclass(frozen=True)
class TypeMapping:
    """What a question of one XLSForm type becomes.

    action: "field" (a fieldsync field of `spec`'s shape), "drop" (the question is dropped with
    `message` as a located warning), "metadata" (dropped: ODK metadata), "block" (refused with
    `message`: collected data would be wrong), "unknown" (not an XLSForm type)."""

    action: str
    spec: dict[str, Any] = field(default_factory=dict)
    message: str = ""


_METADATA_NOTES = {
    "start": "the submission's own start time",
    "end": "the submission's own end time",
    "today": "the submission's date",
    "deviceid": "the submission's device",
    "username": "the submission's user",
    "email": "the submission's user",
}


def canonical_type(raw_type: str) -> str | None:
    """pyxform's canonical name for a question type: `gps` → "geopoint", `get start time` →
    "start", `imei` → "deviceid", `add photo prompt` → "image", `q int` → "integer"; None when
    pyxform does not know it either. Select and loop types are handled by the reader."""
    text = " ".join(raw_type.split())
    aliases = {
        "imei": "deviceid",
        "photo": "image",
        "int": "integer",
        "string": "text",
        "dateTime": "datetime",
        "gps": "geopoint",
        "location": "geopoint",
        "trigger": "acknowledge",
        "sim id": "simserial",
        "simid": "simserial",
    }
    for candidate in (text, text.lower()):
        if candidate in aliases:
            return aliases[candidate]
        if candidate in _SIMPLE:
            return candidate
    entry = QUESTION_TYPE_DICT.get(text) or QUESTION_TYPE_DICT.get(text.lower())
    if entry is None:
        return None
    bind = entry.get("bind", {})
    control = entry.get("control", {})
    preload = bind.get("jr:preloadParams")
    if preload is not None:
        return str(preload).lower()
    tag = control.get("tag")
    if tag == "upload":
        media = str(control.get("mediatype", ""))
        return {"image": "image", "audio": "audio", "video": "video"}.get(
            media.partition("/")[0], "file"
        )
    if tag == "trigger":
        return "acknowledge"
    if tag in ("select", "select1") or "select" in text.lower():
        return "select"  # a select type without its list (`select one`): the reader says so
    if tag == "range":
        return "range"
    if bind.get("readonly") == "true()":
        return "note"
    return {
        "int": "integer",
        "decimal": "decimal",
        "date": "date",
        "dateTime": "datetime",
        "time": "time",
        "geopoint": "geopoint",
        "geotrace": "geotrace",
        "geoshape": "geoshape",
        "barcode": "barcode",
        "odk:rank": "rank",
        "string": "text" if tag == "input" else "calculate",
    }.get(str(bind.get("type")))


TYPE_CHECKED: dict[str, dict[str, Any]] = {
    "phone number": {
        "type": "text",
        "pattern": "[0-9]*",
        "hint": {"zh": "只能填数字。", "en": "Enter numbers only."},
    },
    "percentage": {"type": "integer", "min": 0, "max": 100},
    "number of days in last month": {
        "type": "integer",
        "min": 0,
        "max": 31,
        "hint": {"zh": "填 0–31 的数。", "en": "Enter a number 0-31."},
    },
    "number of days in last six months": {
        "type": "integer",
        "min": 0,
        "max": 183,
        "hint": {"zh": "填 0–183 的数。", "en": "Enter a number 0-183."},
    },
    "number of days in last year": {
        "type": "integer",
        "min": 0,
        "max": 365,
        "hint": {"zh": "填 0–365 的数。", "en": "Enter a number 0-365."},
    },
}
"""pyxform's question types that are an input with their own check and hint (`phone number` is
digits typed in, not the `phonenumber` metadata): pyxform's constraint becomes the field's
`pattern` or `min`/`max` (kept only when the row has no `constraint` of its own, which replaces
pyxform's), its hint is the default hint."""
TYPE_CHECK_KEYS = ("pattern", "min", "max")

_SIMPLE = frozenset(
    {
        "text",
        "integer",
        "decimal",
        "date",
        "datetime",
        "time",
        "boolean",
        "geopoint",
        "geotrace",
        "geoshape",
        "image",
        "audio",
        "video",
        "file",
        "barcode",
        "note",
        "calculate",
        "hidden",
        "acknowledge",
        "range",
        "rank",
        "start",
        "end",
        "today",
        "deviceid",
        "username",
        "email",
        "phonenumber",
        "simserial",
        "subscriberid",
        "audit",
        "start-geopoint",
        "background-audio",
        "background-geopoint",
        "xml-external",
        "csv-external",
        "osm",
        *TYPE_CHECKED,
    }
)


def map_type(canonical: str, *, appearance: str = "") -> TypeMapping:
    """The mapping of one canonical XLSForm type (see `canonical_type`)."""
    simple = {
        "text": "text",
        "integer": "integer",
        "decimal": "decimal",
        "date": "date",
        "datetime": "datetime",
        "boolean": "boolean",  # fieldsync's own XLSForm type
        "geopoint": "geopoint",
        "note": "note",
        "calculate": "calculated",
        "time": "time",  # answers "HH:MM[:SS]"
        "barcode": "barcode",  # a text answer, scanned
        "geotrace": "geotrace",
        "geoshape": "geoshape",
        "rank": "rank",  # the reader fills `choices`
        "range": "integer",  # the reader adds min, max and step (decimal if any is not whole)
    }
    if canonical in simple:
        return TypeMapping("field", {"type": simple[canonical]})
    if canonical in TYPE_CHECKED:
        return TypeMapping("field", dict(TYPE_CHECKED[canonical]))
    if canonical == "select":
        return TypeMapping(
            "drop",
            message="a select needs the list its choices come from: write `select_one LIST` "
            "or `select_multiple LIST` with LIST's choices on the choices sheet",
        )
    if canonical.startswith("uri:"):  # the same metadata, written as a URI
        canonical = canonical.removeprefix("uri:")
    if canonical == "image":
        media = "signature" if "signature" in appearance else "photo"
        return TypeMapping("field", {"type": "attachment", "media": media})
    if canonical in ("audio", "video", "file"):
        return TypeMapping("field", {"type": "attachment", "media": canonical})
    if canonical in _METADATA_NOTES:
        return TypeMapping(
            "metadata",
            message=f"metadata {canonical!r} dropped: fieldsync records "
            f"{_METADATA_NOTES[canonical]} with every submission",
        )
    if canonical in ("phonenumber", "simserial", "subscriberid", "audit", "start-geopoint"):
        return TypeMapping(
            "metadata", message=f"metadata {canonical!r} dropped: fieldsync does not collect it"
        )
    if canonical == "acknowledge":
        return TypeMapping("drop", message="acknowledge/trigger questions are not supported")
    if canonical == "hidden":
        return TypeMapping("drop", message="hidden questions are not supported")
    return TypeMapping(
        "drop", message=f"{canonical!r} questions are not supported (no fieldsync equivalent)"
    )
