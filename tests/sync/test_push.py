"""Push through the real app on both databases: per-item outcomes, idempotence, field-level merge
with conflicts, quarantine, scope, and clear errors for malformed batches."""

from __future__ import annotations

import gc
import hashlib
import json
import uuid
import weakref
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy import update as sa_update

from server.auth.actor import system_actor
from server.changes.models import Change
from server.conflicts.models import Conflict
from server.db import utcnow
from server.devices.models import DeviceSequenceGap
from server.forms.models import FormVersion
from server.forms.service import retire
from server.households.models import Household, Member
from server.submissions.models import Submission
from server.submissions.payload import sent_payload
from server.sync.apply import Origin, Workspace
from server.users.models import Role
from sync_protocol.clock import Hlc
from tests.conftest import TOWNSHIP_A, VILLAGE_A1, VILLAGE_A2
from tests.sync.helpers import (
    HOUSEHOLD_A,
    HOUSEHOLD_B,
    MEMBER_B,
    MEMBERS_A,
    SAMPLE,
    Tablet,
    load_register,
    visit,
)


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def _count(rt, model, *where) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_accepted_visit_updates_the_register_and_reports_revisions(tablet, rt):
    response = tablet.push([tablet.submission(visit(annual_income=21000))])
    assert response.status_code == 200
    body = response.get_json()
    [result] = body["results"]
    assert result["status"] == "accepted", result
    assert result["revs"][f"household/{HOUSEHOLD_A}"] == 2
    assert set(result["revs"]) >= {f"member/{m}" for m in MEMBERS_A}
    assert body["clock"].endswith("-server")
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None
        assert float(household.annual_income or 0) == 21000
        assert household.rev == 2
        assert household.clocks["annual_income"].endswith(tablet.device_id)
        member = session.get(Member, MEMBERS_A[0])
        assert member is not None and member.health is not None and member.health.value == "chronic"
    assert _count(rt, Submission) == 1
    assert _count(rt, Change, Change.submission_id.isnot(None)) > 0


def test_resending_a_batch_gives_duplicates_and_changes_nothing(tablet, rt):
    submissions = [tablet.submission(visit(annual_income=21000))]
    batch_id = str(uuid.uuid4())
    first = tablet.push(submissions, batch_id).get_json()
    changes = _count(rt, Change)
    again = tablet.push(submissions, batch_id).get_json()
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["revs"] == first["results"][0]["revs"]
    assert _count(rt, Change) == changes and _count(rt, Submission) == 1


def test_same_instance_with_different_content_is_rejected_and_the_first_kept(tablet, rt):
    first = tablet.submission(visit(annual_income=21000))
    tablet.push([first])
    altered = {**first, "data": visit(annual_income=99999)}
    result = tablet.push([altered]).get_json()["results"][0]
    assert result["status"] == "rejected"
    assert result["errors"][0]["code"] == "instance_conflict"
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and float(household.annual_income or 0) == 21000


def test_concurrent_edits_of_one_field_keep_the_later_clock_and_record_the_loser(
    tablet, client, rt
):
    other = Tablet.login(client, "collector")
    base = {f"household/{HOUSEHOLD_A}": 1}
    early = tablet.submission(visit(annual_income=20000), base_revs=base)
    other.clock.observe(Hlc.parse(early["hlc"]))  # the second observation is the later one
    late = other.submission(visit(annual_income=25000), base_revs=base)
    assert late["hlc"] > early["hlc"]
    # The later observation arrives first; the earlier one still loses, and is kept as a conflict.
    assert other.push([late]).get_json()["results"][0]["status"] == "accepted"
    result = tablet.push([early]).get_json()["results"][0]
    assert result["status"] == "accepted"
    income = [c for c in result["conflicts"] if c["field"] == "annual_income"]
    assert income == [
        {
            **income[0],
            "entity": "household",
            "id": str(HOUSEHOLD_A),
            "value": 20000,
            "other_value": 25000,
            "winner": "other",
        }
    ]
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and float(household.annual_income or 0) == 25000
        conflict = session.get(Conflict, uuid.UUID(income[0]["conflict_id"]))
        assert conflict is not None
        assert (conflict.winner_value, conflict.loser_value) == (25000, 20000)
        assert conflict.loser_submission_id == uuid.UUID(early["instance_id"])
        assert conflict.winner_submission_id == uuid.UUID(late["instance_id"])


