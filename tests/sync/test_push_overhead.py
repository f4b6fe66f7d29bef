"""The fixed cost of everyday sync requests: a token resolves in one statement, a small push holds
one connection for its whole work (one transaction), and the process-wide caches that make it
cheap (request schemas, parsed form definitions) change nothing about the answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from server.auth import service as auth_service
from server.households.models import Household
from server.runtime import Runtime
from server.sync.push import SQLITE_PLAN_APART_ABOVE
from server.users.models import Role
from tests.conftest import VILLAGE_A1, VILLAGE_A2, bearer
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register, visit


@contextmanager
def database_use(rt: Runtime) -> Iterator[dict[str, list[Any]]]:
    """The connections checked out of the pool and the statements run while the block runs."""
    seen: dict[str, list[Any]] = {"checkouts": [], "statements": []}

    def checkout(*args: Any) -> None:
        seen["checkouts"].append(args)

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        if text.strip().upper() not in {"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"}:
            seen["statements"].append(text)

    event.listen(rt.db.engine.pool, "checkout", checkout)
    event.listen(rt.db.engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(rt.db.engine.pool, "checkout", checkout)
        event.remove(rt.db.engine, "before_cursor_execute", statement)


def _tablet(client: Any, rt: Runtime, create_user_: Any) -> Tablet:
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def test_an_authenticated_request_resolves_its_token_in_one_statement(client, rt, create_user_):
    tablet = _tablet(client, rt, create_user_)
    with database_use(rt) as seen:
        response = client.get("/api/v1/auth/me", headers=tablet.headers)
    assert response.status_code == 200, response.get_json()
    assert len(seen["statements"]) == 1, seen["statements"]
    assert len(seen["checkouts"]) == 1


def test_a_small_push_runs_in_one_transaction_after_its_token_check(client, rt, create_user_):
    tablet = _tablet(client, rt, create_user_)
    submissions = [tablet.submission(visit(annual_income=20000 + n)) for n in range(5)]
    with database_use(rt) as seen:
        response = tablet.push(submissions)
    assert response.status_code == 200, response.get_json()
    assert [r["status"] for r in response.get_json()["results"]] == ["accepted"] * 5
    # One connection for the token, one for the whole push (plan and apply together), and one
    # after its commit to list the photos the server still needs (the visits reference one).
    assert len(seen["checkouts"]) == 3, len(seen["checkouts"])


def test_a_large_push_on_sqlite_plans_before_its_write_transaction(client, rt, create_user_):
    tablet = _tablet(client, rt, create_user_)
    count = SQLITE_PLAN_APART_ABOVE + 1
    submissions = [tablet.submission(visit(annual_income=20000 + n)) for n in range(count)]
    with database_use(rt) as seen:
        response = tablet.push(submissions)
    assert response.status_code == 200, response.get_json()
    assert [r["status"] for r in response.get_json()["results"]] == ["accepted"] * count
    expected = 4 if rt.db.kind == "sqlite" else 3  # and the files still needed, after the commit
    assert len(seen["checkouts"]) == expected
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and float(household.annual_income or 0) == 20000 + count - 1


def test_the_one_statement_token_check_keeps_every_grant_and_works_without_any(
    client, rt, create_user_
):
    load_register(rt)
    create_user_("two", Role.COLLECTOR, [VILLAGE_A2, VILLAGE_A1])
    create_user_("none", Role.COLLECTOR, [])
    tokens = {name: Tablet.login(client, name).token for name in ("two", "none")}
    with rt.db.unit_of_work(write=False) as session:
        two = auth_service.actor_for_token(session, tokens["two"], address="127.0.0.1")
        none = auth_service.actor_for_token(session, tokens["none"], address=None)
    assert two.region_codes == tuple(sorted([VILLAGE_A1, VILLAGE_A2]))
    assert two.username == "two" and two.role is Role.COLLECTOR and two.device_id is not None
    assert none.region_codes == ()
    me = client.get("/api/v1/auth/me", headers=bearer(tokens["two"])).get_json()
    assert me["user"]["regions"] == sorted([VILLAGE_A1, VILLAGE_A2])


def test_pushes_after_the_first_give_the_same_answers_as_a_fresh_process(client, rt, create_user_):
    """The cached schema and form definitions answer a bad item, a good one and a re-send the
    same way on every push (the first one builds the caches)."""
    tablet = _tablet(client, rt, create_user_)
    bad = tablet.submission(visit(visit_date="not a date"))
    good = tablet.submission(visit(annual_income=23456))
    first = tablet.push([bad, good]).get_json()["results"]
    again = tablet.push([bad, good]).get_json()["results"]
    assert first[0]["status"] == "rejected" and first[1]["status"] == "accepted"
    assert again[0] == first[0]
    assert again[1]["status"] == "duplicate" and again[1]["revs"] == first[1]["revs"]
    unknown = tablet.submission(visit(), version=99)
    [result] = tablet.push([unknown]).get_json()["results"]
    assert result["status"] == "rejected"
    assert result["errors"][0]["code"] == "unknown_form_version"
    with rt.db.unit_of_work(write=False) as session:
        income = session.scalar(select(Household.annual_income).where(Household.id == HOUSEHOLD_A))
    assert float(income or 0) == 23456
