"""Pull cursors as hostile input, through the real app on both databases: whatever a cursor or a
query parameter holds, the answer is 400, 410 or 422 (never a 500), and a cursor signed with the
right key still cannot make pull reveal ids outside the grants its user really had."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from sqlalchemy import select

from server.sync import cursor as cursors
from server.sync.cursor import Cursor
from server.users.models import Role, User
from tests.conftest import VILLAGE_A1, VILLAGE_B1
from tests.sync.helpers import HOUSEHOLD_B, MEMBER_B, Tablet, load_register, visit

ACCEPTED = {200, 400, 410, 422}


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def _user_id(rt, username: str) -> int:
    with rt.db.unit_of_work(write=False) as session:
        user_id: int = session.scalars(select(User.id).where(User.username == username)).one()
        return user_id


def _pull(client, tablet, query: str):
    return client.get(f"/api/v1/sync/pull?{query}", headers=tablet.headers)


def _signed(body: dict, secret: str) -> str:
    text = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{text}.{cursors._signature(text, secret)}"


def test_a_cursor_with_a_non_ascii_signature_is_refused_not_a_500(tablet, client):
    _, _, cursor = tablet.pull_all()
    body, signature = cursor.split(".")
    response = _pull(client, tablet, f"cursor={body}.{'é' * len(signature)}")
    assert response.status_code in {400, 410}, response.get_json()
    assert response.get_json()["error"]["code"] in {"bad_request", "resync_required"}


def test_a_cursor_of_deeply_nested_json_is_400_not_a_500(tablet, client):
    body = base64.urlsafe_b64encode(b"[" * 1200).decode().rstrip("=")
    response = _pull(client, tablet, f"cursor={body}.{'A' * 24}")
    assert response.status_code in {400, 410}, response.get_json()


@pytest.mark.parametrize(
    "fields",
    [
        {"lo": "zero"},
        {"lo": 10**30},
        {"lo": -1},
        {"lo": True},
        {"phase": "sideways"},
        {"phase": "initial", "after": "not-a-uuid"},
        {"phase": "initial", "after": 7},
        {"phase": "changes", "after": "x"},
        {"phase": "changes", "after": [1]},
        {"phase": "changes", "after": [1, "2"]},
        {"phase": "changes", "after": [10**30, 1]},
        {"hi": "later"},
        {"scope": 12},
        {"scope": None},
        {"backfill_from": ["a"]},
        {"user_id": "1"},
        {"surprise": 1},
    ],
)
def test_a_well_signed_cursor_with_fields_of_the_wrong_kind_is_410(
    tablet, client, rt, settings, fields
):
    _, _, cursor = tablet.pull_all()
    body = json.loads(base64.urlsafe_b64decode(cursor.split(".")[0] + "=="))
    forged = _signed({**body, **fields}, settings.secret_key)
    response = _pull(client, tablet, f"cursor={forged}")
    assert response.status_code == 410, response.get_json()
    assert response.get_json()["error"]["code"] == "resync_required"


def test_a_cursor_longer_than_the_bound_is_refused_before_decoding(tablet, client):
    response = _pull(client, tablet, f"cursor={'A' * 5000}.{'A' * 24}")
    assert response.status_code in {400, 422}


def test_a_signed_cursor_naming_a_wider_scope_reveals_no_ids_outside_the_callers_grants(
    tablet, client, rt, settings, create_user_, login
):
    # An administrator's pull stores the scope snapshot "everything".
    create_user_("chief", Role.ADMIN)
    assert client.get("/api/v1/sync/pull", headers={"Authorization": f"Bearer {login('chief')}"})
    collector = _user_id(rt, "collector")
    everything = ["*"]
    digests = {
        hashlib.sha256(json.dumps(everything).encode()).hexdigest(),
        hashlib.sha256(json.dumps([collector, everything]).encode()).hexdigest(),
        hashlib.sha256(json.dumps([_user_id(rt, "chief"), everything]).encode()).hexdigest(),
    }
    for digest in digests:
        forged = cursors.encode(
            Cursor(user_id=collector, scope=digest, phase="changes", lo=0), settings.secret_key
        )
        response = _pull(client, tablet, f"cursor={forged}")
        assert response.status_code in {200, 410}, response.get_json()
        if response.status_code == 200:
            page = response.get_json()
            leaked = {item["id"] for item in page["removed"] + page["entities"]}
            assert not leaked & {str(HOUSEHOLD_B), str(MEMBER_B)}


def test_a_user_s_own_scope_change_still_lists_what_left(tablet, client, rt):
    # The binding of snapshots to users must not break the honest case.
    from server.users.service import grant_region, revoke_region

    with rt.db.unit_of_work() as session:
        grant_region(session, "collector", VILLAGE_B1)
    _, _, cursor = tablet.pull_all()
    with rt.db.unit_of_work() as session:
        revoke_region(session, "collector", VILLAGE_B1)
    _, removed, _ = tablet.pull_all(cursor)
    assert {r["id"] for r in removed} == {str(HOUSEHOLD_B), str(MEMBER_B)}


@pytest.mark.parametrize(
    "query",
    [
        "limit=",
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=99999999999999999999999999",
        "limit=1e3",
        "limit=%EF%BC%95",  # a full-width digit
        "limit=%D9%A3",  # an Arabic-Indic digit
        "limit=5&limit=6",
        "cursor=a&cursor=b",
        "limit=%00",
        "cursor=%00",
        "cursor=",
        "unknown=1",
    ],
)
def test_bad_query_parameters_are_400_or_422_with_the_error_shape(tablet, client, query):
    response = _pull(client, tablet, query)
    assert response.status_code in {400, 422}, (query, response.status_code)
    error = response.get_json()["error"]
    assert error["code"] in {"bad_request", "validation_error"} and error["message"]


def test_a_cursor_issued_before_snapshots_were_bound_to_users_goes_on_for_the_same_grants(
    tablet, client, rt, settings
):
    _, _, cursor = tablet.pull_all()
    body = json.loads(base64.urlsafe_b64decode(cursor.split(".")[0] + "=="))
    old_name = hashlib.sha256(json.dumps([VILLAGE_A1]).encode()).hexdigest()
    old_cursor = _signed({**body, "scope": old_name}, settings.secret_key)
    tablet.push([tablet.submission(visit(annual_income=23456))])
    changed, removed, cursor = tablet.pull_all(old_cursor)
    assert removed == []
    assert [e["fields"]["annual_income"] for e in changed if e["entity"] == "household"] == [23456]
    # ... and from then on its scope changes are followed as usual.
    from server.users.service import grant_region

    with rt.db.unit_of_work() as session:
        grant_region(session, "collector", VILLAGE_B1)
    added, _, _ = tablet.pull_all(cursor)
    assert {e["id"] for e in added} == {str(HOUSEHOLD_B), str(MEMBER_B)}
