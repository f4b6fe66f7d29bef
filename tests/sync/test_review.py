"""What sync leaves for people to review: households a field-wise merge made inconsistent, the
quarantine of rejected submissions, and masked values that must never overwrite real ones."""

from __future__ import annotations

import copy
import uuid

import pytest

from forms.bundled import load_sample_answers
from server.users.models import Role
from tests.conftest import COUNTY, TOWNSHIP_B, VILLAGE_A1, bearer
from tests.sync.helpers import HOUSEHOLD_A, MEMBERS_A, Tablet, load_register, visit

REGISTER = load_sample_answers("household_register")


def register_answers(members: list[dict]) -> dict:
    data = copy.deepcopy(REGISTER)
    data.update(household_id=str(HOUSEHOLD_A), village_code=VILLAGE_A1, members=members)
    return data


def member(index: int, **changes) -> dict:
    answers = {**REGISTER["members"][index], "member_id": str(MEMBERS_A[index])}  # type: ignore[index]
    answers.pop("id_number", None)
    answers.update(changes)
    return answers


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    create_user_("far_supervisor", Role.SUPERVISOR, [TOWNSHIP_B])
    return Tablet.login(client, "collector")


def _flagged(client, login, username="supervisor"):
    response = client.get("/api/v1/households/flagged", headers=bearer(login(username)))
    assert response.status_code == 200
    return {h["id"]: h["review_flags"] for h in response.get_json()["households"]}


def test_a_merge_that_makes_two_heads_is_kept_flagged_and_listed(tablet, client, login):
    # The spouse is made head without the old head's record: each field is valid, the whole not.
    submission = tablet.submission(
        register_answers([member(1, relation="head")]), form_id="household_register"
    )
    assert tablet.push([submission]).get_json()["results"][0]["status"] == "accepted"
    assert _flagged(client, login) == {str(HOUSEHOLD_A): ["multiple_heads"]}
    household = client.get(
        f"/api/v1/households/{HOUSEHOLD_A}", headers=bearer(login("supervisor"))
    ).get_json()
    heads = [m for m in household["members"] if m["fields"]["relation"] == "head"]
    assert len(heads) == 2  # kept as merged, not silently "fixed"
    assert _flagged(client, login, "far_supervisor") == {}
    # Once someone sets it right, the flag goes away.
    fix = tablet.submission(
        register_answers([member(1, relation="spouse")]), form_id="household_register"
    )
    tablet.push([fix])
    assert _flagged(client, login) == {}


LOOSE_FORM = {  # binds the identity number with no pattern: only the server's guard stops masks
    "form_id": "id_fix",
    "title": "更正身份证号",
    "entities": [
        {"name": "hh", "type": "household", "id_field": "household_id", "create": False},
        {"name": "m", "type": "member", "id_field": "member_id", "create": False, "parent": "hh"},
    ],
    "fields": [
        {"name": "household_id", "type": "text", "required": True},
        {"name": "member_id", "type": "text", "required": True},
        {"name": "id_number", "type": "text", "bind": "m.id_number"},
    ],
}


@pytest.mark.parametrize("form", ["household_register", "id_fix"])
def test_masked_identity_numbers_are_refused_not_written_back(
    tablet, client, login, create_user_, form
):
    if form == "household_register":
        answers = register_answers([member(0, id_number="9901**********0011")])
        expected = "pattern_mismatch"  # the bundled form's own pattern catches it first
    else:
        create_user_("admin", Role.ADMIN)
        admin = bearer(login("admin"))
        assert client.post("/api/v1/forms", json=LOOSE_FORM, headers=admin).status_code == 201
        assert client.post("/api/v1/forms/id_fix/publish", headers=admin).status_code == 200
        answers = {
            "household_id": str(HOUSEHOLD_A),
            "member_id": str(MEMBERS_A[0]),
            "id_number": "9901**********0011",
        }
        expected = "invalid_value"
    result = tablet.push([tablet.submission(answers, form_id=form)]).get_json()
    [item] = result["results"]
    assert item["status"] == "rejected" and item["errors"][0]["code"] == expected
    revealed = client.get(
        f"/api/v1/households/{HOUSEHOLD_A}?reveal=sensitive", headers=bearer(login("supervisor"))
    ).get_json()
    head = next(m for m in revealed["members"] if m["id"] == str(MEMBERS_A[0]))
    assert head["fields"]["id_number"] == "990102197803120011"


def test_supervisors_see_their_collectors_quarantined_submissions(tablet, client, login):
    bad = tablet.submission(visit(annual_income=-1))
    broken = {"instance_id": str(uuid.uuid4()), "form_id": "household_visit"}
    tablet.push([bad, broken, tablet.submission(visit())])
    response = client.get("/api/v1/submissions/quarantine", headers=bearer(login("supervisor")))
    rows = response.get_json()["submissions"]
    assert {r["instance_id"] for r in rows} == {bad["instance_id"], broken["instance_id"]}
    assert all(r["user"] == "collector" and r["errors"] and r["reason"] for r in rows)
    assert next(r for r in rows if r["instance_id"] == bad["instance_id"])["payload"] == bad
    far = client.get("/api/v1/submissions/quarantine", headers=bearer(login("far_supervisor")))
    assert far.get_json()["submissions"] == []
    collector = client.get("/api/v1/submissions/quarantine", headers=tablet.headers)
    assert collector.status_code == 403


@pytest.mark.parametrize("query", ["limit=0", "limit=5000", "offset=-1", "limit=x"])
def test_listing_arguments_are_checked(tablet, client, login, query):
    response = client.get(
        f"/api/v1/households/flagged?{query}", headers=bearer(login("supervisor"))
    )
    assert response.status_code == 422
