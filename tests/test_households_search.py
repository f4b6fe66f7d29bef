"""Searching the register over HTTP (`GET /api/v1/households`): scoped to the caller's regions,
filtered, paged by a stable cursor, masked, and an identity-number lookup goes through the keyed
hash and is audited — on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.households.loading import NewHousehold, load_households
from server.users.models import Role
from tests.conftest import (
    ID_NUMBER,
    LOAD_CLOCK,
    TOWNSHIP_A,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)


def _search(client, token, **args):
    return client.get("/api/v1/households", query_string=args, headers=bearer(token))


def _villages(response):
    assert response.status_code == 200, response.get_json()
    return sorted(h["village_code"] for h in response.get_json()["households"])


@pytest.fixture
def tokens(create_user_, login, village_households):
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup.b", Role.SUPERVISOR, ["990102002000"])
    create_user_("col.a1", Role.COLLECTOR, [VILLAGE_A1])
    return {name: login(name) for name in ("admin", "sup.a", "sup.b", "col.a1")}


def test_a_township_user_never_sees_another_townships_households(client, tokens):
    assert _villages(_search(client, tokens["admin"])) == [VILLAGE_A1, VILLAGE_A2, VILLAGE_B1]
    assert _villages(_search(client, tokens["sup.a"])) == [VILLAGE_A1, VILLAGE_A2]
    assert _villages(_search(client, tokens["sup.b"])) == [VILLAGE_B1]
    assert _villages(_search(client, tokens["col.a1"])) == [VILLAGE_A1]
    # The same search naming the other township is refused, not answered empty.
    refused = _search(client, tokens["sup.a"], region=VILLAGE_B1)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    assert _search(client, tokens["col.a1"], region=TOWNSHIP_A).status_code == 403
    assert _search(client, tokens["sup.a"], region="990102009000").status_code == 404


def test_filters_by_number_prefix_head_name_region_and_monitoring(client, tokens):
    admin = tokens["admin"]
    assert _villages(_search(client, admin, region=TOWNSHIP_A)) == [VILLAGE_A1, VILLAGE_A2]
    assert _villages(_search(client, admin, region=VILLAGE_A2)) == [VILLAGE_A2]
    assert _villages(_search(client, admin, household_no="00")) == [
        VILLAGE_A1,
        VILLAGE_A2,
        VILLAGE_B1,
    ]
    assert _villages(_search(client, admin, household_no="002")) == [VILLAGE_A2]
    # `%` and `_` are text to look for, not wildcards.
    assert _villages(_search(client, admin, household_no="%")) == []
    assert _villages(_search(client, admin, household_no="0_1")) == []
    assert _villages(_search(client, admin, head_name="建国")) == [
        VILLAGE_A1,
        VILLAGE_A2,
        VILLAGE_B1,
    ]
    assert _villages(_search(client, admin, head_name="李")) == []
    assert len(_villages(_search(client, admin, status="not_monitored"))) == 3
    assert _villages(_search(client, admin, status="monitored")) == []
    assert _villages(_search(client, admin, monitoring_type="marginal")) == []
    assert len(_villages(_search(client, admin, category="lifted"))) == 3


def test_answers_are_masked_and_an_identity_number_lookup_is_hashed_and_audited(
    client, rt, tokens, village_households
):
    response = _search(client, tokens["sup.a"], id_number=ID_NUMBER.lower())
    assert _villages(response) == [VILLAGE_A1, VILLAGE_A2]
    assert ID_NUMBER not in response.get_data(as_text=True)
    head = response.get_json()["households"][0]["head"]
    assert head["name"] == "王建国"
    assert head["id_number"] == "9901**********2345"
    assert head["member_id"] == str(village_households[VILLAGE_A1]["member"])
    assert _villages(_search(client, tokens["sup.a"], id_number="990102198001019999")) == []
    with rt.db.unit_of_work(write=False) as session:
        entries = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "household_id_number_lookup")
            .order_by(AuditEntry.id)
        ).all()
    assert [e.details["found"] for e in entries] == [2, 0]
    assert entries[0].details["id_number"] == "9901**********2345"
    assert ID_NUMBER not in str(entries[0].details)
    assert sorted(entries[0].details["households"]) == sorted(
        str(village_households[v]["household"]) for v in (VILLAGE_A1, VILLAGE_A2)
    )
    # A search without an identity number writes nothing.
    _search(client, tokens["sup.a"], head_name="王")
    with rt.db.unit_of_work(write=False) as session:
        lookups = session.scalars(
            select(AuditEntry.id).where(AuditEntry.action == "household_id_number_lookup")
        ).all()
    assert len(lookups) == 2


def test_pages_by_cursor_in_a_stable_order_without_gaps_or_repeats(client, rt, tokens):
    extra = [
        NewHousehold(
            id=uuid.uuid4(),
            fields={"village_code": VILLAGE_A1, "household_no": no},
        )
        for no in ("010", "003", None, "003", "100")
    ]
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, extra, clock=LOAD_CLOCK)
    everything = _search(client, tokens["admin"], limit=1000).get_json()["households"]
    assert len(everything) == 8
    assert everything[0]["household_no"] is None  # no number sorts first within its village
    seen, cursor = [], None
    while True:
        args = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = _search(client, tokens["admin"], **args).get_json()
        seen += page["households"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [h["id"] for h in seen] == [h["id"] for h in everything]


def test_bad_arguments_are_422_naming_the_argument(client, tokens):
    admin = tokens["admin"]
    for args, path in (
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"region": "12345"}, "region"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ):
        response = _search(client, admin, **args)
        assert response.status_code == 422, args
        error = response.get_json()["error"]
        assert error["code"] == "validation_error"
        assert [e["path"] for e in error["details"]["errors"]] == [path], args
    assert client.get("/api/v1/households").status_code == 401
