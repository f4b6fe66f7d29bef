"""The region tree over HTTP (`GET /api/v1/regions`, `GET /api/v1/regions/{code}`): the caller's
roots, the children they may see with counts, the regions above their grants by name only, and
403 for any other region — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from server.users.models import Role
from tests.conftest import (
    CITY,
    COUNTY,
    PROVINCE,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)


@pytest.fixture
def tokens(create_user_, login, village_households):
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A, VILLAGE_A1])
    create_user_("col.b1", Role.COLLECTOR, [VILLAGE_B1])
    return {name: login(name) for name in ("admin", "sup.a", "col.b1")}


def _regions(client, token, **args):
    response = client.get("/api/v1/regions", query_string=args, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["regions"]


def test_roots_are_the_top_regions_for_admins_and_the_grants_for_others(client, tokens):
    [province] = _regions(client, tokens["admin"])
    assert province == {
        "code": PROVINCE,
        "name": "演示省",
        "level": "province",
        "parent_code": None,
        "access": "granted",
        "child_count": 1,
        "household_count": 3,
    }
    # A grant inside another grant of the same user is not a second root.
    [township] = _regions(client, tokens["sup.a"])
    assert (township["code"], township["child_count"], township["household_count"]) == (
        TOWNSHIP_A,
        2,
        2,
    )
    [village] = _regions(client, tokens["col.b1"])
    assert (village["code"], village["level"], village["household_count"]) == (
        VILLAGE_B1,
        "village",
        1,
    )


def test_children_are_those_the_caller_may_see_ancestors_by_name_only(client, tokens):
    county = _regions(client, tokens["admin"], parent=COUNTY)
    assert [(r["code"], r["household_count"]) for r in county] == [(TOWNSHIP_A, 2), (TOWNSHIP_B, 1)]
    # The township-A supervisor sees the county's names down to their township, not township B.
    above = _regions(client, tokens["sup.a"], parent=CITY)
    assert above == [
        {
            "code": COUNTY,
            "name": "云溪县",
            "level": "county",
            "parent_code": CITY,
            "access": "ancestor",
            "child_count": None,
            "household_count": None,
        }
    ]
    assert [r["code"] for r in _regions(client, tokens["sup.a"], parent=COUNTY)] == [TOWNSHIP_A]
    villages = _regions(client, tokens["sup.a"], parent=TOWNSHIP_A)
    assert [(r["code"], r["access"], r["household_count"]) for r in villages] == [
        (VILLAGE_A1, "granted", 1),
        (VILLAGE_A2, "granted", 1),
    ]
    refused = client.get(
        "/api/v1/regions", query_string={"parent": TOWNSHIP_B}, headers=bearer(tokens["sup.a"])
    )
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"


def test_one_region_with_the_names_above_it(client, tokens):
    response = client.get(f"/api/v1/regions/{VILLAGE_A2}", headers=bearer(tokens["sup.a"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["region"]["code"] == VILLAGE_A2 and body["region"]["household_count"] == 1
    assert [(r["code"], r["access"]) for r in body["ancestors"]] == [
        (PROVINCE, "ancestor"),
        (CITY, "ancestor"),
        (COUNTY, "ancestor"),
        (TOWNSHIP_A, "granted"),
    ]
    assert all(r["household_count"] is None for r in body["ancestors"])
    county = client.get(f"/api/v1/regions/{COUNTY}", headers=bearer(tokens["col.b1"]))
    assert county.status_code == 200
    assert county.get_json()["region"]["access"] == "ancestor"
    assert county.get_json()["region"]["child_count"] is None
    other = client.get(f"/api/v1/regions/{VILLAGE_A1}", headers=bearer(tokens["col.b1"]))
    assert other.status_code == 403
    for missing in ("990102001999", "not-a-code", "000000000000"):
        answer = client.get(f"/api/v1/regions/{missing}", headers=bearer(tokens["admin"]))
        assert answer.status_code == 404, missing
        assert answer.get_json()["error"]["code"] == "not_found"


def test_bad_arguments_are_422_and_a_missing_token_401(client, tokens):
    for args in ({"parent": "99"}, {"parent": ""}, {"depth": "2"}):
        response = client.get("/api/v1/regions", query_string=args, headers=bearer(tokens["admin"]))
        assert response.status_code == 422, args
        [error] = response.get_json()["error"]["details"]["errors"]
        assert error["path"] == next(iter(args))
    assert client.get("/api/v1/regions").status_code == 401
