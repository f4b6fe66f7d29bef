"""Pull through the real app on both databases: scope, incremental cursors, paging, scope changes
and cursors that cannot be honoured."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from server.users.models import Role
from server.users.service import grant_region, revoke_region
from tests.conftest import VILLAGE_A1, VILLAGE_B1
from tests.sync.helpers import (
    HOUSEHOLD_A,
    HOUSEHOLD_B,
    MEMBER_B,
    MEMBERS_A,
    Tablet,
    load_register,
    visit,
)


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def _ids(entities) -> set[tuple[str, str]]:
    return {(e["entity"], e["id"]) for e in entities}


A_ENTITIES = {("household", str(HOUSEHOLD_A))} | {("member", str(m)) for m in MEMBERS_A}


def test_first_pull_delivers_exactly_the_callers_villages(tablet):
    entities, removed, _ = tablet.pull_all()
    assert _ids(entities) == A_ENTITIES and removed == []
    household = next(e for e in entities if e["entity"] == "household")
    assert household["rev"] == 1 and household["deleted"] is False
    assert household["fields"]["village_code"] == VILLAGE_A1
    assert set(household["clocks"]) >= {"village_code", "annual_income"}
    head = next(e for e in entities if e["id"] == str(MEMBERS_A[0]))
    assert head["fields"]["id_number"] == "9901**********0011"  # masked on the wire


def test_incremental_pull_returns_only_what_changed_in_its_latest_state(tablet):
    _, _, cursor = tablet.pull_all()
    nothing, _, cursor = tablet.pull_all(cursor)
    assert nothing == []
    tablet.push([tablet.submission(visit(annual_income=21000))])
    tablet.push([tablet.submission(visit(annual_income=22000))])
    changed, _, cursor = tablet.pull_all(cursor)
    households = [e for e in changed if e["entity"] == "household"]
    assert len(households) == 1  # once, however many changes it had
    assert households[0]["fields"]["annual_income"] == 22000 and households[0]["rev"] == 3
    assert tablet.pull_all(cursor)[0] == []


def test_paging_delivers_everything_once_with_small_pages(tablet):
    entities, _, cursor = tablet.pull_all(limit=2)
    assert sorted(_ids(entities)) == sorted(A_ENTITIES) and len(entities) == len(A_ENTITIES)
    tablet.push([tablet.submission(visit(annual_income=21000))])
    changed, _, _ = tablet.pull_all(cursor, limit=1)
    assert _ids(changed) == A_ENTITIES


def test_growing_scope_delivers_the_added_villages_and_shrinking_it_removes_them(tablet, rt):
    _, _, cursor = tablet.pull_all()
    with rt.db.unit_of_work() as session:
        grant_region(session, "collector", VILLAGE_B1)
    added, removed, cursor = tablet.pull_all(cursor)
    assert _ids(added) == {("household", str(HOUSEHOLD_B)), ("member", str(MEMBER_B))}
    assert removed == []
    with rt.db.unit_of_work() as session:
        revoke_region(session, "collector", VILLAGE_B1)
    entities, removed, _ = tablet.pull_all(cursor)
    assert entities == []
    assert _ids(removed) == {("household", str(HOUSEHOLD_B)), ("member", str(MEMBER_B))}


def test_a_malformed_cursor_is_400_and_a_forged_or_foreign_one_is_410(tablet, client, create_user_):
    def pull(cursor, headers=tablet.headers):
        return client.get(f"/api/v1/sync/pull?cursor={cursor}", headers=headers)

    assert pull("not-a-cursor").status_code == 400
    _, _, cursor = tablet.pull_all()
    body, signature = cursor.split(".")
    forged = pull(f"{body}.{'A' * len(signature)}")
    assert forged.status_code == 410 and forged.get_json()["error"]["code"] == "resync_required"
    create_user_("other", Role.COLLECTOR, [VILLAGE_A1])
    other = Tablet.login(client, "other")
    foreign = pull(cursor, other.headers)
    assert foreign.status_code == 410


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
def test_limits_outside_1_to_1000_are_422(tablet, client, limit):
    response = client.get(f"/api/v1/sync/pull?limit={limit}", headers=tablet.headers)
    assert response.status_code == 422


@pytest.mark.postgres_only
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_long_write_in_another_database_does_not_hold_pulls_back(tablet):
    # Transaction ids are shared by every database of a server; one left open elsewhere (a bulk
    # load, another application) must not stall every tablet's pull here.
    from tests.conftest import _PG_ADMIN_URL

    assert _PG_ADMIN_URL is not None
    elsewhere = create_engine(_PG_ADMIN_URL)
    with elsewhere.connect() as other:
        other.execute(text("SELECT pg_current_xact_id()"))  # holds an xid, uncommitted
        _, _, cursor = tablet.pull_all()
        tablet.push([tablet.submission(visit(annual_income=26000))])
        changed, _, _ = tablet.pull_all(cursor)
        other.rollback()
    elsewhere.dispose()
    household = next(e for e in changed if e["entity"] == "household")
    assert household["fields"]["annual_income"] == 26000