def test_a_writer_that_saw_the_current_value_replaces_it_without_conflict(tablet, rt):
    first = tablet.push([tablet.submission(visit(annual_income=20000))]).get_json()
    rev = first["results"][0]["revs"][f"household/{HOUSEHOLD_A}"]
    second = tablet.submission(
        visit(annual_income=23000), base_revs={f"household/{HOUSEHOLD_A}": rev}
    )
    result = tablet.push([second]).get_json()["results"][0]
    assert result["status"] == "accepted" and "conflicts" not in result


def test_bad_items_are_rejected_and_kept_while_the_rest_of_the_batch_goes_on(tablet, rt):
    good = tablet.submission(visit(annual_income=21000))
    invalid = tablet.submission(visit(annual_income=-5))
    ahead = tablet.submission(visit(), hlc=f"{9_999_999_999_999:013d}-00000-{tablet.device_id}")
    unknown_form = tablet.submission(visit(), form_id="no_such_form")
    unknown_version = tablet.submission(visit(), version=7)
    shapeless = {"instance_id": str(uuid.uuid4()), "form_id": "household_visit"}
    results = tablet.push(
        [good, invalid, ahead, unknown_form, unknown_version, shapeless]
    ).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted"] + ["rejected"] * 5
    codes = [{e["code"] for e in r.get("errors", [])} for r in results]
    assert "below_min" in codes[1] and {e["path"] for e in results[1]["errors"]} == {
        "data.annual_income"
    }
    assert codes[2] == {"clock_ahead"}
    assert codes[3] == {"unknown_form"} and codes[4] == {"unknown_form_version"}
    assert "required" in codes[5]
    # Everything is kept: the rejected ones in quarantine with their reasons.
    with rt.db.unit_of_work(write=False) as session:
        rows = {row.instance_id: row for row in session.scalars(select(Submission))}
    assert len(rows) == 6
    quarantined = [r for r in rows.values() if r.status.value == "rejected"]
    assert len(quarantined) == 5 and all(r.quarantine_reason and r.errors for r in quarantined)


def test_collector_cannot_change_a_household_outside_its_villages(tablet, rt):
    member = {**SAMPLE["members"][0], "member_id": str(MEMBER_B)}  # type: ignore[index]
    result = tablet.push([tablet.submission(visit(HOUSEHOLD_B, members=[member]))]).get_json()
    assert result["results"][0]["status"] == "rejected"
    assert result["results"][0]["errors"][0]["code"] == "forbidden"
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_B)
        assert household is not None and household.rev == 1


def test_device_sequence_gaps_are_recorded_and_filled(tablet, rt):
    first = tablet.submission(visit())
    tablet.seq += 3  # three completed submissions never arrive
    later = tablet.submission(visit(annual_income=30000))
    tablet.push([first, later])
    with rt.db.unit_of_work(write=False) as session:
        gaps = session.execute(select(DeviceSequenceGap.first_seq, DeviceSequenceGap.last_seq))
        assert [tuple(gap) for gap in gaps] == [(2, 4)]


def test_push_needs_a_token_bound_to_the_batch_device(tablet, client, login):
    token = login("collector")  # no device_id: not bound
    body = {
        "device_id": tablet.device_id,
        "batch_id": str(uuid.uuid4()),
        "clock": str(tablet.clock.now()),
        "submissions": [],
    }
    response = client.post(
        "/api/v1/sync/push", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body,status",
    [
        ({"device_id": "x"}, 422),
        ({"batch_id": str(uuid.uuid4()), "clock": "bad", "submissions": {}}, 422),
    ],
)
def test_malformed_batches_are_clear_errors_and_change_nothing(tablet, client, rt, body, status):
    response = client.post("/api/v1/sync/push", json=body, headers=tablet.headers)
    assert response.status_code == status
    assert response.get_json()["error"]["details"]["errors"]
    assert _count(rt, Submission) == 0


