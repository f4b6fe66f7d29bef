"""Fuzzing the push against the real app on SQLite and PostgreSQL: arbitrary JSON (NUL, lone
surrogates, huge and tiny numbers, extreme dates and offsets, deep nesting, long strings, wrong
types) in every position of a submission and of the batch envelope. Whatever one item holds: no
5xx, the valid neighbour in the same batch is stored and merged, and nothing is half-applied (a
rejected item is in the quarantine and changed nothing; the register holds the neighbour's value).

Bounded and deterministic (`derandomize=True`, no example database) so CI is stable and quick.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.changes.models import Change
from server.households.models import Household
from server.submissions.models import Submission
from server.submissions.payload import sent_payload
from server.sync.push import _fingerprint
from server.users.models import Role
from tests.conftest import VILLAGE_A1
from tests.sync.helpers import HOUSEHOLD_A, MEMBERS_A, Tablet, load_register, visit

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies -------------------------------------------------------------------------------

ODD_TEXTS = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\udc80y",
    "\ud83d\ude00",  # a surrogate pair written as two escapes: one character, valid
    "字" * 65,
    "x" * 20_000,
    "household/" + str(HOUSEHOLD_A),
    "member/" + str(MEMBERS_A[0]),
    str(uuid.uuid4()),
    "sha256:" + "a" * 64,
    "0000000000000-00000-x",
    "9999999999999-99999-" + "n" * 64,
    "1763597700000-00001-" + "n" * 65,
]
ODD_DATES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2999-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T08:15:00.1234567890+08:00",
    "2026-11-20T08:15:00+23:59",
    "2026-11-20",
    "0000-00-00",
    "9999-12-31",
    "1900-01-01",
]
ODD_NUMBERS = [
    0,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    1e-300,
    0.1,
    2**31 - 1,
    2**31,
    2**53 - 1,
    2**53,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**30,
    999_999_999_999,
    1_000_000_000_000,
]

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(ODD_TEXTS),
    st.sampled_from(ODD_DATES),
    st.lists(st.sampled_from(["a", "\x00", "\ud800", "字", "\udfff"]), max_size=6).map("".join),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(ODD_NUMBERS),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


json_values = st.one_of(
    st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
        ),
        max_leaves=12,
    ),
    st.integers(min_value=20, max_value=400).map(_nested),
)

TOP_KEYS = [
    "instance_id",
    "form_id",
    "form_version",
    "collected_at",
    "hlc",
    "device_seq",
    "base_revs",
    "data",
]
ANSWER_KEYS = sorted(visit())
MEMBER_KEYS = sorted(visit()["members"][0])

Mutation = tuple[str, Any, Any]  # (where, key, value)
mutations = st.one_of(
    # One answer or one envelope value changed to a plain value: items that reach the form's
    # validation, the binding, the column bounds and the merge.
    st.tuples(st.just("answer"), st.sampled_from(ANSWER_KEYS), scalars),
    st.tuples(
        st.just("member"),
        st.tuples(st.integers(min_value=0, max_value=2), st.sampled_from(MEMBER_KEYS)),
        scalars,
    ),
    st.tuples(st.just("top"), st.sampled_from(TOP_KEYS), scalars),
    # Anything anywhere.
    st.tuples(st.just("top"), st.sampled_from(TOP_KEYS) | texts, json_values),
    st.tuples(st.just("drop"), st.sampled_from(TOP_KEYS), st.none()),
    st.tuples(st.just("answer"), st.sampled_from(ANSWER_KEYS) | texts, json_values),
    st.tuples(
        st.just("member"),
        st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from(MEMBER_KEYS) | texts),
        json_values,
    ),
    st.tuples(
        st.just("base_revs"),
        st.sampled_from([f"household/{HOUSEHOLD_A}", f"member/{MEMBERS_A[0]}"]) | texts,
        json_values,
    ),
    st.tuples(st.just("whole"), st.none(), json_values),
)


def _mutated(item: dict[str, Any], changes: list[Mutation]) -> Any:
    result: Any = copy.deepcopy(item)
    for where, key, value in changes:
        if not isinstance(result, dict):
            return result
        if where == "whole":
            return value
        if where == "top":
            result[key] = value
        elif where == "drop":
            result.pop(key, None)
        elif where == "answer" and isinstance(result.get("data"), dict):
            result["data"][key] = value
        elif where == "member" and isinstance(result.get("data"), dict):
            index, name = key
            members = result["data"].get("members")
            if isinstance(members, list) and index < len(members):
                if isinstance(members[index], dict):
                    members[index][name] = value
            else:
                kept = members[:3] if isinstance(members, list) else []
                result["data"]["members"] = [*kept, {name: value}]
        elif where == "base_revs":
            base_revs = result.get("base_revs")
            if isinstance(base_revs, dict):
                base_revs[key] = value
    return result


# --- the app under test -----------------------------------------------------------------------


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def _post(tablet: Tablet, body: Any) -> Any:
    # As a client's JSON encoder writes it: non-ASCII (lone surrogates too) as escapes.
    return tablet.client.post(
        "/api/v1/sync/push",
        data=json.dumps(body),
        content_type="application/json",
        headers=tablet.headers,
    )


def _envelope(tablet: Tablet, submissions: list[Any]) -> dict[str, Any]:
    return {
        "device_id": tablet.device_id,
        "batch_id": str(uuid.uuid4()),
        "clock": str(tablet.clock.now()),
        "submissions": submissions,
    }


def _income(rt) -> float:
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None
        return float(household.annual_income or 0)


def _check_quarantined(rt, bad: Any, result: dict[str, Any]) -> None:
    """A rejected item (not a re-send) is kept with its content hash, readable back, and wrote
    nothing to the register."""
    codes = {e.get("code") for e in result.get("errors", [])}
    with rt.db.unit_of_work(write=False) as session:
        if "instance_conflict" not in codes:
            row = session.scalars(
                select(Submission).where(Submission.content_hash == _fingerprint(bad))
            ).first()
            assert row is not None, result
            assert row.status.value == "rejected"
            sent_payload(rt.codec, row.payload, row.instance_id)  # decodes
        if isinstance(bad, dict):
            try:
                instance_id = uuid.UUID(str(bad.get("instance_id")))
            except ValueError:
                return
            changed = session.scalar(
                select(func.count()).select_from(Change).where(Change.submission_id == instance_id)
            )
            stored = session.get(Submission, instance_id)
            if stored is None or stored.status.value == "rejected":
                assert changed == 0


def test_any_item_leaves_its_valid_neighbour_stored_and_merged(tablet, rt):
    incomes = itertools.count(10_001)

    @FUZZ
    @given(changes=st.lists(mutations, min_size=1, max_size=3))
    @example(changes=[("answer", "helper_observations", "a valid note")])
    @example(changes=[("answer", "annual_income", 10**13)])
    @example(changes=[("answer", "helper_observations", "a\x00b\udc80")])
    @example(changes=[("member", (0, "name"), "名" * 51)])
    @example(changes=[("top", "collected_at", "2999-01-01T00:00:00+08:00")])
    @example(changes=[("top", "collected_at", "0001-01-01T00:00:00+14:00")])
    @example(changes=[("top", "device_seq", 2**63)])
    @example(changes=[("top", "device_seq", 2**53 - 1)])
    @example(changes=[("top", "form_id", "f" * 100)])
    @example(changes=[("base_revs", f"household/{HOUSEHOLD_A}", 2**53 - 1)])
    def push_a_mutated_item_beside_a_valid_one(changes: list[Mutation]) -> None:
        # As the server reads it (two escaped surrogates that pair up are one character there).
        bad = json.loads(json.dumps(_mutated(tablet.submission(visit(annual_income=1)), changes)))
        income = next(incomes)
        good = tablet.submission(visit(annual_income=income))  # later clock: it wins
        response = _post(tablet, _envelope(tablet, [bad, good]))
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        body = json.loads(response.get_data())  # valid UTF-8 JSON whatever the item held
        bad_result, good_result = body["results"]
        assert good_result["status"] == "accepted", good_result
        assert _income(rt) == income
        assert bad_result["status"] in {"accepted", "duplicate", "rejected"}
        if bad_result["status"] == "rejected":
            assert bad_result["errors"] and all(e["code"] for e in bad_result["errors"])
            _check_quarantined(rt, bad, bad_result)

    push_a_mutated_item_beside_a_valid_one()


ENVELOPE_KEYS = ["device_id", "batch_id", "clock", "submissions"]


def test_any_batch_envelope_is_answered_without_a_server_error(tablet, rt):
    incomes = itertools.count(20_001)

    @FUZZ
    @given(
        changes=st.lists(
            st.tuples(st.sampled_from(ENVELOPE_KEYS) | texts, json_values | st.just(None)),
            min_size=1,
            max_size=2,
        ),
        drop=st.sampled_from([None, *ENVELOPE_KEYS]),
    )
    def push_a_mutated_envelope(changes: list[tuple[str, Any]], drop: str | None) -> None:
        income = next(incomes)
        before = _income(rt)
        good = tablet.submission(visit(annual_income=income))
        body = _envelope(tablet, [good])
        for key, value in changes:
            if key != "submissions":
                body[key] = value
        if drop:
            body.pop(drop)
        response = _post(tablet, body)
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        json.loads(response.get_data())
        with rt.db.unit_of_work(write=False) as session:
            stored = session.get(Submission, uuid.UUID(good["instance_id"]))
        if response.status_code == 200:
            assert response.get_json()["results"][0]["status"] == "accepted"
            assert stored is not None and _income(rt) == income
        else:
            assert response.get_json()["error"]["code"]
            assert stored is None and _income(rt) == before

    push_a_mutated_envelope()
