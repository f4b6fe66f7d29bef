"""A batch survives any single item: whatever one submission holds, its neighbours are judged and
stored, the batch commits, and the bad one is answered `rejected` and kept in quarantine."""

from __future__ import annotations

import json
import time
import tracemalloc
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from server.devices.models import Device, DeviceSequenceGap
from server.households.models import Household
from server.submissions.models import Submission
from server.submissions.payload import sent_payload
from server.sync import push as push_module
from server.users.models import Role
from sync_protocol.messages import MAX_SAFE_INTEGER
from tests.conftest import VILLAGE_A1
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register, visit


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def _register_income(rt) -> float:
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None
        return float(household.annual_income or 0)


def _stored(rt, instance_id: str) -> Any:
    with rt.db.unit_of_work(write=False) as session:
        return session.get(Submission, uuid.UUID(instance_id))


def push_escaped(tablet: Tablet, submissions: list[Any]) -> Any:
    """Push as JSON text with every non-ASCII character escaped: lone surrogates travel as
    `\udc80`, exactly what a client's JSON encoder may send."""
    body = {
        "device_id": tablet.device_id,
        "batch_id": str(uuid.uuid4()),
        "clock": str(tablet.clock.now()),
        "submissions": submissions,
    }
    return tablet.client.post(
        "/api/v1/sync/push",
        data=json.dumps(body),
        content_type="application/json",
        headers=tablet.headers,
    )


def _push_beside_a_good_visit(tablet: Tablet, bad: dict[str, Any]) -> tuple[dict, dict]:
    """Push `bad` after a valid visit in one batch; both results (good, bad)."""
    good = tablet.submission(visit(annual_income=23456))
    response = push_escaped(tablet, [good, bad])
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    results = response.get_json()["results"]
    assert results[0]["status"] == "accepted", results[0]
    return results[0], results[1]


def _household_visit_with(tablet: Tablet, **answers: Any) -> dict[str, Any]:
    return tablet.submission(visit(**answers))


POISONS = {
    "nul_in_answer_value": lambda t: _household_visit_with(t, helper_observations="a\x00b"),
    "surrogate_in_answer_value": lambda t: _household_visit_with(t, helper_observations="a\udc80b"),
    "nul_in_answer_key": lambda t: {**t.submission(visit()), "data": {**visit(), "x\x00": 1}},
    "surrogate_in_top_level_key": lambda t: {**t.submission(visit()), "\ud800": "x"},
    "nul_in_instance_id": lambda t: {**t.submission(visit()), "instance_id": "\x00"},
    "surrogate_in_form_id": lambda t: {**t.submission(visit()), "form_id": "f\udfff"},
    "nul_in_base_revs_key": lambda t: {**t.submission(visit()), "base_revs": {"\x00": 1}},
    "surrogate_in_hlc": lambda t: {**t.submission(visit()), "hlc": "\ud83d"},
    "long_form_id": lambda t: {**t.submission(visit()), "form_id": "f" * 100},
    "collected_at_overflows_utc": lambda t: {
        **t.submission(visit()),
        "collected_at": "0001-01-01T00:00:00+14:00",
    },
    "collected_at_far_future": lambda t: {
        **t.submission(visit()),
        "collected_at": "2999-01-01T00:00:00+08:00",
    },
    "collected_at_absurdly_old": lambda t: {
        **t.submission(visit()),
        "collected_at": "1900-01-01T00:00:00+08:00",
    },
    "device_seq_beyond_safe_integer": lambda t: {**t.submission(visit()), "device_seq": 2**63},
    "household_no_longer_than_the_form_allows": lambda t: t.submission(
        {**_register_answers(), "household_no": "N" * 41}, form_id="household_register"
    ),
    "income_beyond_the_money_column": lambda t: _household_visit_with(t, annual_income=10**13),
}


def _register_answers() -> dict[str, Any]:
    return {
        "household_id": str(uuid.uuid4()),
        "village_code": VILLAGE_A1,
        "category": "ordinary",
        "members": [
            {
                "member_id": str(uuid.uuid4()),
                "name": "韦小宝",
                "relation": "head",
                "sex": "male",
                "birth_date": "1980-02-03",
                "health": "healthy",
                "insured": True,
            }
        ],
    }


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_one_poisoned_item_is_quarantined_and_its_neighbour_is_kept(tablet, rt, poison):
    bad = POISONS[poison](tablet)
    good, result = _push_beside_a_good_visit(tablet, bad)
    assert result["status"] == "rejected", result
    assert result["errors"] and all(e["code"] for e in result["errors"]), result
    assert _register_income(rt) == 23456
    assert _stored(rt, good["instance_id"]) is not None
    with rt.db.unit_of_work(write=False) as session:
        rejected = session.scalar(
            select(func.count()).select_from(Submission).where(Submission.status == "rejected")
        )
    assert rejected == 1


def test_household_number_the_form_allows_fits_the_register(tablet, rt):
    answers = {**_register_answers(), "household_no": "N" * 40}
    submission = tablet.submission(answers, form_id="household_register")
    _, result = _push_beside_a_good_visit(tablet, submission)
    assert result["status"] == "accepted", result
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, uuid.UUID(answers["household_id"]))
        assert household is not None and household.household_no == "N" * 40