def test_oversized_batch_is_413(tablet, client, rt):
    body = {
        "device_id": tablet.device_id,
        "batch_id": str(uuid.uuid4()),
        "clock": str(tablet.clock.now()),
        "submissions": [{}] * (rt.settings.max_batch_items + 1),
    }
    response = client.post("/api/v1/sync/push", json=body, headers=tablet.headers)
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "too_large"


def test_a_retired_version_is_accepted_during_grace_and_quarantined_after(tablet, rt):
    with rt.db.unit_of_work() as session:
        retire(session, system_actor(), "household_visit")
    within = tablet.push([tablet.submission(visit(annual_income=20500))]).get_json()
    assert within["results"][0]["status"] == "accepted"
    with rt.db.unit_of_work() as session:
        past = utcnow() - timedelta(days=rt.settings.form_retire_grace_days + 1)
        session.execute(sa_update(FormVersion).values(retired_at=past))
    late = tablet.submission(visit(annual_income=20600))
    result = tablet.push([late]).get_json()["results"][0]
    assert result["status"] == "rejected"
    assert result["errors"][0]["code"] == "form_version_retired"
    with rt.db.unit_of_work(write=False) as session:
        kept = session.get(Submission, uuid.UUID(late["instance_id"]))
        assert kept is not None and "grace period" in (kept.quarantine_reason or "")
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and float(household.annual_income or 0) == 20500


def test_push_lists_attachments_the_server_lacks_until_they_are_uploaded(tablet, client):
    photo = b"\xff\xd8 a photo of the house \xff\xd9"
    digest = "sha256:" + hashlib.sha256(photo).hexdigest()
    ref = {"attachment": digest, "filename": "house.jpg", "content_type": "image/jpeg"}
    first = tablet.push([tablet.submission(visit(house_photo=ref))]).get_json()
    assert first["missing_attachments"] == [digest]
    upload = client.put(
        f"/api/v1/attachments/{digest}",
        data=photo,
        headers={**tablet.headers, "Content-Type": "image/jpeg"},
    )
    assert upload.status_code == 201
    second = tablet.push([tablet.submission(visit(house_photo=ref))]).get_json()
    assert second["results"][0]["status"] == "accepted"
    assert second["missing_attachments"] == []


def test_a_unit_of_work_is_freed_without_the_cyclic_collector(rt, village_households):
    """A push holds thousands of entities: once its unit of work is done they must be freed by
    reference counting, not wait for the cyclic garbage collector."""
    household_id = village_households[VILLAGE_A1]["household"]
    member_id = village_households[VILLAGE_A1]["member"]
    origin = Origin("device-1", uuid.uuid4(), None, None)
    stamp = Hlc.parse("1764000000000-00001-device-1")
    gc.collect()
    gc.disable()
    try:
        with rt.db.unit_of_work() as session:
            workspace = Workspace(session, rt.codec)
            workspace.load(
                {household_id},
                {member_id},
                {
                    "household": ["annual_income", "per_capita_income"],
                    "member": ["insured", "health"],
                },
            )
            for kind, entity_id, values in (
                ("household", household_id, {"annual_income": 9000, "per_capita_income": 4500}),
                ("member", member_id, {"insured": True, "health": "chronic"}),
            ):
                state = workspace.find(kind, entity_id)
                assert state is not None
                outcome = workspace.preview(state, values, stamp, state.rev, origin)
                workspace.commit(state, outcome, stamp, origin)
            workspace.flush(txid=1)
            states = [weakref.ref(s) for s in workspace.entities.values()]
            unit_of_work = weakref.ref(workspace)
            del workspace, state, outcome
        assert len(states) == 2 and unit_of_work() is None
        assert [s() for s in states] == [None, None]
    finally:
        gc.enable()
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, household_id)
        assert household is not None and household.annual_income == 9000


