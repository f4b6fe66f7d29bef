"""`canonical_document` is `canonical_value` (same text, same errors), and so fingerprints are
byte-identical to the pure-Python canonical JSON they were defined by."""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_protocol import merge
from sync_protocol.merge import canonical_document, canonical_value
from sync_protocol.messages import submission_fingerprint

# Floats whose canonical decimal differs from repr (integral, exponent, signed zero), and ones
# right at the edges where repr switches between fixed and exponent notation.
EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -5800.0,
    0.1,
    -0.5,
    22.8156,
    0.0001,
    0.00009999999999999999,
    1e-05,
    1.5e-07,
    123456789012345.6,
    9999999999999998.0,
    1e16,
    1.7976931348623157e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
]

characters = (
    st.characters()
    | st.characters(codec=None, categories=["Cs"])  # lone surrogates, as Python strings allow
    | st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "é", "中", "😀"])
)
texts = st.text(characters, max_size=12)
numbers = (
    st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.integers(min_value=-(2**60), max_value=2**60).map(float)
    | st.sampled_from(EDGE_FLOATS)
    | st.decimals(places=3, allow_nan=False)
    | st.decimals()
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(texts, children, max_size=5)
    ),
    max_leaves=30,
)


def reference_fingerprint(raw: Any) -> str:
    """The fingerprint as defined: SHA-256 of the pure-Python canonical text."""
    text = canonical_value(raw)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def outcome(function: Any, value: Any) -> tuple[str, str]:
    try:
        return ("text", function(value))
    except Exception as error:  # comparing failures too: same type, same message
        return (type(error).__name__, str(error))


@given(json_values)
def test_canonical_document_is_canonical_value_for_any_json_value(value: Any) -> None:
    assert outcome(canonical_document, value) == outcome(canonical_value, value)


@given(json_values)
def test_fingerprints_are_byte_identical_to_the_pure_python_definition(value: Any) -> None:
    assert outcome(submission_fingerprint, value) == outcome(reference_fingerprint, value)


@pytest.mark.parametrize("number", EDGE_FLOATS)
def test_every_float_edge_is_spelled_canonically(number: float) -> None:
    for value in (number, [number], {"x": number, "y": [1, number]}):
        assert canonical_document(value) == canonical_value(value)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda x: not x.is_integer() and "e" not in repr(x)
        )
        | texts,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_plain_json_is_encoded_by_the_c_encoder_without_the_pure_python_walk(value: Any) -> None:
    # What json.loads makes of a tablet's submission (no integral or exponent floats) must take
    # the fast way, or the property tests above would prove nothing about it.
    expected = canonical_value(value)
    with mock.patch.object(merge, "canonical_value", side_effect=AssertionError("slow path")):
        assert canonical_document(value) == expected
    assert expected == json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def test_number_spellings_and_key_order_still_share_one_fingerprint() -> None:
    a = {"income": 5800, "location": {"lat": 22.8156, "accuracy": 8.0}, "ids": ["x", "y"]}
    b = {"ids": ("x", "y"), "location": {"accuracy": 8, "lat": 22.8156}, "income": 5800.0}
    c = {
        "income": Decimal("5800.00"),
        "ids": ["x", "y"],
        "location": {"accuracy": 8.0, "lat": 22.8156},
    }
    assert submission_fingerprint(a) == submission_fingerprint(b) == submission_fingerprint(c)
    assert submission_fingerprint(a) == reference_fingerprint(a)


class Level(IntEnum):
    HIGH = 3


class LoudInt(int):
    def __str__(self) -> str:
        return "loud"


class Reordered(dict[str, Any]):
    def items(self) -> Any:  # what json.dumps reads; canonical_value reads keys and items
        return [("z", 0)]


class ItemsFail(dict[str, Any]):
    def items(self) -> Any:  # json.dumps fails inside; canonical_value never calls it
        raise LookupError("no items")


@pytest.mark.parametrize(
    "value",
    [
        {"level": Level.HIGH},
        {"n": LoudInt(5)},
        Reordered(a=1),
        {"a": [ItemsFail(b=2)]},
        collections.OrderedDict(b=1, a=2),
        MappingProxyType({"a": 1}),
        {"a": Decimal("1E+3")},
        {"a": [Decimal("-0.000")]},
        {"a": 10**5000},  # past int->str limits: the same ValueError
        {1: "x"},
        {True: "x"},
        {None: "x"},
        {"a": datetime.date(2026, 1, 1)},
        {"a": {1, 2}},
        {"a": b"bytes"},
        {"a": 1j},
    ],
)
def test_unusual_values_behave_as_canonical_value_does(value: Any) -> None:
    assert outcome(canonical_document, value) == outcome(canonical_value, value)
    assert outcome(submission_fingerprint, value) == outcome(reference_fingerprint, value)


def test_non_json_data_still_raises_type_error() -> None:
    with pytest.raises(TypeError, match="date"):
        submission_fingerprint({"a": datetime.date(2026, 1, 1)})
    with pytest.raises(TypeError, match="keys"):
        submission_fingerprint({"a": {1: "x"}})


def test_nesting_too_deep_for_the_c_encoder_is_canonicalised_the_slow_way() -> None:
    deep: Any = "bottom"
    for _ in range(5000):
        deep = {"x": [deep, 1.5]}
    assert canonical_document(deep) == canonical_value(deep)
