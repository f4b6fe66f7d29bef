"""Roles and region scope: a grant covers every region below it, nothing beside it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.auth.actor import Actor
from server.errors import Forbidden
from server.households.models import Household
from server.regions.codes import RegionLevel, code_range, covers, level_of, parent_code_of
from server.users.models import Role
from tests.conftest import (
    COUNTY,
    ID_NUMBER,
    PROVINCE,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)


@pytest.fixture
def households(village_households) -> dict[str, uuid.UUID]:
    return {village: ids["household"] for village, ids in village_households.items()}


def test_collector_of_village_a_gets_403_for_village_b_household(
    client, create_user_, login, households
):
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    token = login("collector")
    own = client.get(f"/api/v1/households/{households[VILLAGE_A1]}", headers=bearer(token))
    assert own.status_code == 200
    assert own.get_json()["fields"]["village_code"] == VILLAGE_A1
    other = client.get(f"/api/v1/households/{households[VILLAGE_B1]}", headers=bearer(token))
    assert other.status_code == 403
    assert other.get_json()["error"]["code"] == "forbidden"
    assert "fields" not in other.get_json()


def test_a_township_grant_covers_its_villages_and_no_others(
    client, create_user_, login, households
):
    create_user_("township", Role.SUPERVISOR, [TOWNSHIP_A])
    token = login("township")
    codes = {
        v: client.get(f"/api/v1/households/{h}", headers=bearer(token)).status_code
        for v, h in households.items()
    }
    assert codes == {VILLAGE_A1: 200, VILLAGE_A2: 200, VILLAGE_B1: 403}


def test_admin_sees_every_region_without_grants(client, create_user_, login, households):
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    assert all(
        client.get(f"/api/v1/households/{h}", headers=bearer(token)).status_code == 200
        for h in households.values()
    )


def test_unknown_household_is_404_and_malformed_id_is_404(client, create_user_, login, households):
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    assert (
        client.get(f"/api/v1/households/{uuid.uuid4()}", headers=bearer(token)).status_code == 404
    )
    assert client.get("/api/v1/households/not-a-uuid", headers=bearer(token)).status_code == 404


def test_identity_numbers_are_masked_by_default(client, create_user_, login, households):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    body = client.get(
        f"/api/v1/households/{households[VILLAGE_A1]}", headers=bearer(login("supervisor"))
    ).get_json()
    member = body["members"][0]["fields"]
    assert member["id_number"] == "9901**********2345"
    assert member["phone"] == "138****5678"
    assert member["name"] == "王建国"
    assert body["fields"]["per_capita_income"] == 6400.5


def test_supervisor_reveal_shows_the_number_and_is_audited(
    client, create_user_, login, households, rt
):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    household_id = households[VILLAGE_A1]
    body = client.get(
        f"/api/v1/households/{household_id}?reveal=sensitive", headers=bearer(login("supervisor"))
    ).get_json()
    assert body["members"][0]["fields"]["id_number"] == ID_NUMBER
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "reveal_sensitive")
        ).one()
    assert entry.object_id == str(household_id) and entry.region_code == VILLAGE_A1


def test_collector_may_not_reveal_and_nothing_is_audited(
    client, create_user_, login, households, rt
):
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    response = client.get(
        f"/api/v1/households/{households[VILLAGE_A1]}?reveal=sensitive",
        headers=bearer(login("collector")),
    )
    assert response.status_code == 403
    with rt.db.unit_of_work(write=False) as session:
        count = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "reveal_sensitive")
        )
    assert count == 0


def test_identity_numbers_are_never_stored_in_clear(rt, households):
    with rt.db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM members").fetchall()
        changes = conn.exec_driver_sql("SELECT fields FROM changes").fetchall()
    assert rows and not any(ID_NUMBER in str(value) for row in rows for value in row)
    assert not any(ID_NUMBER in str(row[0]) for row in changes)


def test_region_filter_selects_exactly_the_covered_households(rt, households):
    actor = Actor(
        user_id=1, username="x", role=Role.SUPERVISOR, region_codes=(TOWNSHIP_B, VILLAGE_A2)
    )
    with rt.db.unit_of_work(write=False) as session:
        villages = set(
            session.scalars(
                select(Household.village_code).where(actor.region_filter(Household.village_code))
            )
        )
    assert villages == {VILLAGE_B1, VILLAGE_A2}


def test_actor_without_grants_covers_nothing_and_ensure_covers_raises():
    actor = Actor(user_id=1, username="x", role=Role.COLLECTOR, region_codes=())
    assert not actor.covers(VILLAGE_A1)
    with pytest.raises(Forbidden):
        actor.ensure_covers(VILLAGE_A1)
    with pytest.raises(Forbidden):
        actor.ensure_role(Role.ADMIN)


@pytest.mark.parametrize(
    "code,level,parent",
    [
        (PROVINCE, RegionLevel.PROVINCE, None),
        ("990100000000", RegionLevel.CITY, PROVINCE),
        (COUNTY, RegionLevel.COUNTY, "990100000000"),
        (TOWNSHIP_A, RegionLevel.TOWNSHIP, COUNTY),
        (VILLAGE_A1, RegionLevel.VILLAGE, TOWNSHIP_A),
    ],
)
def test_level_and_parent_follow_from_the_code(code, level, parent):
    assert level_of(code) == level
    assert parent_code_of(code) == parent


@pytest.mark.parametrize(
    "bad", ["", "99010200100", "9901020010011", "abcdefghijkl", "000000000000"]
)
def test_malformed_codes_have_no_level(bad):
    with pytest.raises(ValueError):
        level_of(bad)


def test_grant_coverage_is_by_significant_prefix():
    assert covers(TOWNSHIP_A, VILLAGE_A1) and covers(TOWNSHIP_A, TOWNSHIP_A)
    assert not covers(TOWNSHIP_A, VILLAGE_B1)
    # A township code must not cover another township whose code merely starts the same way.
    assert not covers("990102001000", "990102010001")
    assert code_range(TOWNSHIP_A) == ("990102001000", "990102001999")
    assert code_range(VILLAGE_A1) == (VILLAGE_A1, VILLAGE_A1)
