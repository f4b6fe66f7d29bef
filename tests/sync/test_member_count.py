"""A household's kept live-member count (`households.member_count`, which the monitoring summary
sums) stays equal to a count of its live member rows through pushes that add members, delete and
undelete them and move them between households — several of them in one batch, and on PostgreSQL
from several threads pushing into the same households at once."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import false, func, select

from server.households.models import Household, Member
from server.runtime import Runtime
from server.users.models import Role
from tests.conftest import VILLAGE_A1, bearer
from tests.patience import PATIENCE
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register

# A roll call of a household's members: adds (new ids), deletes and undeletes (`deleted`) and
# moves (an existing member listed under another household: its household is the parent's).
ROLL_FORM = {
    "form_id": "member_roll",
    "title": "成员名册",
    "entities": [
        {"name": "hh", "type": "household", "id_field": "household_id", "create": True},
        {
            "name": "m",
            "type": "member",
            "repeat": "members",
            "id_field": "member_id",
            "parent": "hh",
            "create": True,
        },
    ],
    "fields": [
        {"name": "household_id", "type": "text", "required": True},
        {"name": "village_code", "type": "text", "required": True, "bind": "hh.village_code"},
        {
            "name": "members",
            "type": "repeat",
            "min_count": 1,
            "fields": [
                {"name": "member_id", "type": "text", "required": True},
                {"name": "name", "type": "text", "bind": "m.name"},
                {"name": "deleted", "type": "boolean", "bind": "m.deleted"},
            ],
        },
    ],
}


def _publish_roll_form(client: FlaskClient, login: Any, create_user_: Any) -> None:
    create_user_("admin", Role.ADMIN)
    admin = bearer(login("admin"))
    assert client.post("/api/v1/forms", json=ROLL_FORM, headers=admin).status_code == 201
    assert client.post("/api/v1/forms/member_roll/publish", headers=admin).status_code == 200


def roll(household_id: uuid.UUID, members: list[tuple[uuid.UUID, bool]]) -> dict[str, Any]:
    return {
        "household_id": str(household_id),
        "village_code": VILLAGE_A1,
        "members": [
            {"member_id": str(mid), "name": f"成员{str(mid)[:4]}", "deleted": deleted}
            for mid, deleted in members
        ],
    }


def kept_and_counted(rt: Runtime) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    """Every household's kept count, and the count of its live member rows."""
    with rt.db.unit_of_work(write=False) as session:
        kept = {h: n for h, n in session.execute(select(Household.id, Household.member_count))}
        counted = {
            h: n
            for h, n in session.execute(
                select(Member.household_id, func.count())
                .where(Member.deleted == false())
                .group_by(Member.household_id)
            )
        }
    return kept, {household_id: counted.get(household_id, 0) for household_id in kept}


def _push_from_threads(
    app: Flask, workers: int, rounds: int, answers: Callable[[random.Random], dict[str, Any]]
) -> list[Any]:
    """`workers` threads, each a tablet of its own logged in as the collector, pushing `rounds`
    roll calls made by `answers` (from the thread's own seeded random) all at once; returns the
    answers of every push that was not accepted."""
    start = threading.Barrier(workers, timeout=PATIENCE)
    failures: list[Any] = []

    def work(index: int) -> None:
        rng = random.Random(index)
        own = Tablet.login(app.test_client(), "collector")
        start.wait()
        for _ in range(rounds):
            response = own.push([own.submission(answers(rng), form_id="member_roll")])
            body = response.get_json()
            if response.status_code != 200 or body["results"][0]["status"] != "accepted":
                failures.append(body)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert not any(thread.is_alive() for thread in threads)
    return failures


@pytest.fixture
def tablet(client: FlaskClient, rt: Runtime, create_user_: Any, login: Any) -> Tablet:
    load_register(rt)
    _publish_roll_form(client, login, create_user_)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def test_loaded_households_start_with_their_members_counted(tablet, rt):
    kept, counted = kept_and_counted(rt)
    assert kept == counted and kept[HOUSEHOLD_A] == 3


