"""Wire messages: the contract's examples load and dump, bad input gives path-carrying details."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, validate

from sync_protocol.clock import Hlc
from sync_protocol.errors import ItemErrorCode
from sync_protocol.messages import (
    AttachmentRefSchema,
    ErrorDetail,
    ErrorResponseSchema,
    LoginRequestSchema,
    LoginResponseSchema,
    ProtocolMessage,
    PullRequestSchema,
    PullResponseSchema,
    PushRequestSchema,
    PushResponseSchema,
    SubmissionItem,
    SubmissionSchema,
    referenced_attachments,
    submission_fingerprint,
    validation_details,
)

DEVICE = "8f1c0c7e-1111-4222-8333-444455556666"
BATCH = "0b7a52a4-5c6f-4d2e-9a0e-1e2f3a4b5c6d"
INSTANCE = "3d6f0a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6"
HOUSEHOLD = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
MEMBER = "6b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
DIGEST = "sha256:" + "ab" * 32


def contract_push() -> dict[str, Any]:
    """The push request of sync-protocol.md with its placeholders filled in."""
    return {
        "device_id": DEVICE,
        "batch_id": BATCH,
        "clock": f"1763795400123-00000-{DEVICE}",
        "submissions": [
            {
                "instance_id": INSTANCE,
                "form_id": "household_visit",
                "form_version": 3,
                "collected_at": "2026-11-20T08:15:00+08:00",
                "hlc": f"1763597700000-00001-{DEVICE}",
                "device_seq": 42,
                "base_revs": {f"household/{HOUSEHOLD}": 7, f"member/{MEMBER}": 2},
                "data": {"...": "answers, as the form defines"},
            }
        ],
    }


def contract_push_response() -> dict[str, Any]:
    return {
        "batch_id": BATCH,
        "clock": "1763795401000-00000-server",
        "results": [
            {
                "instance_id": INSTANCE,
                "status": "accepted",
                "revs": {f"household/{HOUSEHOLD}": 8},
                "conflicts": [
                    {
                        "entity": "household",
                        "id": HOUSEHOLD,
                        "field": "per_capita_income",
                        "value": 5800,
                        "other_value": 6400,
                        "winner": "other",
                        "conflict_id": BATCH,
                    }
                ],
            },
            {"instance_id": INSTANCE, "status": "duplicate", "revs": {f"household/{HOUSEHOLD}": 8}},
            {
                "instance_id": INSTANCE,
                "status": "rejected",
                "errors": [
                    {"path": "data.members[2].birth_date", "code": "invalid_date", "message": "..."}
                ],
            },
        ],
        "missing_attachments": [DIGEST],
    }


def contract_pull_response() -> dict[str, Any]:
    return {
        "entities": [
            {
                "entity": "household",
                "id": HOUSEHOLD,
                "rev": 8,
                "deleted": False,
                "fields": {"village_code": "452802101001", "per_capita_income": 6400, "...": "..."},
                "clocks": {"per_capita_income": f"1763597700000-00001-{DEVICE}"},
            }
        ],
        "removed": [{"entity": "household", "id": MEMBER}],
        "cursor": "opaque",
        "more": False,
        "clock": "1763795401000-00000-server",
    }


def details_of(schema: Schema, body: Any) -> list[ErrorDetail]:
    with pytest.raises(ValidationError) as caught:
        schema.load(body)
    return validation_details(caught.value)


def item_errors(submission: dict[str, Any]) -> list[ErrorDetail]:
    body = contract_push()
    body["submissions"] = [submission]
    item = PushRequestSchema().load(body)["submissions"][0]
    assert isinstance(item, SubmissionItem) and not item.is_valid
    return item.errors


def valid_submission(**changes: Any) -> dict[str, Any]:
    submission: dict[str, Any] = contract_push()["submissions"][0]
    submission.update(changes)
    return submission


# --- the contract's examples ------------------------------------------------------------------


def test_contract_push_request_loads_with_clocks_times_and_keys_typed() -> None:
    push = PushRequestSchema().load(contract_push())
    assert push["device_id"] == DEVICE
    assert push["clock"] == Hlc(1763795400123, 0, DEVICE)
    [item] = push["submissions"]
    assert item.is_valid and item.errors == [] and item.index == 0
    assert item.instance_id == INSTANCE
    submission = item.submission
    assert submission is not None
    assert submission["hlc"] == Hlc(1763597700000, 1, DEVICE)
    assert submission["collected_at"] == datetime(
        2026, 11, 20, 8, 15, tzinfo=timezone(timedelta(hours=8))
    )
    assert submission["base_revs"] == {f"household/{HOUSEHOLD}": 7, f"member/{MEMBER}": 2}


def test_contract_push_request_dumps_back_to_the_same_json() -> None:
    schema = PushRequestSchema()
    assert schema.dump(schema.load(contract_push())) == contract_push()


def test_contract_push_response_loads_and_dumps_back_unchanged() -> None:
    schema = PushResponseSchema()
    loaded = schema.load(contract_push_response())
    assert loaded["clock"] == Hlc(1763795401000, 0, "server")
    assert loaded["results"][0]["conflicts"][0]["winner"] == "other"
    assert schema.dump(loaded) == contract_push_response()


def test_contract_pull_response_loads_and_dumps_back_unchanged() -> None:
    schema = PullResponseSchema()
    loaded = schema.load(contract_pull_response())
    assert loaded["entities"][0]["clocks"]["per_capita_income"] == Hlc(1763597700000, 1, DEVICE)
    assert loaded["entities"][0]["fields"]["per_capita_income"] == 6400
    assert schema.dump(loaded) == contract_pull_response()


def test_login_request_and_response_follow_the_contract() -> None:
    request = {"username": "li.wei", "password": "s3cret", "device_id": DEVICE}
    assert LoginRequestSchema().load(request) == request
    assert LoginRequestSchema().load({"username": "li.wei", "password": "s3cret"})
    response = {
        "token": "t0k3n",
        "expires_at": "2026-11-21T08:15:00Z",
        "user": {"username": "li.wei", "role": "collector", "regions": ["452802101001"]},
    }
    loaded = LoginResponseSchema().load(response)
    assert loaded["expires_at"] == datetime(2026, 11, 21, 8, 15, tzinfo=UTC)
    assert LoginResponseSchema().dump(loaded)["expires_at"] == "2026-11-21T08:15:00+00:00"


def test_error_response_carries_code_message_and_details() -> None:
    body = {
        "error": {
            "code": "validation_error",
            "message": "invalid",
            "details": [{"path": "username", "code": "required", "message": "Missing."}],
        }
    }
    assert ErrorResponseSchema().load(body) == body
    plain = ErrorResponseSchema().load({"error": {"code": "not_found", "message": "no"}})
    assert plain["error"]["details"] == {}


# --- unknown fields: strict requests, lenient responses ---------------------------------------


def test_request_with_an_unknown_field_is_refused_with_its_path() -> None:
    body = contract_push()
    body["batchid"] = BATCH
    assert {
        "path": "batchid",
        "code": "unknown_field",
        "message": "Unknown field; accepted: batch_id, clock, device_id, submissions.",
    } in details_of(PushRequestSchema(), body)


def test_response_with_fields_from_a_newer_server_still_loads() -> None:
    body = contract_pull_response()
    body["server_version"] = "2.0"
    body["entities"][0]["etag"] = "x"
    loaded = PullResponseSchema().load(body)
    assert "server_version" not in loaded and "etag" not in loaded["entities"][0]


# --- submissions: one bad item never sinks the batch ------------------------------------------


def test_a_bad_submission_becomes_an_item_with_errors_and_the_others_still_load() -> None:
    body = contract_push()
    bad = valid_submission(hlc="yesterday")
    body["submissions"] = [bad, contract_push()["submissions"][0], "not an object"]
    items = PushRequestSchema().load(body)["submissions"]
    assert [item.is_valid for item in items] == [False, True, False]
    assert items[0].raw is bad and items[0].instance_id == INSTANCE
    assert items[0].errors[0]["path"] == "hlc"
    assert items[0].errors[0]["code"] == ItemErrorCode.INVALID_CLOCK.value
    assert items[2].instance_id is None
    assert items[2].errors == [
        {"path": "", "code": "invalid_type", "message": "Not a valid object."}
    ]


def test_two_entries_with_one_instance_id_both_load_and_are_processed_as_resends() -> None:
    body = contract_push()
    body["submissions"] = body["submissions"] * 2
    items = PushRequestSchema().load(body)["submissions"]
    assert [item.instance_id for item in items] == [INSTANCE, INSTANCE]


@pytest.mark.parametrize(
    ("changes", "path", "code"),
    [
        ({"instance_id": "not-a-uuid"}, "instance_id", "invalid_uuid"),
        ({"form_version": 0}, "form_version", "out_of_range"),
        ({"form_version": "3"}, "form_version", "invalid_type"),
        ({"form_version": 3.0}, "form_version", "invalid_type"),
        ({"form_version": True}, "form_version", "invalid_type"),
        ({"device_seq": 0}, "device_seq", "out_of_range"),
        ({"device_seq": 2**53}, "device_seq", "out_of_range"),
        ({"collected_at": "2026-11-20T08:15:00"}, "collected_at", "invalid_datetime"),
        ({"collected_at": "2026-11-20"}, "collected_at", "invalid_datetime"),
        ({"collected_at": "2026-02-30T08:15:00+08:00"}, "collected_at", "invalid_datetime"),
        ({"collected_at": "2026-11-20T08:15:00+25:00"}, "collected_at", "invalid_datetime"),
        ({"hlc": "1763597700000-1-dev"}, "hlc", "invalid_clock"),
        ({"hlc": 1763597700000}, "hlc", "invalid_type"),
        (
            {"base_revs": {f"farm/{HOUSEHOLD}": 1}},
            f'base_revs["farm/{HOUSEHOLD}"]',
            "invalid_entity_key",
        ),
        ({"base_revs": {"household/42": 1}}, 'base_revs["household/42"]', "invalid_entity_key"),
        (
            {"base_revs": {f"household/{HOUSEHOLD}": -1}},
            f'base_revs["household/{HOUSEHOLD}"]',
            "out_of_range",
        ),
        ({"base_revs": []}, "base_revs", "invalid_type"),
        ({"data": []}, "data", "invalid_type"),
        ({"data": {"note": "a\x00b"}}, "data.note", "invalid_value"),
        ({"data": {"income": float("nan")}}, "data.income", "invalid_value"),
        ({"data": {"members": [{}, {"name": "\ud800"}]}}, "data.members[1].name", "invalid_value"),
        ({"form_id": ""}, "form_id", "invalid_value"),
        ({"form_id": "f" * 65}, "form_id", "invalid_value"),
        ({"data": None}, "data", "invalid_type"),
        ({"collected_at": "0001-01-01T00:00:00+14:00"}, "collected_at", "invalid_datetime"),
        ({"collected_at": "9999-12-31T23:59:59-14:00"}, "collected_at", "invalid_datetime"),
        ({"collected_at": "1999-12-31T23:59:59Z"}, "collected_at", "out_of_range"),
        ({"collected_at": "2000-01-01T07:59:59+08:00"}, "collected_at", "out_of_range"),
    ],
)
def test_malformed_submission_fields_are_reported_with_path_and_code(
    changes: dict[str, Any], path: str, code: str
) -> None:
    assert (path, code) in [
        (e["path"], e["code"]) for e in item_errors(valid_submission(**changes))
    ]


def test_collected_at_from_2000_to_the_end_of_the_wire_format_loads() -> None:
    # Only the server knows its own clock: the future is its check, not the message's.
    for text in ("2000-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00"):
        assert SubmissionSchema().load(valid_submission(collected_at=text))["collected_at"]


def test_collected_at_in_utc_or_with_fractional_seconds_is_accepted() -> None:
    for text in ("2026-11-20T00:15:00Z", "2026-11-20T08:15:00.123456789+08:00"):
        loaded = SubmissionSchema().load(valid_submission(collected_at=text))
        assert loaded["collected_at"].utcoffset() is not None


def test_missing_required_fields_are_each_reported() -> None:
    errors = item_errors({"instance_id": INSTANCE})
    assert {e["path"] for e in errors if e["code"] == "required"} == {
        "form_id",
        "form_version",
        "collected_at",
        "hlc",
        "device_seq",
        "data",
    }


def test_base_revs_ids_are_lower_cased_and_the_same_entity_twice_is_refused() -> None:
    loaded = SubmissionSchema().load(
        valid_submission(base_revs={f"household/{HOUSEHOLD.upper()}": 1})
    )
    assert loaded["base_revs"] == {f"household/{HOUSEHOLD}": 1}
    both = {f"household/{HOUSEHOLD}": 1, f"household/{HOUSEHOLD.upper()}": 2}
    assert "invalid_entity_key" in [
        e["code"] for e in item_errors(valid_submission(base_revs=both))
    ]


def test_base_revs_may_be_omitted_by_a_device_that_saw_no_entity() -> None:
    submission = valid_submission()
    del submission["base_revs"]
    assert SubmissionSchema().load(submission)["base_revs"] == {}


def test_a_batch_over_the_limit_fails_as_a_whole_before_items_are_loaded() -> None:
    body = contract_push()
    body["submissions"] = ["garbage"] * 4
    assert details_of(PushRequestSchema(max_submissions=3), body) == [
        {"path": "submissions", "code": "too_many_items", "message": "At most 3 items."}
    ]
    assert len(PushRequestSchema(max_submissions=4).load(body)["submissions"]) == 4


def test_push_envelope_errors_are_request_errors() -> None:
    assert details_of(PushRequestSchema(), []) == [
        {"path": "", "code": "invalid_type", "message": "Not a valid object."}
    ]
    body = contract_push()
    body["submissions"] = {"0": {}}
    body["device_id"] = None
    assert [(e["path"], e["code"]) for e in details_of(PushRequestSchema(), body)] == [
        ("device_id", "invalid_type"),
        ("submissions", "invalid_type"),
    ]


# --- attachments ------------------------------------------------------------------------------


def photo(**changes: Any) -> dict[str, Any]:
    return {"attachment": DIGEST, "filename": "door.jpg", "content_type": "image/jpeg", **changes}


def test_attachment_reference_loads_and_is_listed() -> None:
    data = {"photo": photo(), "members": [{"signature": photo(attachment="sha256:" + "0" * 64)}]}
    assert AttachmentRefSchema().load(photo()) == photo()
    SubmissionSchema().load(valid_submission(data=data))
    assert referenced_attachments(data) == sorted([DIGEST, "sha256:" + "0" * 64])


@pytest.mark.parametrize(
    ("ref", "path", "code"),
    [
        (
            photo(attachment="sha256:" + "AB" * 32),
            "data.members[0].photo.attachment",
            "invalid_attachment",
        ),
        (photo(attachment="md5:abc"), "data.members[0].photo.attachment", "invalid_attachment"),
        (photo(filename="../../etc/passwd"), "data.members[0].photo.filename", "invalid_value"),
        (photo(content_type="jpeg"), "data.members[0].photo.content_type", "invalid_value"),
        (photo(size=12), "data.members[0].photo.size", "unknown_field"),
        ({"attachment": DIGEST}, "data.members[0].photo.filename", "required"),
    ],
)
def test_malformed_attachment_references_are_reported_where_they_are(
    ref: dict[str, Any], path: str, code: str
) -> None:
    errors = item_errors(valid_submission(data={"members": [{"photo": ref}]}))
    assert (path, code) in [(e["path"], e["code"]) for e in errors]


# --- pull query, fingerprints -----------------------------------------------------------------


def test_pull_limit_comes_from_the_query_string_and_is_bounded_by_the_server() -> None:
    schema = PullRequestSchema(max_limit=200)
    assert schema.load({"cursor": "abc", "limit": "50"}) == {"cursor": "abc", "limit": 50}
    assert schema.load({}) == {"limit": 200}
    assert [e["code"] for e in details_of(schema, {"limit": "201"})] == ["out_of_range"]
    assert [e["code"] for e in details_of(schema, {"limit": "ten"})] == ["invalid_type"]
    assert [e["code"] for e in details_of(schema, {"limit": "0"})] == ["out_of_range"]


def test_fingerprint_ignores_key_order_and_number_spelling_but_not_content() -> None:
    submission = contract_push()["submissions"][0]
    reordered = dict(reversed(list(submission.items())))
    assert submission_fingerprint(submission) == submission_fingerprint(reordered)
    assert submission_fingerprint({"x": 5800}) == submission_fingerprint({"x": 5800.0})
    assert submission_fingerprint(submission) != submission_fingerprint(
        {**submission, "device_seq": 43}
    )


def test_deeply_nested_data_is_refused_and_still_fingerprinted_without_recursion_errors() -> None:
    deep: Any = "bottom"
    for _ in range(5000):
        deep = {"x": [deep]}
    errors = item_errors(valid_submission(data=deep))
    assert [e["code"] for e in errors] == ["invalid_value"]
    assert errors[0]["path"].startswith("data.x[0].x[0]")
    assert submission_fingerprint(valid_submission(data=deep)).startswith("sha256:")


# --- validation_details -----------------------------------------------------------------------


def test_nested_list_errors_flatten_into_indexed_paths_under_a_root() -> None:
    body = contract_pull_response()
    body["entities"].append({**body["entities"][0], "rev": 0, "clocks": {"x": "bad"}})
    with pytest.raises(ValidationError) as caught:
        PullResponseSchema().load(body)
    assert [(d["path"], d["code"]) for d in validation_details(caught.value, root="body")] == [
        ("body.entities[1].rev", "out_of_range"),
        ("body.entities[1].clocks.x", "invalid_clock"),
    ]


def test_rejected_result_must_list_errors() -> None:
    body = contract_push_response()
    del body["results"][2]["errors"]
    assert details_of(PushResponseSchema(), body) == [
        {
            "path": "results[2].errors",
            "code": "required",
            "message": "A rejected submission lists its errors.",
        }
    ]


def test_messages_of_foreign_marshmallow_schemas_get_stable_codes() -> None:
    class ServerOwnSchema(Schema):
        count = fields.Integer(required=True)
        name = fields.String(validate=validate.Length(max=2))
        items = fields.List(fields.Integer())

    with pytest.raises(ValidationError) as caught:
        ServerOwnSchema().load({"name": "long", "items": [1, "x"], "extra": 1})
    codes = {d["path"]: d["code"] for d in validation_details(caught.value)}
    assert codes == {
        "count": "required",
        "name": "invalid_value",
        "items[1]": "invalid_type",
        "extra": "unknown_field",
    }


def test_coded_messages_keep_their_code_when_copied_or_formatted() -> None:
    message = ProtocolMessage("out_of_range", "Must be below {max}.")
    assert copy.deepcopy(message).code == "out_of_range"
    assert (
        message.format(max=3) == "Must be below 3." and message.format(max=3).code == "out_of_range"
    )


# --- fuzzing ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
submission_keys = st.sampled_from([*valid_submission(), "extra"])


@st.composite
def mutated_pushes(draw: st.DrawFn) -> Any:
    """A valid push with random keys replaced, removed or added: reaches every field's checks."""
    body = contract_push()
    submission = body["submissions"][0]
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(["envelope", "submission"]))
        container = body if target == "envelope" else submission
        key = draw(
            st.sampled_from([*container, "extra"]) if target == "envelope" else submission_keys
        )
        if draw(st.booleans()):
            container[key] = draw(json_values)
        else:
            container.pop(key, None)
    return body


@given(st.one_of(json_values, mutated_pushes()))
def test_any_json_input_to_a_push_loads_or_raises_validation_error_only(body: Any) -> None:
    try:
        loaded = PushRequestSchema(max_submissions=5).load(body)
    except ValidationError as error:
        details = validation_details(error)
        assert details
        assert all(isinstance(d["path"], str) and d["code"] and d["message"] for d in details)
        json.dumps(details)
    else:
        assert isinstance(loaded, dict)
        for item in loaded["submissions"]:
            assert item.is_valid != bool(item.errors)
