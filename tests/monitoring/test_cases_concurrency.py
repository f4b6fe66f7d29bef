"""Two supervisors taking the same step of one case at the same moment on PostgreSQL: the case
row lock and the unique `(case_id, seq)` let exactly one through; the other gets 409 with the
case's current state, and the register is written once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from server.changes.models import Change
from server.users.models import Role
from tests.conftest import COUNTY
from tests.monitoring.cases_world import (
    COUNTY_BODY,
    household_fields,
    open_case_of,
    step,
    verify,
    village_body,
    world_fixture,  # noqa: F401 - the `world` fixture
)

pytestmark = pytest.mark.postgresql


@pytest.fixture
def db_url(request, tmp_path):
    """PostgreSQL only: this is about row locks between concurrent transactions."""
    from tests.conftest import _empty_postgres

    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


def test_two_supervisors_deciding_the_same_step_at_once_let_exactly_one_through(
    app, rt, world, create_user_, login
):
    create_user_("sup_county_2", Role.SUPERVISOR, [COUNTY])
    tokens = [world["tokens"]["sup_county"], login("sup_county_2")]
    verify(world)
    case_id = open_case_of(rt, world["household"])
    client = app.test_client()
    assert (
        step(client, tokens[0], case_id, "village_review", "approve", **village_body()).status_code
        == 201
    )
    assert step(client, tokens[0], case_id, "township_review", "approve").status_code == 201
    start = threading.Barrier(len(tokens))
    answers: list[tuple[int, dict]] = []

    def attempt(token: str, monitoring_type: str) -> None:
        own = app.test_client()
        start.wait()
        response = step(
            own,
            token,
            case_id,
            "county_review",
            "approve",
            **{**COUNTY_BODY, "monitoring_type": monitoring_type},
        )
        answers.append((response.status_code, response.get_json()))

    threads = [
        threading.Thread(target=attempt, args=(token, kind))
        for token, kind in zip(tokens, ("marginal", "sudden_difficulty"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [201, 409]
    winner = next(body for status, body in answers if status == 201)
    loser = next(body for status, body in answers if status == 409)
    assert loser["error"]["code"] == "conflict"
    assert loser["error"]["details"]["case"] == {
        "id": str(case_id),
        "stage": "closed",
        "outcome": "approved",
        "version": 4,
    }
    assert [s["seq"] for s in winner["steps"]] == [1, 2, 3, 4]
    fields = household_fields(rt, world["household"])
    assert fields["monitoring_type"] == winner["monitoring_type"]
    with rt.db.unit_of_work(write=False) as session:
        written = [
            change.fields["monitoring_type"]
            for change in session.scalars(
                select(Change).where(Change.entity_id == world["household"]).order_by(Change.seq)
            )
            if "monitoring_type" in change.fields
        ]
    assert written == [winner["monitoring_type"]]
