"""Follow-up visits: an accepted visit counts as the follow-up of a household under monitoring;
due and overdue follow-ups follow the interval set per region and monitoring type; supervisors
list them by region, the summary counts them, and collectors get their due list through pull."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, true

from forms.register import MonitoringType
from server.auth.actor import Actor, system_actor
from server.db import utcnow
from server.monitoring import followups, settings
from server.monitoring.followups import FollowupState, followup_state, overdue_counts
from server.monitoring.help_models import HouseholdFollowup
from server.runtime import Runtime
from server.users.models import Role
from tests.conftest import (
    COUNTY,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    Login,
    UserFactory,
    bearer,
)
from tests.monitoring.help_fixtures import make_monitored, pull_pages, pulled_help, set_last_visit
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register, visit

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        (None, FollowupState.OVERDUE),
        (31, FollowupState.OVERDUE),
        (30, FollowupState.DUE),  # due exactly now: not yet overdue
        (23, FollowupState.DUE),
        (22.9, FollowupState.CURRENT),
        (0, FollowupState.CURRENT),
    ],
)
def test_a_follow_up_is_due_a_week_before_its_interval_ends_and_overdue_after(
    days_ago: float | None, expected: FollowupState
) -> None:
    last = None if days_ago is None else NOW - timedelta(days=days_ago)
    due_at, state = followup_state(last, 30, 7, NOW)
    assert state is expected
    assert due_at == (None if last is None else last + timedelta(days=30))


def _followup(rt: Runtime, household_id: uuid.UUID) -> HouseholdFollowup | None:
    with rt.db.unit_of_work(write=False) as session:
        row = session.get(HouseholdFollowup, household_id)
        if row is not None:
            session.expunge(row)
        return row


def test_an_accepted_visit_is_the_follow_up_of_a_household_under_monitoring(
    client: FlaskClient, rt: Runtime, create_user_: UserFactory, regions: list[str]
) -> None:
    load_register(rt)
    create_user_("col_a", Role.COLLECTOR, [VILLAGE_A1])
    tablet = Tablet.login(client, "col_a")
    # Not monitored: the visit is merged as always, and no follow-up is recorded.
    response = tablet.push([tablet.submission(visit())])
    assert response.get_json()["results"][0]["status"] == "accepted"
    assert _followup(rt, HOUSEHOLD_A) is None

    make_monitored(rt, HOUSEHOLD_A)
    first = tablet.submission(visit())
    assert tablet.push([first]).get_json()["results"][0]["status"] == "accepted"
    row = _followup(rt, HOUSEHOLD_A)
    assert row is not None
    assert row.last_visit_at == datetime(2026, 11, 20, 0, 15, tzinfo=UTC)  # 08:15 at +08:00
    assert row.last_submission_id == uuid.UUID(first["instance_id"])

    # A visit made earlier that arrives later does not move the follow-up back; two visits in
    # one batch count once, the later one.
    older = tablet.submission(visit(annual_income=20000))
    older["collected_at"] = "2026-11-01T09:00:00+08:00"
    later = tablet.submission(visit(annual_income=21000))
    later["collected_at"] = "2026-11-25T10:00:00+08:00"
    results = tablet.push([older, later]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    row = _followup(rt, HOUSEHOLD_A)
    assert row is not None
    assert row.last_visit_at == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert row.last_submission_id == uuid.UUID(later["instance_id"])
    stale = tablet.submission(visit(annual_income=22000))
    stale["collected_at"] = "2026-11-21T10:00:00+08:00"
    tablet.push([stale])
    row = _followup(rt, HOUSEHOLD_A)
    assert row is not None and row.last_submission_id == uuid.UUID(later["instance_id"])

    # A visit stamped a little ahead (within the allowed clock skew) counts as made on arrival,
    # so a fast tablet clock cannot postpone the next follow-up.
    before = utcnow()
    ahead = tablet.submission(visit(annual_income=23000))
    ahead["collected_at"] = (before + timedelta(minutes=5)).isoformat()
    assert tablet.push([ahead]).get_json()["results"][0]["status"] == "accepted"
    row = _followup(rt, HOUSEHOLD_A)
    assert row is not None
    assert before <= row.last_visit_at <= utcnow()


@pytest.fixture
def monitored(
    rt: Runtime, village_households: dict[str, dict[str, uuid.UUID]]
) -> dict[str, uuid.UUID]:
    """A1: marginal, visited 40 days ago (overdue); A2: unstable lifted, 25 days ago (due soon);
    B1: sudden difficulty, never visited (overdue)."""
    ids = {village: v["household"] for village, v in village_households.items()}
    now = utcnow()
    make_monitored(rt, ids[VILLAGE_A1], MonitoringType.MARGINAL)
    make_monitored(rt, ids[VILLAGE_A2], MonitoringType.UNSTABLE_LIFTED)
    make_monitored(rt, ids[VILLAGE_B1], MonitoringType.SUDDEN_DIFFICULTY)
    set_last_visit(rt, ids[VILLAGE_A1], now - timedelta(days=40))
    set_last_visit(rt, ids[VILLAGE_A2], now - timedelta(days=25))
    return ids


def _listed(client: FlaskClient, token: str, query: str) -> list[str]:
    response = client.get(f"/api/v1/monitoring/followups?{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return [f["household_id"] for f in response.get_json()["followups"]]


def test_supervisors_list_overdue_and_due_follow_ups_by_region(
    client: FlaskClient,
    rt: Runtime,
    create_user_: UserFactory,
    login: Login,
    monitored: dict[str, uuid.UUID],
) -> None:
    create_user_("sup_county", Role.SUPERVISOR, [COUNTY])
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col_a", Role.COLLECTOR, [VILLAGE_A1])
    county, sup_a = login("sup_county"), login("sup_a")
    a1, a2, b1 = (str(monitored[v]) for v in (VILLAGE_A1, VILLAGE_A2, VILLAGE_B1))

    # Never visited first, then the longest overdue.
    assert _listed(client, county, f"region={COUNTY}&state=overdue") == [b1, a1]
    assert _listed(client, county, f"region={COUNTY}&state=due") == [a2]
    assert _listed(client, county, "") == [b1, a1]  # default: overdue, all the caller's regions
    assert _listed(client, county, f"region={TOWNSHIP_A}") == [a1]
    assert _listed(client, sup_a, "") == [a1]
    page = client.get(
        f"/api/v1/monitoring/followups?region={COUNTY}&limit=1&offset=1", headers=bearer(county)
    ).get_json()
    assert (page["total"], [f["household_id"] for f in page["followups"]]) == (2, [a1])
    first = client.get("/api/v1/monitoring/followups", headers=bearer(county)).get_json()
    assert first["followups"][1]["interval_days"] == 30
    assert first["followups"][1]["monitoring_type"] == "marginal"

    forbidden = client.get(
        f"/api/v1/monitoring/followups?region={TOWNSHIP_B}", headers=bearer(sup_a)
    )
    assert forbidden.status_code == 403
    unknown = client.get("/api/v1/monitoring/followups?region=990102009000", headers=bearer(county))
    assert unknown.status_code == 404
    bad = client.get("/api/v1/monitoring/followups?state=late", headers=bearer(county))
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "validation_error"
    collector = client.get("/api/v1/monitoring/followups", headers=bearer(login("col_a")))
    assert collector.status_code == 403

    # The county lets marginal households go 60 days between visits: A1 is no longer overdue,
    # while township A's own setting for unstable lifted households makes A2 overdue.
    with rt.db.unit_of_work() as session:
        settings.set_value(session, system_actor(), COUNTY, "followup_days.marginal", 60)
        settings.set_value(session, system_actor(), TOWNSHIP_A, "followup_days.unstable_lifted", 20)
    assert _listed(client, county, "state=overdue") == [b1, a2]
    assert _listed(client, county, "state=due") == []


def test_overdue_counts_by_village_and_type_for_a_region_an_actor_or_everywhere(
    rt: Runtime, monitored: dict[str, uuid.UUID]
) -> None:
    everywhere = {VILLAGE_A1: {"marginal": 1}, VILLAGE_B1: {"sudden_difficulty": 1}}
    supervisor = Actor(user_id=None, username="s", role=Role.SUPERVISOR, region_codes=(TOWNSHIP_A,))
    with rt.db.unit_of_work(write=False) as session:
        assert overdue_counts(session, None, utcnow()) == everywhere
        assert overdue_counts(session, TOWNSHIP_B, utcnow()) == {
            VILLAGE_B1: {"sudden_difficulty": 1}
        }
        assert overdue_counts(session, supervisor, utcnow()) == {VILLAGE_A1: {"marginal": 1}}
        # Ten days on, A2 (visited 25 days ago, every 30 days) is overdue too.
        later = overdue_counts(session, supervisor, utcnow() + timedelta(days=10))
    assert later == {VILLAGE_A1: {"marginal": 1}, VILLAGE_A2: {"unstable_lifted": 1}}


def test_overdue_counts_agree_with_each_households_state_at_every_moment(
    rt: Runtime, monitored: dict[str, uuid.UUID]
) -> None:
    """The counts (one comparison per household) and the listing (a state per household) apply
    one rule: checked with intervals set at several levels, a household whose type is not
    recorded, and moments on either side of and exactly at a due date."""
    make_monitored(rt, monitored[VILLAGE_A2], None)  # no type: the shortest interval applies
    with rt.db.unit_of_work() as session:
        settings.set_value(session, system_actor(), COUNTY, "followup_days.marginal", 60)
        settings.set_value(session, system_actor(), TOWNSHIP_A, "followup_days.marginal", 45)
        settings.set_value(
            session, system_actor(), TOWNSHIP_A, "followup_days.sudden_difficulty", 10
        )
    with rt.db.unit_of_work(write=False) as session:
        visits = {
            h: at
            for h, at in session.execute(
                select(HouseholdFollowup.household_id, HouseholdFollowup.last_visit_at)
            )
        }
        a1_due = visits[monitored[VILLAGE_A1]] + timedelta(days=45)
        moments = [utcnow() + timedelta(days=d) for d in (-30, 0, 3, 10, 30)]
        for as_of in [*moments, a1_due, a1_due + timedelta(microseconds=1)]:
            expected: dict[str, dict[str, int]] = {}
            for f in followups.assess(session, followups._monitored(session, true()), as_of):
                if f.state == FollowupState.OVERDUE.value:
                    by_type = expected.setdefault(f.village_code, {})
                    kind = f.monitoring_type or "unknown"
                    by_type[kind] = by_type.get(kind, 0) + 1
            assert overdue_counts(session, None, as_of) == expected, as_of
        assert VILLAGE_A1 not in overdue_counts(session, None, a1_due)
        assert overdue_counts(session, None, a1_due + timedelta(microseconds=1))[VILLAGE_A1]


def test_collectors_get_their_due_follow_ups_on_the_last_page_of_a_pull(
    client: FlaskClient,
    rt: Runtime,
    create_user_: UserFactory,
    login: Login,
    monitored: dict[str, uuid.UUID],
) -> None:
    create_user_("col_a", Role.COLLECTOR, [TOWNSHIP_A])
    create_user_("col_b", Role.COLLECTOR, [VILLAGE_B1])
    create_user_("root", Role.ADMIN)
    pages, cursor = pull_pages(client, login("col_a"))
    due = pages[-1]["followups"]["due"]
    assert [(d["household_id"], d["state"]) for d in due] == [
        (str(monitored[VILLAGE_A1]), "overdue"),
        (str(monitored[VILLAGE_A2]), "due"),
    ]
    assert due[0]["last_visit_at"] is not None and due[0]["due_at"] is not None
    assert due[0]["village_code"] == VILLAGE_A1
    col_b_pages, _ = pull_pages(client, login("col_b"))
    [never] = col_b_pages[-1]["followups"]["due"]
    assert (never["household_id"], never["due_at"]) == (str(monitored[VILLAGE_B1]), None)

    # Paged: only the last page carries the list.
    admin_pages, _ = pull_pages(client, login("root"), limit=1)
    assert len(admin_pages) > 1
    assert all("followups" not in page for page in admin_pages[:-1])
    assert len(admin_pages[-1]["followups"]["due"]) == 3

    # An incremental pull with nothing changed still brings the current list.
    again, _ = pull_pages(client, login("col_a"), cursor)
    assert [p["entities"] for p in again] == [[]]
    assert [d["household_id"] for d in again[-1]["followups"]["due"]] == [
        str(monitored[VILLAGE_A1]),
        str(monitored[VILLAGE_A2]),
    ]


def test_help_reaches_the_households_collectors_through_pull_incrementally(
    client: FlaskClient,
    rt: Runtime,
    create_user_: UserFactory,
    login: Login,
    monitored: dict[str, uuid.UUID],
) -> None:
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col_a", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col_b", Role.COLLECTOR, [VILLAGE_B1])
    sup, col_a, col_b = login("sup_a"), login("col_a"), login("col_b")
    household = monitored[VILLAGE_A1]
    base = f"/api/v1/households/{household}"
    helper = client.post(
        f"{base}/helpers", json={"name": "韦秀英", "phone": "13912345678"}, headers=bearer(sup)
    ).get_json()
    client.post(
        f"{base}/measures",
        json={"type": "medical_aid", "start_date": "2026-11-01", "amount": 1200},
        headers=bearer(sup),
    )

    pages, cursor_a = pull_pages(client, col_a)
    [first_rev] = [e["rev"] for p in pages for e in p["entities"] if e["id"] == str(household)]
    help_a = pulled_help(pages)[str(household)]
    assert [h["name"] for h in help_a["helpers"]] == ["韦秀英"]
    assert help_a["helpers"][0]["phone"] == "139****5678"
    assert [(m["type"], m["amount"]) for m in help_a["measures"]] == [("medical_aid", 1200.0)]
    _, cursor_b = pull_pages(client, col_b)

    # Nothing changed: nothing is sent again.
    quiet, cursor_a = pull_pages(client, col_a, cursor_a)
    assert pulled_help(quiet) == {} and quiet[-1]["entities"] == []

    # A new measure brings the household again, with its whole current help.
    client.post(
        f"{base}/measures",
        json={"type": "education_aid", "start_date": "2026-12-01"},
        headers=bearer(sup),
    )
    changed, cursor_a = pull_pages(client, col_a, cursor_a)
    assert [e["id"] for e in changed[-1]["entities"]] == [str(household)]
    assert changed[-1]["entities"][0]["rev"] == first_rev  # help changes no register field
    types = [m["type"] for m in pulled_help(changed)[str(household)]["measures"]]
    assert types == ["medical_aid", "education_aid"]
    other, _ = pull_pages(client, col_b, cursor_b)
    assert other[-1]["entities"] == [] and pulled_help(other) == {}

    # An ended helper leaves the tablet's list.
    client.post(f"/api/v1/monitoring/helpers/{helper['id']}/end", json={}, headers=bearer(sup))
    ended, _ = pull_pages(client, col_a, cursor_a)
    assert pulled_help(ended)[str(household)]["helpers"] == []
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalars(select(HouseholdFollowup.household_id)).all() != []
