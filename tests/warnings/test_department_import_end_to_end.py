"""Department data comparison from end to end: a 医保 list uploaded through the API, matched by
identity hash, raises the mismatch warning on the household in the same transaction, naming the
import and the file's row; a later full list that no longer says so makes it stop holding."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from server.runtime import Runtime
from server.users.models import Role
from server.warnings.models import RiskWarning
from tests.conftest import VILLAGE_A1, Login, UserFactory, bearer
from tests.departments.world import (
    BOB,
    MEDICAL_HEADER,
    MEDICAL_MAPPING,
    NOBODY,
    World,
    build_register,
)
from tests.departments.world import csv_bytes as csv_file


@pytest.fixture
def world(rt: Runtime, regions: list[str]) -> World:
    return build_register(rt)


@pytest.fixture
def admin(create_user_: UserFactory, login: Login) -> dict[str, str]:
    create_user_("root", Role.ADMIN)
    return bearer(login("root"))


def _upload(
    client: FlaskClient, admin: dict[str, str], source_id: str, rows: list[list[str]]
) -> Any:
    response = client.post(
        f"/api/v1/departments/sources/{source_id}/imports",
        headers=admin,
        data={"file": (io.BytesIO(csv_file([MEDICAL_HEADER, *rows])), "医保名单.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _bobs_warnings(rt: Runtime, world: World) -> list[RiskWarning]:
    with rt.db.unit_of_work(write=False) as session:
        found = session.scalars(
            select(RiskWarning).where(
                RiskWarning.household_id == world.households["h2"],
                RiskWarning.rule == "department_uninsured",
            )
        ).all()
        session.expunge_all()
        return list(found)


def test_an_uploaded_list_raises_the_mismatch_warning_and_a_later_list_clears_it(
    client: FlaskClient, rt: Runtime, world: World, admin: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/departments/sources",
        headers=admin,
        json={
            "name": "county-medical",
            "department": "medical_insurance",
            "mapping": MEDICAL_MAPPING,
            "list_kind": "full",
        },
    )
    assert created.status_code == 201, created.get_json()
    source_id = created.get_json()["id"]
    assert _bobs_warnings(rt, world) == []

    # Row 2: the register says Bob is insured; 医保 says he is not.
    first = _upload(client, admin, source_id, [[BOB, "bob", "否", "0", "2026-11-30"]])
    (warning,) = _bobs_warnings(rt, world)
    assert warning.holds and warning.member_id == world.members["bob"]
    source = warning.evidence["source"]
    assert source["department"] == "medical_insurance"
    assert source["import_id"] == first["id"] and source["row"] == 2
    assert BOB not in str(warning.evidence)  # never the clear identity number

    # Next month's full list says he is insured: the same warning stops holding, not deleted.
    _upload(client, admin, source_id, [[BOB, "bob", "是", "0", "2026-12-31"]])
    (after,) = _bobs_warnings(rt, world)
    assert after.id == warning.id and not after.holds


def test_a_list_repeating_a_value_leaves_the_fact_and_its_warning_alone(
    client: FlaskClient, rt: Runtime, world: World, admin: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/departments/sources",
        headers=admin,
        json={"name": "medical", "department": "medical_insurance", "mapping": MEDICAL_MAPPING},
    )
    source_id = created.get_json()["id"]
    # A register rule's warning (a visit said the house is unsafe; the register now says
    # otherwise): an import of 医保 facts runs only the rules reading them, so it stays as it is.
    with rt.db.unit_of_work() as session:
        house = RiskWarning(
            household_id=world.households["h2"],
            subject_key="",
            village_code=VILLAGE_A1,
            rule="unsafe_house",
            source="submission",
            evidence={"values": {"housing_ok": False}, "source": {"kind": "submission"}},
        )
        session.add(house)
        session.flush()
        house_id, house_seen = house.id, house.last_seen
    first = _upload(client, admin, source_id, [[BOB, "bob", "否", "0", "2026-11-30"]])
    (warning,) = _bobs_warnings(rt, world)
    # Next month's list says the same about Bob, on another row: his fact is unchanged, so
    # neither it nor his warning is touched (the evidence still names the first import's row).
    second = _upload(
        client,
        admin,
        source_id,
        [[NOBODY, "x", "是", "0", "2026-11-30"], [BOB, "bob", "否", "0", "2026-11-30"]],
    )
    assert second["id"] != first["id"] and second["facts_written"] == 0
    (again,) = _bobs_warnings(rt, world)
    assert again.evidence == warning.evidence and again.last_seen == warning.last_seen
    assert again.evidence["source"]["import_id"] == first["id"]
    with rt.db.unit_of_work(write=False) as session:
        kept = session.get(RiskWarning, house_id)
        assert kept is not None and kept.holds and kept.last_seen == house_seen
