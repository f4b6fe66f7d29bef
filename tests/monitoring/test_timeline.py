"""A household's timeline over HTTP: visits pushed by a tablet, register changes with who and
which submission, conflicts and their resolutions, referrals, case steps and help, newest first;
stable cursor paging; scope, masking and bad input."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.conflicts.models import Conflict, ConflictStatus
from server.conflicts.service import stored_conflict_value
from server.db import utcnow
from server.monitoring.models import CaseDirection, CaseStage, ReferralChannel, StepDecision
from server.users.models import Role, User
from tests.conftest import COUNTY, TOWNSHIP_A, VILLAGE_A1, VILLAGE_B1, bearer
from tests.monitoring.help_fixtures import make_monitored
from tests.monitoring.summary_fixtures import case, referral, step
from tests.sync.helpers import HOUSEHOLD_A, HOUSEHOLD_B, MEMBERS_A, Tablet, load_register, visit

HEAD_ID_NUMBER = "990102197803120011"  # load_register's head of household A
OTHER_ID_NUMBER = "990102197803120038"
OTHER_CLOCK = "1764000000000-00001-tablet-b"


@pytest.fixture
def history(client, rt, regions, create_user_):
    """Household A with a pushed visit, a resolved conflict on its head's identity number, a
    referral and an entry case with two steps; household B with a visit of its own."""
    load_register(rt)
    create_user_("collector_a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("collector_b1", Role.COLLECTOR, [VILLAGE_B1])
    create_user_("reviewer", Role.SUPERVISOR, [COUNTY])
    tablet = Tablet.login(client, "collector_a1")
    pushed = tablet.submission(visit(annual_income=21000))
    assert tablet.push([pushed]).get_json()["results"][0]["status"] == "accepted"
    other = Tablet.login(client, "collector_b1")
    elsewhere = other.submission(visit(HOUSEHOLD_B, members=[]))
    other.push([elsewhere])
    now = utcnow()
    with rt.db.unit_of_work() as s:
        reviewer = s.scalars(select(User.id).where(User.username == "reviewer")).one()
        s.add(
            Conflict(
                id=uuid.uuid4(),
                entity_type="member",
                entity_id=MEMBERS_A[0],
                field="id_number",
                village_code=VILLAGE_A1,
                winner_value=stored_conflict_value(rt.codec, "member", "id_number", HEAD_ID_NUMBER),
                winner_clock=OTHER_CLOCK,
                loser_value=stored_conflict_value(rt.codec, "member", "id_number", OTHER_ID_NUMBER),
                loser_clock=OTHER_CLOCK,
                status=ConflictStatus.RESOLVED,
                created_at=now + timedelta(seconds=1),
                resolved_at=now + timedelta(seconds=5),
                resolved_by_id=reviewer,
                resolution_value=stored_conflict_value(
                    rt.codec, "member", "id_number", HEAD_ID_NUMBER
                ),
                resolution_clock=OTHER_CLOCK,
            )
        )
        referral(
            s,
            HOUSEHOLD_A,
            VILLAGE_A1,
            ReferralChannel.CADRE_SCREENING,
            now + timedelta(seconds=2),
            referred_by_id=reviewer,
            causes=["illness"],
            note="长期慢性病，医疗支出大",
        )
        case_id = case(s, HOUSEHOLD_A, VILLAGE_A1, CaseDirection.ENTRY, CaseStage.VILLAGE_REVIEW)
        step(
            s,
            case_id,
            1,
            CaseStage.VERIFICATION,
            StepDecision.APPROVE,
            now + timedelta(seconds=3),
            taken_by_id=reviewer,
            submission_id=uuid.UUID(pushed["instance_id"]),
            comment="入户核查属实",
        )
        step(
            s, case_id, 2, CaseStage.VILLAGE_REVIEW, StepDecision.RETURN, now + timedelta(seconds=4)
        )
    return {"visit": pushed["instance_id"], "elsewhere": elsewhere["instance_id"], "case": case_id}


def timeline(client, token: str, household: uuid.UUID, query: str = "") -> Any:
    response = client.get(f"/api/v1/households/{household}/timeline{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def all_events(client, token: str, household: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = timeline(client, token, household, query)
        assert len(page["events"]) <= limit
        events += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def test_timeline_tells_the_households_history_newest_first(client, history, login):
    token = login("reviewer")
    page = timeline(client, token, HOUSEHOLD_A, "?limit=200")
    events = page["events"]
    assert page["next_cursor"] is None and page["village_code"] == VILLAGE_A1
    times = [e["at"] for e in events]
    assert times == sorted(times, reverse=True)
    kinds = [e["kind"] for e in events]
    assert kinds[:5] == ["conflict_resolved", "case_step", "case_step", "referral", "conflict"]
    assert {"visit", "change"} <= set(kinds[5:])

    resolved, returned, verified, referred, conflict = events[:5]
    assert resolved["who"] == "reviewer"
    assert returned["data"]["decision"] == "return" and returned["who"] is None
    assert verified["data"]["stage"] == "verification" and verified["who"] == "reviewer"
    assert verified["data"]["instance_id"] == history["visit"]
    assert verified["data"]["case_id"] == str(history["case"])
    assert referred["data"]["channel"] == "cadre_screening"
    assert referred["data"]["causes"] == ["illness"]
    assert conflict["data"]["field"] == "id_number"

    [visit_event] = [e for e in events if e["kind"] == "visit"]
    assert visit_event["data"]["instance_id"] == history["visit"]
    assert visit_event["who"] == "collector_a1"
    assert visit_event["data"]["form_id"] == "household_visit"
    by_visit = [e for e in events if e["kind"] == "change" and e["data"]["instance_id"]]
    assert by_visit and all(e["data"]["instance_id"] == history["visit"] for e in by_visit)
    assert all(e["who"] == "collector_a1" for e in by_visit)
    household_write = [e for e in by_visit if e["data"]["entity"] == "household"]
    assert household_write[0]["data"]["fields"]["annual_income"] == 21000
    loaded = [e for e in events if e["kind"] == "change" and not e["data"]["instance_id"]]
    entities = {(e["data"]["entity"], e["data"]["entity_id"]) for e in loaded}
    assert ("household", str(HOUSEHOLD_A)) in entities
    assert {("member", str(m)) for m in MEMBERS_A} <= entities
    # Nothing of household B.
    assert history["elsewhere"] not in json.dumps(page)


def test_sensitive_values_are_masked_everywhere(client, history, login):
    page = timeline(client, login("reviewer"), HOUSEHOLD_A, "?limit=200")
    text = json.dumps(page, ensure_ascii=False)
    assert HEAD_ID_NUMBER not in text and OTHER_ID_NUMBER not in text
    resolved = page["events"][0]
    assert resolved["data"]["winner"]["value"] == "9901**********0011"
    assert resolved["data"]["loser"]["value"] == "9901**********0038"
    assert resolved["data"]["resolution"]["value"] == "9901**********0011"
    head_load = [
        e
        for e in page["events"]
        if e["kind"] == "change"
        and e["data"]["entity_id"] == str(MEMBERS_A[0])
        and "id_number" in e["data"]["fields"]
    ]
    assert head_load and all("*" in e["data"]["fields"]["id_number"] for e in head_load)


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_paging_gives_every_event_once_in_order(client, history, login, limit):
    token = login("reviewer")
    whole = timeline(client, token, HOUSEHOLD_A, "?limit=200")["events"]
    assert len(whole) > 7
    assert all_events(client, token, HOUSEHOLD_A, limit) == whole


def test_events_at_the_same_moment_page_without_loss_and_later_ones_do_not_shift_pages(
    client, rt, history, login
):
    token = login("reviewer")
    same = utcnow() + timedelta(minutes=5)
    with rt.db.unit_of_work() as s:
        for _ in range(5):
            referral(s, HOUSEHOLD_A, VILLAGE_A1, ReferralChannel.SELF_APPLICATION, same)
        step(s, history["case"], 3, CaseStage.VILLAGE_REVIEW, StepDecision.APPROVE, same)
    whole = timeline(client, token, HOUSEHOLD_A, "?limit=200")["events"]
    first = timeline(client, token, HOUSEHOLD_A, "?limit=3")
    assert first["events"] == whole[:3]
    with rt.db.unit_of_work() as s:  # newer events arrive between two pages
        referral(s, HOUSEHOLD_A, VILLAGE_A1, ReferralChannel.DEPARTMENT_WARNING, same)
        referral(
            s, HOUSEHOLD_A, VILLAGE_A1, ReferralChannel.DEPARTMENT_WARNING, same + timedelta(1)
        )
    rest: list[dict[str, Any]] = []
    cursor = first["next_cursor"]
    while cursor:
        page = timeline(client, token, HOUSEHOLD_A, f"?limit=3&cursor={cursor}")
        rest += page["events"]
        cursor = page["next_cursor"]
    kept = [e for e in first["events"] + rest]
    # The referral added at the same moment sorts by its id: it may or may not fall after the
    # cursor, but nothing already listed comes again and nothing older is missed.
    older = [e for e in kept if e not in whole]
    assert all(e["kind"] == "referral" and e["at"] == whole[0]["at"] for e in older)
    assert [e for e in kept if e in whole] == whole


def test_scope_unknown_household_and_bad_queries(client, history, create_user_, login):
    create_user_("township_sup", Role.SUPERVISOR, [TOWNSHIP_A])
    collector_b = login("collector_b1")
    collector_a = login("collector_a1")
    assert timeline(client, collector_a, HOUSEHOLD_A)["events"]
    assert timeline(client, login("township_sup"), HOUSEHOLD_A)["events"]

    def get(token: str, household: uuid.UUID, query: str = "") -> tuple[int, Any]:
        response = client.get(
            f"/api/v1/households/{household}/timeline{query}", headers=bearer(token)
        )
        return response.status_code, response.get_json()

    code, body = get(collector_b, HOUSEHOLD_A)
    assert code == 403 and body["error"]["code"] == "forbidden"
    code, body = get(collector_a, uuid.uuid4())
    assert code == 404 and body["error"]["code"] == "not_found"
    for query in (
        "?limit=0",
        "?limit=201",
        "?limit=x",
        "?cursor=",
        "?cursor=not-a-cursor",
        "?cursor=WyIyMDI2LTEyLTA1IiwieCJd",  # JSON, but not [time, kind, key]
        "?cursor=WyIyMDI2LTEyLTA1VDAwOjAwOjAwKzAwOjAwIiwicmVmZXJyYWwiLCJ6eiJd",  # bad key
        "?colour=red",
    ):
        code, body = get(collector_a, HOUSEHOLD_A, query)
        assert code == 422, (query, body)
        assert body["error"]["code"] == "validation_error"
    assert client.get(f"/api/v1/households/{HOUSEHOLD_A}/timeline").status_code == 401


def test_help_given_is_on_the_timeline_with_phones_masked_and_no_empty_changes(
    client, rt, history, login
):
    make_monitored(rt, HOUSEHOLD_A)
    token = login("reviewer")
    before = all_events(client, token, HOUSEHOLD_A, 50)
    assigned = client.post(
        f"/api/v1/households/{HOUSEHOLD_A}/helpers",
        json={"name": "韦秀英", "phone": "139-1234-5678", "assigned_on": "2026-11-02"},
        headers=bearer(token),
    )
    assert assigned.status_code == 201, assigned.get_json()
    after = all_events(client, token, HOUSEHOLD_A, 3)
    new = [e for e in after if e not in before]
    assert [e["kind"] for e in new] == ["help"]
    assert new[0]["who"] == "reviewer"
    assert new[0]["data"]["action"] == "helper_assigned"
    assert new[0]["data"]["object_id"] == assigned.get_json()["id"]
    text = json.dumps(new[0], ensure_ascii=False)
    assert "13912345678" not in text and "1234-5678" not in text
    # The help reaches the household's tablets through a change-log row that changes no field;
    # it is not shown as a register change.
    assert all(e["data"]["fields"] for e in after if e["kind"] == "change")
