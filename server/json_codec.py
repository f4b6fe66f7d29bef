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
from collections.abc import Callable
from typing import Any

import orjson

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
