"""Exactly once under failure, with a real server process killed by SIGKILL: before the commit
nothing is applied and the retry applies the batch once; after the commit the retry only answers
`duplicate`; killed at a random moment, a batch is all there or not at all, and the retry leaves
the same register, change log, conflicts and submissions as pushing it once on a fresh database.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from server import failpoints
from server.app import create_app
from server.runtime import Runtime
from server.submissions.models import Submission
from server.users.models import Role
from sync_protocol.clock import HybridClock
from tests.conftest import PASSWORD, VILLAGE_A1, cheap_settings
from tests.patience import PATIENCE
from tests.sync.harness import (
    ServerProcess,
    build_register,
    register_snapshot,
    running_servers,
    sibling_postgres_database,
)
from tests.sync.helpers import SAMPLE, load_register, visit

pytestmark = pytest.mark.slow

KILLED = -9  # the exit status of a process ended by SIGKILL
ATTEMPTS = 3  # kills at random moments before the batch is let through


@pytest.fixture
def collector(rt: Runtime, create_user_: Any) -> str:
    load_register(rt)
    return str(create_user_("collector", Role.COLLECTOR, [VILLAGE_A1]))


def _login(server: ServerProcess, device_id: str) -> str:
    response = requests.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": "collector", "password": PASSWORD, "device_id": device_id},
        timeout=PATIENCE,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _push(server: ServerProcess, token: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/sync/push",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=PATIENCE,
    )


def _batch(device_id: str, count: int, rng: random.Random) -> dict[str, Any]:
    """`count` visits of household A from one device, clocks increasing, incomes and member answers
    varied so each visit writes something of its own."""
    clock = HybridClock(device_id)
    submissions = []
    for seq in range(1, count + 1):
        members = [dict(m) for m in SAMPLE["members"]]  # type: ignore[attr-defined]
        members[0]["insured"] = rng.random() < 0.5
        data = visit(annual_income=300 * rng.randrange(1, 400), members=members)
        submissions.append(
            {
                "instance_id": str(uuid.uuid4()),
                "form_id": "household_visit",
                "form_version": 1,
                "collected_at": "2026-11-20T08:15:00+08:00",
                "hlc": str(clock.now()),
                "device_seq": seq,
                "base_revs": {},
                "data": data,
            }
        )
    return {
        "device_id": device_id,
        "batch_id": str(uuid.uuid4()),
        "clock": str(clock.now()),
        "submissions": submissions,
    }


def _statuses(response: requests.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {result["status"] for result in response.json()["results"]}


def _tablet_changes(snapshot: dict[str, Any]) -> int:
    # Keys are register_snapshot's: (type, id, fields, clock, rev, submission, village).
    return sum(n for key, n in snapshot["changes"].items() if key[5] != "None")


def _assert_each_change_written_once(snapshot: dict[str, Any]) -> None:
    # One row per (entity, revision, village): a batch applied twice would repeat them.
    slots = [(key[0], key[1], key[4], key[6]) for key in snapshot["changes"].elements()]
    assert len(slots) == len(set(slots))


def _doomed_and_successor(db_url: str, tmp_path: Path, failpoint: str) -> list[ServerProcess]:
    """A server that dies at `failpoint` and the one that takes over after it, on one database
    (started side by side: a restart is a new process, whenever it was launched)."""
    return [
        ServerProcess(db_url, tmp_path / "doomed", (failpoint,)),
        ServerProcess(db_url, tmp_path / "successor"),
    ]


def test_a_push_killed_before_its_commit_leaves_nothing_and_its_retry_applies_once(
    rt, collector, db_url, tmp_path
):
    device_id = str(uuid.uuid4())
    body = _batch(device_id, 50, random.Random(1))
    servers = _doomed_and_successor(db_url, tmp_path, failpoints.PUSH_BEFORE_COMMIT)
    with running_servers(*servers) as [doomed, successor]:
        token = _login(doomed, device_id)
        before = register_snapshot(rt)
        with pytest.raises(requests.ConnectionError):
            _push(doomed, token, body)
        assert doomed.wait_for_death() == KILLED

        assert register_snapshot(rt) == before  # nothing of the batch, not even submissions
        assert _statuses(_push(successor, token, body)) == {"accepted"}
    after = register_snapshot(rt)
    assert set(after["submissions"]) == {s["instance_id"] for s in body["submissions"]}
    assert _tablet_changes(after) > _tablet_changes(before) == 0
    _assert_each_change_written_once(after)


def test_a_push_killed_after_its_commit_is_kept_and_its_retry_only_says_duplicate(
    rt, collector, db_url, tmp_path
):
    device_id = str(uuid.uuid4())
    body = _batch(device_id, 50, random.Random(2))
    servers = _doomed_and_successor(db_url, tmp_path, failpoints.PUSH_AFTER_COMMIT)
    with running_servers(*servers) as [doomed, successor]:
        token = _login(doomed, device_id)
        with pytest.raises(requests.ConnectionError):  # the response is lost ...
            _push(doomed, token, body)
        assert doomed.wait_for_death() == KILLED

        committed = register_snapshot(rt)  # ... but the batch is there, whole
        assert set(committed["submissions"]) == {s["instance_id"] for s in body["submissions"]}
        assert {s["status"] for s in committed["submissions"].values()} == {"accepted"}
        retry = _push(successor, token, body)
    assert _statuses(retry) == {"duplicate"}
    stored = committed["submissions"]
    for submission, result in zip(body["submissions"], retry.json()["results"], strict=True):
        assert result["revs"] == stored[submission["instance_id"]]["result"]["revs"]
    assert register_snapshot(rt) == committed  # not one change row more
    _assert_each_change_written_once(committed)


@pytest.fixture
def fresh_database(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second empty, migrated database of the same kind as `db_url`, for a reference run."""
    if db_url.startswith("sqlite"):
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "reference.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
    else:
        with sibling_postgres_database(db_url) as url:
            yield url


