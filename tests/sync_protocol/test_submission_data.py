"""A submission's `data` is checked in one walk that also finds its attachment digests: the errors
(paths, codes, messages, order) are those of the separate walks it replaced, and the digests are
what `referenced_attachments` returns."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from decimal import Decimal
from enum import IntEnum
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, validate

from forms.bundled import load_sample_answers
from sync_protocol import messages
from sync_protocol.messages import (
    MAX_DATA_DEPTH,
    AttachmentRefSchema,
    CheckedData,
    JsonObject,
    JsonValue,
    PathKey,
    ProtocolString,
    PushRequestSchema,
    RequestSchema,
    SubmissionData,
    SubmissionSchema,
    _nest,
    check_json_value,
    referenced_attachments,
    validation_details,
)
from tests.sync_protocol.test_protocol_messages import DIGEST, contract_push, valid_submission

# --- the implementation before the one-walk check, verbatim: the reference ---------------------


def reference_walk_attachment_refs(
    data: Any,
) -> Iterator[tuple[tuple[PathKey, ...], dict[str, Any]]]:
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


def reference_leaves(messages: Any) -> Iterator[tuple[PathKey, Any]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            for message in value if isinstance(value, list) else [value]:
                yield key, message


def reference_referenced_attachments(data: Any) -> list[str]:
    digests = {
        ref["attachment"]
        for _, ref in reference_walk_attachment_refs(data)
        if isinstance(ref.get("attachment"), str)
    }
    return sorted(digests)


class ReferenceJsonValue(JsonValue):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        errors = check_json_value(value)
        if errors:
            raise ValidationError(_nest(errors))
        return value


class ReferenceJsonObject(JsonObject):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        errors: list[Any] = check_json_value(value)
        if self.check_attachments:
            for path, ref in reference_walk_attachment_refs(value):
                try:
                    AttachmentRefSchema().load(ref)
                except ValidationError as error:
                    errors.extend(
                        ((*path, key), msg) for key, msg in reference_leaves(error.messages)
                    )
        if errors:
            raise ValidationError(_nest(errors))
        return value


class NewData(RequestSchema):
    data = JsonObject(required=True, check_attachments=True)
    plain = JsonObject()
    value = JsonValue(allow_none=True)


class ReferenceData(RequestSchema):
    data = ReferenceJsonObject(required=True, check_attachments=True)
    plain = ReferenceJsonObject()
    value = ReferenceJsonValue(allow_none=True)


class SubmissionDataOnly(RequestSchema):
    data = SubmissionData(required=True)


def outcome(schema: Schema, body: dict[str, Any]) -> Any:
    try:
        return ("loaded", schema.load(body))
    except ValidationError as error:
        return ("errors", validation_details(error))


# --- data of every kind: plain, broken, deep, with good and bad references --------------------


class Level(IntEnum):
    HIGH = 3


class Text(str):
    pass


DIGESTS = ["sha256:" + "0" * 64, DIGEST, "sha256:" + "f" * 64]
characters = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "/", "\\", "中"])
texts = st.text(characters, max_size=6)
keys = texts | st.sampled_from(["attachment", "filename", "a"]) | st.sampled_from([1, None])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | texts
    | st.sampled_from([Decimal("1.5"), (1, 2), Level.HIGH, Text("sub"), b"x"])
)
ref_texts = st.sampled_from(
    [
        *DIGESTS,
        "sha256:" + "AB" * 32,
        "md5:abc",
        "door.jpg",
        "../etc/passwd",
        "c:\\x.jpg",
        "image/jpeg",
        "jpeg",
        "",
        "x\x00",
    ]
)


good_refs = st.builds(
    lambda digest, name: {"attachment": digest, "filename": name, "content_type": "image/png"},
    st.sampled_from(DIGESTS),
    st.sampled_from(["a.png", "门.png"]),
)


def refs(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    member = ref_texts | st.none() | st.integers() | children
    odd = st.fixed_dictionaries(
        {"attachment": member},
        optional={"filename": member, "content_type": member, "size": member},
    )
    return good_refs | odd


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.dictionaries(texts, children, max_size=3).map(collections.OrderedDict)
        | refs(children)
    )


def nested(value: Any, levels: int) -> Any:
    for level in range(levels):
        value = {"x": [value]} if level % 2 else [{"y": value}]
    return value


any_data = st.one_of(
    st.recursive(scalars, containers, max_leaves=25),
    st.builds(
        nested,
        st.recursive(scalars, containers, max_leaves=6),
        st.integers(MAX_DATA_DEPTH - 4, MAX_DATA_DEPTH + 2),
    ),
)
plain_texts = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=6
)
plain_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | plain_texts,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(plain_texts, children, max_size=4)
        | good_refs
    ),
    max_leaves=25,
).filter(lambda data: depth(data) <= MAX_DATA_DEPTH)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def as_object(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {"answer": value}


# --- properties ---------------------------------------------------------------------------------


@given(any_data, any_data, any_data)
def test_errors_are_those_of_the_separate_walks(data: Any, plain: Any, value: Any) -> None:
    body = {"data": as_object(data), "plain": as_object(plain), "value": value}
    assert outcome(NewData(), body) == outcome(ReferenceData(), body)
    for single in ({"data": data}, {"data": as_object(data)}):
        new, reference = outcome(NewData(), single), outcome(ReferenceData(), single)
        assert new == reference


@given(st.one_of(any_data, plain_data))
def test_submission_data_keeps_the_digests_referenced_attachments_finds(data: Any) -> None:
    data = as_object(data)
    new = outcome(SubmissionDataOnly(), {"data": data})
    reference = outcome(ReferenceData(), {"data": data})
    if reference[0] == "errors":
        assert new == reference
        return
    checked = new[1]["data"]
    assert isinstance(checked, CheckedData) and checked.value is data
    assert checked.referenced_attachments == reference_referenced_attachments(data)
    assert checked.referenced_attachments == referenced_attachments(data)


@given(plain_data)
def test_data_without_problems_is_checked_in_one_walk(data: Any) -> None:
    # The reporting walks run only when there is something to report; were they to run for
    # every submission, the properties above would prove nothing about the one walk.
    data = as_object(data)
    expected = reference_referenced_attachments(data)
    slow = AssertionError("reporting walk")
    with (
        mock.patch.object(messages, "check_json_value", side_effect=slow),
        mock.patch.object(messages, "_walk_attachment_refs", side_effect=slow),
    ):
        loaded = SubmissionDataOnly().load({"data": data})
    assert loaded["data"].referenced_attachments == expected


@given(st.one_of(any_data, plain_data))
def test_referenced_attachments_of_any_data_is_unchanged(data: Any) -> None:
    assert referenced_attachments(data) == reference_referenced_attachments(data)


# --- examples -----------------------------------------------------------------------------------


def photo(digest: str = DIGEST, **changes: Any) -> dict[str, Any]:
    return {"attachment": digest, "filename": "door.jpg", "content_type": "image/jpeg", **changes}


def test_a_loaded_submission_lists_the_digests_its_data_refers_to() -> None:
    other = "sha256:" + "0" * 64
    data = {
        "photo": photo(),
        "members": [{"signature": photo(other)}, {"signature": photo()}],
        "note": "attachment",
    }
    loaded = SubmissionSchema().load(valid_submission(data=data))
    assert loaded["data"] is data
    assert loaded["referenced_attachments"] == [other, DIGEST] == referenced_attachments(data)
    assert "referenced_attachments" not in SubmissionSchema().dump(loaded)


def test_push_items_carry_the_digests_and_data_without_references_has_none() -> None:
    body = contract_push()
    with_photo = valid_submission(data={"photo": photo()})
    body["submissions"] = [with_photo, valid_submission(), valid_submission(data={"x": 1.5})]
    items = PushRequestSchema().load(body)["submissions"]
    digests = [item.submission["referenced_attachments"] for item in items if item.submission]
    assert digests == [[DIGEST], [], []]


def test_the_bundled_sample_visit_loads_with_its_house_photo() -> None:
    data = load_sample_answers("household_visit")
    loaded = SubmissionSchema().load(valid_submission(data=data))
    assert loaded["referenced_attachments"] == referenced_attachments(data)
    assert len(loaded["referenced_attachments"]) == 1


def test_referenced_attachments_is_not_a_wire_field() -> None:
    submission = valid_submission(referenced_attachments=[DIGEST])
    body = contract_push()
    body["submissions"] = [submission]
    [item] = PushRequestSchema().load(body)["submissions"]
    assert [(e["path"], e["code"]) for e in item.errors] == [
        ("referenced_attachments", "unknown_field")
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"a": "x\x00", "b": {1: "x", "c": "\ud800"}, "photo": photo(size=1)},
        {"photo": photo(filename="a/b.jpg"), "other": photo(attachment="md5:x"), "x": float("inf")},
        {"list": [photo(), {"attachment": {"attachment": DIGEST}}, [photo(content_type="jpeg")]]},
        {"deep": nested(photo(attachment="bad"), MAX_DATA_DEPTH + 3)},
        {"edge": nested({"attachment": "bad"}, MAX_DATA_DEPTH - 1)},
        {2: photo(attachment="bad"), "ok": photo()},  # references under keys that are refused
        {"\x00": {"photo": photo(attachment="bad")}},
        {"values": [Decimal("1.5"), (1,), Level.HIGH, Text("x\x00")]},
    ],
)
def test_reported_problems_keep_their_paths_codes_messages_and_order(data: Any) -> None:
    assert outcome(NewData(), {"data": data}) == outcome(ReferenceData(), {"data": data})
    assert outcome(SubmissionDataOnly(), {"data": data}) == outcome(ReferenceData(), {"data": data})


def test_references_too_deep_to_check_are_neither_checked_nor_listed() -> None:
    data = {"deep": nested(photo(), MAX_DATA_DEPTH + 3)}
    errors = outcome(NewData(), {"data": data})
    assert errors == outcome(ReferenceData(), {"data": data})
    assert errors[0] == "errors" and {e["code"] for e in errors[1]} == {"invalid_value"}
    assert referenced_attachments(data) == []


# --- protocol fields still run marshmallow's checks where they matter --------------------------


class WithValidator(RequestSchema):
    code = ProtocolString(required=True, validate=validate.Length(max=2))
    note = ProtocolString(allow_none=True)


def test_fields_with_validators_null_and_missing_values_still_go_marshmallows_way() -> None:
    assert WithValidator().load({"code": "ab", "note": None}) == {"code": "ab", "note": None}
    with pytest.raises(ValidationError) as caught:
        WithValidator().load({"code": "abc"})
    assert [(d["path"], d["code"]) for d in validation_details(caught.value)] == [
        ("code", "invalid_value")
    ]
    with pytest.raises(ValidationError) as caught:
        WithValidator().load({"note": "x"})
    assert [(d["path"], d["code"]) for d in validation_details(caught.value)] == [
        ("code", "required")
    ]
    with pytest.raises(ValidationError) as caught:
        WithValidator().load({"code": None})
    assert [(d["path"], d["code"]) for d in validation_details(caught.value)] == [
        ("code", "invalid_type")
    ]
