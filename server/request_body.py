"""Decoding request bodies: content type, gzip, size limits and JSON, with a clear 4xx for each
way a body can be wrong. The decompressed size is limited as strictly as the raw size, so a small
gzip bomb cannot exhaust memory. Routes call `json_object()`; nothing else reads request bodies.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from flask import request
from marshmallow import EXCLUDE, Schema, ValidationError

from server.errors import BadRequest, TooLarge, UnsupportedMediaType, ValidationFailed
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    MAX_SAFE_INTEGER,
    ProtocolSchema,
    QueryInteger,
    validation_details,
)

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000

_CHUNK = 64 * 1024


def json_object(max_size: int) -> dict[str, Any]:
    """The request body as a JSON object, or a BadRequest/TooLarge/UnsupportedMediaType error."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            "request body must be application/json",
            details={"content_type": request.mimetype or None},
        )
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in {"identity", "gzip"}:
        raise UnsupportedMediaType(
            "only gzip content encoding is accepted", details={"content_encoding": encoding}
        )
    raw = request.get_data(cache=False)  # Werkzeug enforces MAX_CONTENT_LENGTH (413) while reading
    if len(raw) > max_size:
        raise TooLarge(
            "request body is larger than the configured limit", details={"limit": max_size}
        )
    if encoding == "gzip":
        raw = gunzip_limited(raw, max_size)
    return parse_json_object(raw)


def gunzip_limited(raw: bytes, max_size: int) -> bytes:
    """Decompress gzip data, refusing (413) as soon as the output would exceed `max_size`."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    data = raw
    try:
        while data:
            out += decompressor.decompress(data, _CHUNK)
            if len(out) > max_size:
                raise TooLarge(
                    "decompressed request body is larger than the configured limit",
                    details={"limit": max_size},
                )
            data = decompressor.unconsumed_tail
        out += decompressor.flush()
    except zlib.error as exc:
        raise BadRequest("body is not valid gzip data as Content-Encoding claims") from exc
    if not decompressor.eof:
        raise BadRequest("gzip body is truncated")
    if len(out) > max_size:
        raise TooLarge("decompressed request body is larger than the configured limit")
    return bytes(out)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise BadRequest("body is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    return value


def query_arguments() -> dict[str, str]:
    """The query string, one value per name. A name given twice is a 422: which one was meant
    cannot be known, and taking the first silently would hide the client's mistake."""
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ValidationFailed(
            "a query parameter is given more than once",
            [
                {
                    "path": name,
                    "code": ItemErrorCode.INVALID_VALUE.value,
                    "message": f"{name} is given more than once",
                }
                for name in repeated
            ],
        )
    return request.args.to_dict()


def load_with(schema: Schema, payload: Mapping[str, Any]) -> Any:
    """`payload` loaded by a marshmallow schema, or a 422 listing every `{path, code, message}`."""
    try:
        return schema.load(payload)
    except ValidationError as err:
        raise ValidationFailed(
            "request is well-formed but invalid", validation_details(err)
        ) from err


class PageQuerySchema(ProtocolSchema):
    """`?limit=&offset=` of a listing (`limit` 1 to 1000, default 100); other arguments are the
    route's business."""

    class Meta:
        unknown = EXCLUDE

    limit = QueryInteger(minimum=1, maximum=MAX_PAGE_LIMIT, load_default=DEFAULT_PAGE_LIMIT)
    offset = QueryInteger(minimum=0, maximum=MAX_SAFE_INTEGER, load_default=0)


def page_arguments() -> tuple[int, int]:
    """`?limit=&offset=` of a listing, checked (a 422 names the bad one)."""
    args = {name: request.args[name] for name in ("limit", "offset") if name in request.args}
    page = load_with(PageQuerySchema(), args)
    return page["limit"], page["offset"]