@pytest.fixture
def reference_app(fresh_database: str, tmp_path: Path) -> Iterator[Flask]:
    """The app of the reference run, with the same register and collector as `collector`'s."""
    app = create_app(cheap_settings(fresh_database, tmp_path / "reference"))
    build_register(app.extensions["fieldsync"], {"collector": [VILLAGE_A1]})
    yield app
    app.extensions["fieldsync"].db.dispose()


def _reference_snapshot(
    app: Flask, device_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """The state after pushing `body` once, undisturbed, and how long that push took."""
    client = app.test_client()
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "collector", "password": PASSWORD, "device_id": device_id},
    )
    token = login.get_json()["token"]
    started = time.monotonic()
    response = client.post(
        "/api/v1/sync/push", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert {r["status"] for r in response.get_json()["results"]} == {"accepted"}
    return register_snapshot(app.extensions["fieldsync"]), elapsed


def test_a_push_killed_at_random_moments_ends_as_if_pushed_once(
    rt, collector, db_url, reference_app, tmp_path
):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    device_id = str(uuid.uuid4())
    body = _batch(device_id, 500, rng)  # stamped after both registers were loaded
    expected, duration = _reference_snapshot(reference_app, device_id, body)
    pushed = {s["instance_id"] for s in body["submissions"]}

    # The server of each attempt, and the one that completes the batch after the last kill.
    servers = [ServerProcess(db_url, tmp_path / f"server-{i}") for i in range(ATTEMPTS + 1)]
    with running_servers(*servers):
        token = _login(servers[0], device_id)
        for attempt, server in enumerate(servers[:ATTEMPTS]):
            delay = rng.uniform(0.05, 1.0) * duration  # mostly mid-push, sometimes just after
            sender = threading.Thread(target=_send_ignoring_failure, args=(server, token, body))
            sender.start()
            time.sleep(delay)
            server.kill()
            sender.join(PATIENCE)
            assert not sender.is_alive(), "the push to a killed server never ended"
            stored = _stored_instances(rt)
            # A batch is one transaction: wholly there or not at all, wherever the kill landed.
            assert stored in (set(), pushed), f"attempt {attempt}, delay {delay:.3f} s, seed {seed}"
        assert _statuses(_push(servers[-1], token, body)) <= {"accepted", "duplicate"}

    final = register_snapshot(rt)
    assert final == expected, f"seed {seed}"
    _assert_each_change_written_once(final)


def _send_ignoring_failure(server: ServerProcess, token: str, body: dict[str, Any]) -> None:
    with contextlib.suppress(requests.ConnectionError):  # the server was killed mid-request
        _push(server, token, body)


def _stored_instances(rt: Runtime) -> set[str]:
    with rt.db.unit_of_work(write=False) as session:
        return {str(i) for i in session.scalars(select(Submission.instance_id))}
