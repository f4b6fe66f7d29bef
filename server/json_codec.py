"""JSON for the documents fieldsync stores: orjson (several times faster than the standard library,
which a push of 500 visits felt: it writes ~8,000 documents), with the standard library wherever
orjson would differ, so that behaviour never changes. (Request bodies stay with the standard
library: a megabyte is parsed in a few milliseconds, and telling orjson's texts from the others
would cost as much.)

Reading: orjson refuses `NaN`, `1e400`, lone surrogates, bad UTF-8 and nesting deeper than 1,024,
and reads integers beyond 64 bits as floats; a text with any of these (for the last, any run of
19 digits) is read by `json` exactly as before. Writing: orjson writes NaN and infinities as
`null` (valid JSON, where `json.dumps` wrote `NaN`, which PostgreSQL refuses); they only reach a
stored document inside a quarantined submission that sent `1e400`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from sync_protocol.messages import check_json_value

_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS
# 19 digits in a row may be an integer orjson cannot hold (2**63 has 19 digits). Found by turning
# every digit into a 9 and looking for nineteen 9s: several times cheaper than a regex.
_DIGITS_TO_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_RUN = b"9" * 19


def _is_for_orjson(text: object) -> bool:
    """Whether orjson reads `text` exactly as the standard library would."""
    if isinstance(text, str):
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: not for orjson either
            return False
    elif isinstance(text, bytes | bytearray | memoryview):
        data = bytes(text)
    else:  # not a text at all: the standard library says what is wrong with it
        return False
    return data.translate(_DIGITS_TO_NINES).find(_LONG_RUN) < 0


def dumps(value: Any) -> str:
    """The JSON text of `value` (compact, characters as they are; what orjson refuses is written
    by `json.dumps`, escaped). `TypeError` for values that are not JSON data, as `json.dumps`."""
    try:
        return orjson.dumps(value, option=_DUMP_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)


def loads(
    text: str | bytes | bytearray | memoryview, *, fallback: Callable[[Any], Any] = json.loads
) -> Any:
    """The value of JSON `text`, exactly as `fallback` (by default `json.loads`) reads it; only
    texts orjson reads the same way are left to orjson."""
    if _is_for_orjson(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return fallback(text)


# --- documents the database accepts -------------------------------------------------------------
#
# PostgreSQL's jsonb (and text) refuse NUL, and UTF-8 cannot encode a lone surrogate; a client can
# send either inside a submission that is then rejected and kept verbatim. Such documents are kept
# as their ASCII-escaped JSON text (lossless), diagnostics (results, errors) with those characters
# written as `\uXXXX` (readable; the submission itself is the record).

ESCAPED_KEY = "escaped_json"
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
# Deeper documents are kept as text too: the JSON encoders recurse (orjson stops at 255 levels,
# the standard library at Python's recursion limit), `ascii_json` does not.
STORABLE_DEPTH = 200


def _escape_match(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def storable_text(text: str) -> str:
    """`text` with NUL and lone surrogates written as `\\uXXXX` (a text any database accepts)."""
    if _UNSTORABLE_TEXT.search(text) is None:
        return text
    return _UNSTORABLE_TEXT.sub(_escape_match, text)


def storable(value: Any) -> Any:
    """`value` (JSON data) with every key and string made `storable_text`; non-finite numbers
    become None. For diagnostics sent back and stored; iterative, so any depth is safe."""
    if isinstance(value, str):
        return storable_text(value)
    if not isinstance(value, dict | list):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, dict):
            copy: Any = {}
            for key, child in item.items():
                name = storable_text(key) if isinstance(key, str) else str(key)
                copy[name] = None
                stack.append((child, copy, name))
        elif isinstance(item, list):
            copy = [None] * len(item)
            stack.extend((child, copy, index) for index, child in enumerate(item))
        elif isinstance(item, str):
            copy = storable_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            copy = None
        else:
            copy = item
        parent[slot] = copy
    return root[0]


def is_storable(value: Any) -> bool:
    """Whether `value` (JSON data) holds no NUL, lone surrogate or non-finite number anywhere
    and is nested at most `STORABLE_DEPTH` deep (the protocol's own check, at that depth)."""
    return not check_json_value(value, max_depth=STORABLE_DEPTH)


def stored_document(document: dict[str, Any]) -> dict[str, Any]:
    """`document` as stored: itself when the database accepts it, else
    `{"escaped_json": <its JSON text, ASCII-escaped>}` (also for a document that is exactly such
    a wrapper, so reading back with `received_document` is never ambiguous)."""
    if is_storable(document) and set(document) != {ESCAPED_KEY}:
        return document
    return {ESCAPED_KEY: ascii_json(document)}


def ascii_json(value: Any, *, sort_keys: bool = False) -> str:
    """`json.dumps(value, ensure_ascii=True, sort_keys=sort_keys)` for JSON data, at any depth
    (iterative; `NaN` and `Infinity` as the standard library writes them)."""
    out: list[str] = []
    # Each entry is a value to write or, as a str, literal text (separators, closing brackets).
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        is_text, item = stack.pop()
        if is_text:
            out.append(item)
        elif isinstance(item, dict):
            keys = sorted(item) if sort_keys else list(item)
            stack.append((True, "}"))
            for index in reversed(range(len(keys))):
                key = keys[index]
                stack.append((False, item[key]))
                prefix = ", " if index else ""
                stack.append((True, f"{prefix}{json.dumps(str(key))}: "))
            out.append("{")
        elif isinstance(item, list | tuple):
            stack.append((True, "]"))
            for index in reversed(range(len(item))):
                stack.append((False, item[index]))
                if index:
                    stack.append((True, ", "))
            out.append("[")
        else:
            out.append(json.dumps(item))
    return "".join(out)


def received_document(stored: dict[str, Any]) -> dict[str, Any]:
    """The document `stored_document` was given."""
    if set(stored) == {ESCAPED_KEY} and isinstance(stored[ESCAPED_KEY], str):
        value: dict[str, Any] = json.loads(stored[ESCAPED_KEY])
        return value
    return stored