def test_adds_deletes_undeletes_and_moves_in_batches_keep_the_count(tablet, rt):
    rng = random.Random(20261205)
    households = [HOUSEHOLD_A, *(uuid.uuid4() for _ in range(3))]
    members: list[uuid.UUID] = []
    household_of: dict[uuid.UUID, uuid.UUID] = {}
    moves = deletions = 0
    for _ in range(25):
        batch = []
        for _ in range(rng.randint(1, 4)):  # several writes into the same households per batch
            household = rng.choice(households)
            listed: dict[uuid.UUID, bool] = {}
            for _ in range(rng.randint(1, 4)):
                if members and rng.random() < 0.7:  # an existing one: kept, deleted or moved here
                    chosen = rng.choice(members)
                    listed[chosen] = rng.random() < 0.4
                    moves += household_of[chosen] != household
                else:
                    chosen = uuid.uuid4()
                    members.append(chosen)
                    listed[chosen] = rng.random() < 0.15  # now and then created deleted
                household_of[chosen] = household
                deletions += listed[chosen]
            batch.append(
                tablet.submission(roll(household, list(listed.items())), form_id="member_roll")
            )
        results = tablet.push(batch).get_json()["results"]
        assert {r["status"] for r in results} == {"accepted"}, results
        kept, counted = kept_and_counted(rt)
        assert kept == counted
    # The workload did what it says: members were deleted and moved, not only added.
    assert moves > 10 and deletions > 10
    assert len(kept) == 2 + len(households) - 1 and sum(kept.values()) > 3


@pytest.mark.postgres_only
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_pushes_into_the_same_households_keep_the_count(
    app: Flask, tablet: Tablet, rt: Runtime
):
    """Threads, each a tablet of its own, adding, deleting and undeleting members of the same
    few households at once (real commits on PostgreSQL): every push adds one member to a
    household and lists two of its members, each deleted or not at random."""
    households = [HOUSEHOLD_A, uuid.uuid4(), uuid.uuid4()]
    seed = tablet.push(
        [
            tablet.submission(
                roll(h, [(uuid.uuid4(), False), (uuid.uuid4(), False)]), form_id="member_roll"
            )
            for h in households[1:]
        ]
    ).get_json()
    assert {r["status"] for r in seed["results"]} == {"accepted"}
    with rt.db.unit_of_work(write=False) as session:
        own_members = {
            h: list(session.scalars(select(Member.id).where(Member.household_id == h)))
            for h in households
        }
    workers, rounds = 4, 8

    def answers(rng: random.Random) -> dict[str, Any]:
        household = rng.choice(households)
        listed = [(m, rng.random() < 0.5) for m in rng.sample(own_members[household], 2)]
        return roll(household, [*listed, (uuid.uuid4(), False)])

    assert _push_from_threads(app, workers, rounds, answers) == []
    kept, counted = kept_and_counted(rt)
    assert kept == counted
    with rt.db.unit_of_work(write=False) as session:
        rows = session.scalar(select(func.count()).where(Member.household_id.in_(households)))
    assert rows == sum(len(m) for m in own_members.values()) + workers * rounds


@pytest.mark.postgresql
def test_concurrent_pushes_moving_members_between_households_all_go_through(
    app: Flask, tablet: Tablet, rt: Runtime
):
    """Threads listing members of one household under another at once: two pushes can find
    members moved under them and lock each other's households in opposite orders; the database
    ends one, which is run again (`PUSH_ATTEMPTS`) — every push is accepted, none is a 500, and
    the counts stay right."""
    if rt.db.kind != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to deadlock")
    households = [HOUSEHOLD_A, uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
    seed = tablet.push(
        [
            tablet.submission(
                roll(h, [(uuid.uuid4(), False) for _ in range(3)]), form_id="member_roll"
            )
            for h in households[1:]
        ]
    ).get_json()
    assert {r["status"] for r in seed["results"]} == {"accepted"}
    with rt.db.unit_of_work(write=False) as session:
        pool = list(session.scalars(select(Member.id).where(Member.household_id.in_(households))))

    def answers(rng: random.Random) -> dict[str, Any]:
        moved = [(m, False) for m in rng.sample(pool, 3)]  # from wherever they are now
        return roll(rng.choice(households), moved)

    assert _push_from_threads(app, 4, 10, answers) == []
    kept, counted = kept_and_counted(rt)
    assert kept == counted
    assert sum(counted[h] for h in households) == len(pool)  # moved, none lost or doubled
