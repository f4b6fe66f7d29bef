"""The fast JSON codec reads every text exactly as the standard library does, and writes text the
standard library reads back as the same value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import json_codec


def _exact(value: Any) -> Any:
    """`value` with every scalar tagged by its type (True is not 1, 1.0 is not 1), floats by
    their repr (so NaN equals NaN and -0.0 differs from 0.0)."""
    if isinstance(value, dict):
        return {"dict": [(key, _exact(item)) for key, item in value.items()]}
    if isinstance(value, list):
        return ["list", [_exact(item) for item in value]]
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: beyond 64 bits too
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # lone surrogates included
    st.text(alphabet="0123456789", min_size=15, max_size=25),  # digit runs inside strings
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=25,
)


@given(documents, st.booleans())
def test_every_text_reads_as_the_standard_library_reads_it(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert _exact(json_codec.loads(text)) == _exact(json.loads(text))
    try:
        encoded = text.encode()
    except UnicodeEncodeError:  # a lone surrogate written as itself: no UTF-8 for it
        return
    assert _exact(json_codec.loads(encoded)) == _exact(json.loads(encoded))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        "18446744073709551616",
        "-9223372036854775809",
        "9223372036854775807",
        "[1e400, -1e400, 1e-400]",
        '"\\ud800"',
        "-0",
        "-0.0",
        "NaN",
        "[" * 2000 + "]" * 2000,
    ],
)
def test_texts_orjson_reads_differently_are_read_the_standard_way(text: str) -> None:
    try:
        expected = _exact(json.loads(text))
    except RecursionError:
        with pytest.raises(RecursionError):
            json_codec.loads(text)
        return
    assert _exact(json_codec.loads(text)) == expected


def test_a_text_neither_reads_fails_as_the_standard_library_does() -> None:
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads('{"a": }')


@given(documents)
def test_written_text_reads_back_as_the_same_value(value: Any) -> None:
    if _holds_non_finite(value):
        return  # see the next test
    assert _exact(json.loads(json_codec.dumps(value))) == _exact(value)


def test_non_finite_numbers_are_written_as_null() -> None:
    # JSON has no NaN or infinity (PostgreSQL refuses the `NaN` json.dumps would write). They
    # only reach a stored document as a quarantined submission's out-of-range literal (1e400).
    assert json.loads(json_codec.dumps([math.inf, -math.inf, math.nan, 1.5])) == [None] * 3 + [1.5]


def _holds_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_holds_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_non_finite(v) for v in value)
    return False


def test_values_that_are_not_json_data_are_refused() -> None:
    with pytest.raises(TypeError):
        json_codec.dumps({"when": object()})


def test_what_is_not_a_text_fails_as_the_standard_library_fails() -> None:
    # SQLAlchemy's SQLite JSON reader relies on this TypeError to pass stored numbers through.
    with pytest.raises(TypeError):
        json_codec.loads(5)  # type: ignore[arg-type]
    assert json_codec.loads(memoryview(b'{"a": [1]}')) == {"a": [1]}