def _moving_household_a(tablet: Tablet, village: str, *, listed: int = 3) -> dict:
    """A household_register submission for household A in `village`, listing the first `listed`
    of its three members (the form needs one at least)."""
    people = [
        ("黄志强", "head", "male", "1978-03-12"),
        ("覃美兰", "spouse", "female", "1980-05-21"),
        ("黄小雨", "child", "female", "2012-09-15"),
    ]
    members = [
        {
            "member_id": str(member_id),
            "name": name,
            "relation": relation,
            "sex": sex,
            "birth_date": born,
            "health": "healthy",
            "insured": True,
        }
        for member_id, (name, relation, sex, born) in zip(MEMBERS_A, people, strict=True)
    ]
    members[2]["in_school"] = True  # 14 years old when collected
    data = {
        "household_id": str(HOUSEHOLD_A),
        "village_code": village,
        "category": "lifted",
        "members": members[:listed],
    }
    return tablet.submission(data, form_id="household_register")


def test_moving_a_household_out_of_the_callers_villages_is_refused_with_its_members(tablet, rt):
    result = tablet.push([_moving_household_a(tablet, VILLAGE_A2)]).get_json()["results"][0]
    assert result["status"] == "rejected"
    # The household leaves A1 for A2, and its members with it: each is refused for A2.
    assert [(e["code"], e["path"]) for e in result["errors"]] == [
        ("forbidden", "data"),
        *(("forbidden", f"data.members[{i}]") for i in range(3)),
    ]
    assert all(VILLAGE_A2 in e["message"] for e in result["errors"])
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and (household.village_code, household.rev) == (VILLAGE_A1, 1)


@pytest.mark.parametrize("listed", [3, 1], ids=["all-members-listed", "head-only"])
def test_a_household_moved_between_villages_takes_its_members_from_tablet_to_tablet(
    client, rt, create_user_, listed
):
    """The old village's tablets drop the household and every member; the new village's receive
    them all, whether or not the submission that moved it listed the members."""
    load_register(rt)
    create_user_("township", Role.COLLECTOR, [TOWNSHIP_A])
    create_user_("a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("a2", Role.COLLECTOR, [VILLAGE_A2])
    mover = Tablet.login(client, "township")
    old, new = Tablet.login(client, "a1"), Tablet.login(client, "a2")
    family = {str(HOUSEHOLD_A), *(str(m) for m in MEMBERS_A)}
    entities, _, old_cursor = old.pull_all()
    assert {e["id"] for e in entities} == family
    entities, _, new_cursor = new.pull_all()
    assert entities == []

    moving = _moving_household_a(mover, VILLAGE_A2, listed=listed)
    result = mover.push([moving]).get_json()["results"][0]
    assert result["status"] == "accepted", result

    entities, removed, _ = old.pull_all(old_cursor)
    assert entities == []
    assert sorted((r["entity"], r["id"]) for r in removed) == sorted(
        [("household", str(HOUSEHOLD_A)), *(("member", str(m)) for m in MEMBERS_A)]
    )
    entities, removed, _ = new.pull_all(new_cursor)
    assert removed == [] and {e["id"] for e in entities} == family
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and household.village_code == VILLAGE_A2


def test_an_out_of_range_number_is_quarantined_and_the_rest_of_the_batch_goes_on(
    tablet, client, rt
):
    """`1e400` is a JSON number no tablet should send (it reads as infinity): that submission is
    rejected and kept, the number stored as null; the other one is accepted."""
    good, bad = tablet.submission(visit()), tablet.submission(visit(annual_income=1))
    body = json.dumps(
        {
            "device_id": tablet.device_id,
            "batch_id": str(uuid.uuid4()),
            "clock": str(tablet.clock.now()),
            "submissions": [good, bad],
        }
    ).replace('"annual_income": 1,', '"annual_income": 1e400,')
    response = client.post(
        "/api/v1/sync/push",
        data=body,
        headers={**tablet.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["errors"][0]["path"] == "data.annual_income"
    with rt.db.unit_of_work(write=False) as session:
        stored = session.get(Submission, uuid.UUID(bad["instance_id"]))
        assert stored is not None and stored.status.value == "rejected"
        # Kept losslessly, as escaped JSON text (PostgreSQL's jsonb has no infinity).
        kept = sent_payload(rt.codec, stored.payload, stored.instance_id)
        assert kept["data"]["annual_income"] == float("inf")