def test_device_seq_beyond_32_bits_is_accepted_and_stored(tablet, rt):
    beyond = {**tablet.submission(visit(annual_income=1)), "device_seq": 2**31}
    _, result = _push_beside_a_good_visit(tablet, beyond)
    assert result["status"] == "accepted", result
    stored = _stored(rt, beyond["instance_id"])
    assert stored is not None and stored.device_seq == 2**31


def test_quarantined_payload_keeps_nul_and_surrogates_losslessly(tablet, rt):
    bad = _household_visit_with(tablet, helper_observations="a\x00b\udc80c")
    _, result = _push_beside_a_good_visit(tablet, bad)
    assert result["status"] == "rejected"
    stored = _stored(rt, bad["instance_id"])
    assert stored is not None
    assert sent_payload(rt.codec, stored.payload, stored.instance_id) == bad


def test_a_failure_judging_one_item_rejects_only_that_item(tablet, rt, monkeypatch):
    from forms.submission import check_submission as real

    def failing(definition, data, **kwargs):
        if data.get("helper_observations") == "explode":
            raise RuntimeError("boom")
        return real(definition, data, **kwargs)

    monkeypatch.setattr(push_module, "check_submission", failing)
    bad = _household_visit_with(tablet, helper_observations="explode")
    _, result = _push_beside_a_good_visit(tablet, bad)
    assert result["status"] == "rejected"
    assert [e["code"] for e in result["errors"]] == ["internal_item_error"]


def test_device_seq_at_the_safe_integer_limit_records_one_gap_range_quickly(tablet, rt):
    tablet.push([tablet.submission(visit())])  # device_seq 1
    far = {**tablet.submission(visit(annual_income=1)), "device_seq": MAX_SAFE_INTEGER}
    tracemalloc.start()
    started = time.perf_counter()
    response = tablet.push([far])
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert response.status_code == 200
    assert response.get_json()["results"][0]["status"] == "accepted"
    assert elapsed < 2.0
    assert peak < 20 * 2**20
    with rt.db.unit_of_work(write=False) as session:
        gaps = session.execute(select(DeviceSequenceGap.first_seq, DeviceSequenceGap.last_seq))
        assert [tuple(g) for g in gaps] == [(2, MAX_SAFE_INTEGER - 1)]
        device = session.get(Device, uuid.UUID(tablet.device_id))
        assert device is not None and device.highest_seq == MAX_SAFE_INTEGER


def test_gap_ranges_shrink_and_split_as_late_submissions_arrive(tablet, rt):
    def seq(n: int) -> dict[str, Any]:
        return {**tablet.submission(visit(annual_income=n)), "device_seq": n}

    tablet.push([seq(1), seq(10)])
    tablet.push([seq(5), seq(2)])
    tablet.push([seq(9)])
    with rt.db.unit_of_work(write=False) as session:
        gaps = session.execute(
            select(DeviceSequenceGap.first_seq, DeviceSequenceGap.last_seq).order_by(
                DeviceSequenceGap.first_seq
            )
        )
        assert [tuple(g) for g in gaps] == [(3, 4), (6, 8)]


def test_devices_gaps_command_lists_missing_ranges(tablet, cli):
    tablet.push([{**tablet.submission(visit()), "device_seq": 1}])
    tablet.push([{**tablet.submission(visit()), "device_seq": 7}])
    result = cli("devices", "gaps")
    assert result.exit_code == 0, result.output
    assert tablet.device_id in result.output
    assert "2-6" in result.output
    assert "5 missing" in result.output


def test_quarantine_result_is_valid_json_for_the_tablet(tablet):
    bad = {**tablet.submission(visit()), "instance_id": "x\udc80", "\udc81": 1}
    response = push_escaped(tablet, [bad])
    assert response.status_code == 200
    json.loads(response.get_data())  # UTF-8 and JSON, whatever the item held


@pytest.mark.parametrize("depth", [300, 900, 930, 936])
def test_an_item_nested_deeper_than_the_json_encoders_is_quarantined(tablet, rt, depth):
    good = tablet.submission(visit(annual_income=23456))
    bad = {**tablet.submission(visit()), "data": {"helper_observations": "DEEP"}}
    body = json.dumps(
        {
            "device_id": tablet.device_id,
            "batch_id": str(uuid.uuid4()),
            "clock": str(tablet.clock.now()),
            "submissions": [good, bad],
        }
    ).replace('"DEEP"', "[" * depth + '"x"' + "]" * depth)
    response = tablet.client.post(
        "/api/v1/sync/push", data=body, content_type="application/json", headers=tablet.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert [r["status"] for r in response.get_json()["results"]] == ["accepted", "rejected"]
    assert _register_income(rt) == 23456
    stored = _stored(rt, bad["instance_id"])
    assert stored is not None and stored.status.value == "rejected"


def test_a_body_nested_deeper_than_the_parser_takes_is_a_bad_request(tablet):
    body = '{"device_id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = tablet.client.post(
        "/api/v1/sync/push", data=body, content_type="application/json", headers=tablet.headers
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"
