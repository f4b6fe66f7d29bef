"""Concurrency on PostgreSQL, with real commits: pushes from several processes into one household
lose no update (per-household advisory locks), one batch pushed twice at once is applied once, and
a pull cursor never skips a change whose transaction commits after a later one (txid horizon).

The lost-update checks replay the accepted submissions, in the order the stored revisions say they
were applied, through the pure merge rules, and compare every revision, change row and conflict.
A negative control runs the same workload with the locks switched off and must be caught.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from sqlalchemy import func, select, text

from forms.bindings import derive_register_updates
from forms.bundled import load_bundled_form
from server import failpoints
from server.changes.models import Change
from server.config import Settings
from server.conflicts.models import Conflict
from server.households.fields import household_fields, member_fields
from server.households.models import Household, Member
from server.runtime import Runtime
from server.submissions.models import Submission
from sync_protocol.clock import Hlc, wall_clock_ms
from sync_protocol.merge import FieldState, IncomingWrite, merge_entity, values_equal
from tests.conftest import VILLAGE_A1, VILLAGE_B1, _empty_postgres
from tests.patience import PATIENCE, wait_until
from tests.sync.harness import (
    Replica,
    ServerProcess,
    build_register,
    entity_views,
    push_worker,
    running_servers,
    stored_revisions,
)
from tests.sync.helpers import (
    HOUSEHOLD_A,
    HOUSEHOLD_B,
    MEMBER_B,
    SAMPLE,
    Tablet,
    field_changes,
    visit,
)

pytestmark = pytest.mark.postgres_only

VISIT_FORM = load_bundled_form("household_visit")
HEALTH = ["healthy", "chronic", "serious", "disabled"]
WORKER_TIMEOUT = PATIENCE

EntityRef = tuple[str, str]  # (entity type, id)


@pytest.fixture
def db_url(postgres_database: str) -> str:
    """PostgreSQL only: an empty, migrated database that several processes can share."""
    _empty_postgres(postgres_database)
    return postgres_database


# -- the workload ---------------------------------------------------------------------------------


@dataclass
class Workload:
    """Per worker: a device-bound token and the push bodies it sends, one per round."""

    tokens: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    bodies: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def submissions(self) -> list[dict[str, Any]]:
        return [s for bodies in self.bodies for body in bodies for s in body["submissions"]]

    def device_of(self) -> dict[str, str]:
        return {
            s["instance_id"]: device
            for device, bodies in zip(self.devices, self.bodies, strict=True)
            for body in bodies
            for s in body["submissions"]
        }


def _members(rng: random.Random) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = copy.deepcopy(cast(list[dict[str, Any]], SAMPLE["members"]))
    members[0]["insured"] = rng.random() < 0.5
    members[1]["health"] = rng.choice(HEALTH)
    return members


def _workload(
    tablets: list[Tablet], rng: random.Random, *, rounds: int, per_batch: int
) -> Workload:
    """Visits of household A, each with its own annual income (so every write of that field is a
    distinct value) and random member answers. Clocks are jittered across devices so pushes
    arrive in no particular clock order; each device's own clock still only moves forward."""
    workload = Workload()
    base = wall_clock_ms() - 20_000  # after the register's import stamp, well within the skew
    for w, tablet in enumerate(tablets):
        last = 0
        bodies = []
        for r in range(rounds):
            submissions = []
            for i in range(per_batch):
                n = r * per_batch + i
                last = max(last + 1, base + n * 40 + rng.randrange(400))
                income = 300 * (1 + w * 1000 + n)
                data = visit(annual_income=income, members=_members(rng))
                submissions.append(tablet.submission(data, hlc=str(Hlc(last, 0, tablet.device_id))))
            bodies.append(
                {
                    "device_id": tablet.device_id,
                    "batch_id": str(uuid.uuid4()),
                    "clock": submissions[-1]["hlc"],
                    "submissions": submissions,
                }
            )
        workload.tokens.append(tablet.token)
        workload.devices.append(tablet.device_id)
        workload.bodies.append(bodies)
    return workload


def _run_worker_processes(
    db_url: str,
    tmp_path: Path,
    tokens: list[str],
    bodies: list[list[dict[str, Any]]],
    *,
    disable_household_locks: bool = False,
) -> list[list[dict[str, Any]]]:
    """One spawned process per worker, each with its own app on the shared database, pushing in
    lock step (a barrier before every round). Returns each worker's final responses."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(tokens))
    outputs = [tmp_path / f"worker-{i}-{uuid.uuid4().hex[:6]}.json" for i in range(len(tokens))]
    processes = [
        context.Process(
            target=push_worker,
            args=(
                db_url,
                str(tmp_path / f"worker-{i}"),
                token,
                worker_bodies,
                barrier,
                str(out),
                disable_household_locks,
            ),
        )
        for i, (token, worker_bodies, out) in enumerate(zip(tokens, bodies, outputs, strict=True))
    ]
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + WORKER_TIMEOUT
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(PATIENCE)
    return [json.loads(out.read_text()) for out in outputs]


def _results_by_instance(outcomes: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every per-item answer the workers got, by instance id (a batch that never got a 200 adds
    none, and the oracle then reports its submissions)."""
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for worker in outcomes:
        for outcome in worker:
            if outcome["statuses"][-1] == 200:
                for result in outcome["body"]["results"]:
                    results[result["instance_id"]].append(result)
    return results


def _every_push_answered_200(outcomes: list[list[dict[str, Any]]]) -> bool:
    return all(o["statuses"] == [200] for worker in outcomes for o in worker)


# -- the oracle -----------------------------------------------------------------------------------


@dataclass
class EntityState:
    rev: int
    fields: Mapping[str, FieldState]
    sources: dict[str, str | None]


def _stored_states(rt: Runtime) -> dict[EntityRef, EntityState]:
    def state(row: Household | Member, values: dict[str, Any]) -> EntityState:
        return EntityState(
            row.rev,
            {
                name: FieldState(values.get(name), Hlc.parse(v.clock), v.rev, v.origin)
                for name, v in row.field_versions.items()
            },
            {name: v.source for name, v in row.field_versions.items()},
        )

    with rt.db.unit_of_work(write=False) as session:
        states = {
            ("household", str(h.id)): state(h, household_fields(h))
            for h in session.scalars(select(Household))
        }
        states.update(
            {
                ("member", str(m.id)): state(m, member_fields(m))
                for m in session.scalars(select(Member))
            }
        )
    return states


def _bound_writes(submission: dict[str, Any]) -> dict[EntityRef, dict[str, Any]]:
    """The register fields a submission writes, bound exactly as the server binds them."""
    collected = datetime.fromisoformat(submission["collected_at"])
    updates = derive_register_updates(
        VISIT_FORM, submission["data"], today=collected.date(), now=collected
    )
    return {(u.type, u.id): dict(u.fields) for u in updates}


def lost_update_problems(
    rt: Runtime,
    submissions: list[dict[str, Any]],
    device_of: dict[str, str],
    results: dict[str, list[dict[str, Any]]],
    initial: dict[EntityRef, EntityState],
) -> list[str]:
    """Everything that shows a lost or doubled update after concurrent pushes (empty: none)."""
    problems: list[str] = []
    final = _stored_states(rt)
    with rt.db.unit_of_work(write=False) as session:
        stored = list(session.scalars(select(Submission.instance_id)))
        changes = session.execute(
            select(
                Change.entity_type,
                Change.entity_id,
                Change.fields,
                Change.rev,
                Change.submission_id,
            ).where(Change.submission_id.isnot(None))
        ).all()
        conflicts = session.execute(
            select(
                Conflict.entity_type,
                Conflict.entity_id,
                Conflict.field,
                Conflict.winner_submission_id,
                Conflict.loser_submission_id,
            )
        ).all()

    # Every submission stored exactly once, accepted exactly once (a retry says duplicate).
    pushed = {s["instance_id"] for s in submissions}
    if sorted(map(str, stored)) != sorted(pushed):
        problems.append(f"stored {len(stored)} submissions for {len(pushed)} pushed")
    for instance_id in pushed:
        statuses = sorted(r["status"] for r in results.get(instance_id, []))
        if statuses.count("accepted") != 1 or set(statuses) - {"accepted", "duplicate"}:
            problems.append(f"submission {instance_id} answered {statuses}")

    # Each field holds the value of its greatest-clock write.
    writes: dict[tuple[EntityRef, str], list[tuple[Hlc, Any]]] = defaultdict(list)
    for submission in submissions:
        for entity, values in _bound_writes(submission).items():
            for name, value in values.items():
                writes[(entity, name)].append((Hlc.parse(submission["hlc"]), value))
    for (entity, name), candidates in writes.items():
        clock, value = max(candidates, key=lambda candidate: candidate[0])
        held = final[entity].fields.get(name)
        if held is None or held.clock != clock or not values_equal(held.value, value):
            problems.append(f"{entity[0]}.{name} holds {held} instead of {value!r} at {clock}")

    # Each revision of an entity was produced by exactly one submission, with no gap.
    produced: dict[EntityRef, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for kind, entity_id, _, rev, submission_id in changes:
        produced[(kind, str(entity_id))][rev].add(str(submission_id))
    for entity, by_rev in produced.items():
        for rev, writers in sorted(by_rev.items()):
            if len(writers) > 1:
                problems.append(f"{entity[0]} rev {rev} written by {len(writers)} submissions")
        expected = set(range(initial[entity].rev + 1, final[entity].rev + 1))
        if set(by_rev) != expected:
            problems.append(
                f"{entity[0]} revs {sorted(by_rev)} but the row is at {final[entity].rev}"
            )

    # Replay in the applied order (by the household revision each submission made or met; one
    # that changed nothing came after the one that made that revision) through the pure merge.
    accepted = {
        instance_id: answer
        for instance_id, answers in results.items()
        for answer in answers
        if answer["status"] == "accepted"
    }
    if not pushed <= set(accepted):
        return problems  # reported above; there is no applied order to replay
    household_key = f"household/{HOUSEHOLD_A}"
    changed_by = {str(row.submission_id) for row in changes}

    def applied_order(submission: dict[str, Any]) -> tuple[int, int]:
        made = submission["instance_id"] in changed_by
        return accepted[submission["instance_id"]]["revs"][household_key], 0 if made else 1

    states = copy.deepcopy(initial)
    expected_changes: Counter[tuple[Any, ...]] = Counter()
    expected_conflicts: Counter[tuple[Any, ...]] = Counter()
    for submission in sorted(submissions, key=applied_order):
        instance_id = submission["instance_id"]
        clock = Hlc.parse(submission["hlc"])
        revs = {}
        for entity, values in _bound_writes(submission).items():
            state = states[entity]
            key = f"{entity[0]}/{entity[1]}"
            base_rev = submission["base_revs"].get(key)
            outcome = merge_entity(
                state.fields,
                {
                    name: IncomingWrite(value, clock, base_rev, device_of[instance_id])
                    for name, value in values.items()
                },
                state.rev,
            )
            for name in outcome.changed_fields:
                expected_changes[(*entity, name, outcome.rev, instance_id)] += 1
            for name, record in outcome.conflicts:
                other = state.sources.get(name)
                pair = (instance_id, other) if record.winner == "incoming" else (other, instance_id)
                expected_conflicts[(*entity, name, *pair)] += 1
            for name in outcome.changed_fields:
                state.sources[name] = instance_id
            state.rev, state.fields = outcome.rev, outcome.fields
            revs[key] = outcome.rev
        if accepted[instance_id]["revs"] != revs:
            problems.append(
                f"submission {instance_id} got revs {accepted[instance_id]['revs']}, replay {revs}"
            )
    actual_changes = Counter(
        (kind, str(eid), name, rev, str(sid))
        for kind, eid, fields, rev, sid in changes
        for name in fields
    )
    if actual_changes != expected_changes:
        missing = expected_changes - actual_changes
        extra = actual_changes - expected_changes
        problems.append(f"change log differs: missing {len(missing)}, unexpected {len(extra)}")
    actual_conflicts = Counter(
        (kind, str(eid), name, str(w) if w else None, str(lo) if lo else None)
        for kind, eid, name, w, lo in conflicts
    )
    if actual_conflicts != expected_conflicts:
        problems.append(
            f"conflicts differ: expected {sum(expected_conflicts.values())}, "
            f"stored {sum(actual_conflicts.values())}"
        )
    for entity, state in states.items():
        if final[entity].rev != state.rev:
            problems.append(f"{entity[0]} at rev {final[entity].rev}, replay says {state.rev}")
    return problems


def _prepare(rt: Runtime, app_client: Any, workers: int) -> list[Tablet]:
    build_register(rt, {"collector": [VILLAGE_A1]})
    return [Tablet.login(app_client, "collector") for _ in range(workers)]


# -- no lost update -------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_processes_pushing_into_one_household_lose_no_update(app, rt, db_url, tmp_path):
    tablets = _prepare(rt, app.test_client(), workers=3)
    initial = _stored_states(rt)
    workload = _workload(tablets, random.Random(20261125), rounds=12, per_batch=2)

    outcomes = _run_worker_processes(db_url, tmp_path, workload.tokens, workload.bodies)

    assert _every_push_answered_200(outcomes)
    results = _results_by_instance(outcomes)
    problems = lost_update_problems(
        rt, workload.submissions, workload.device_of(), results, initial
    )
    assert problems == []
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        conflicts = session.scalar(
            select(func.count()).select_from(Conflict).where(Conflict.field == "annual_income")
        )
    # Every accepted visit that changed something made one revision (the import was rev 1) ...
    assert household is not None
    made = {r["revs"][f"household/{HOUSEHOLD_A}"] for rs in results.values() for r in rs}
    assert household.rev == max(made) and household.rev > 1
    # ... and devices that never pulled write concurrently: differing incomes are conflicts.
    assert conflicts


@pytest.mark.slow
def test_real_server_processes_on_one_database_lose_no_update(app, rt, db_url, tmp_path):
    tablets = _prepare(rt, app.test_client(), workers=4)
    initial = _stored_states(rt)
    workload = _workload(tablets, random.Random(7), rounds=8, per_batch=2)
    barrier = threading.Barrier(len(tablets))
    outcomes: list[list[dict[str, Any]]] = [[] for _ in tablets]
    errors: list[BaseException] = []

    def push_rounds(base_url: str, worker: int) -> None:
        try:
            for body in workload.bodies[worker]:
                barrier.wait(timeout=PATIENCE)
                response = requests.post(
                    f"{base_url}/api/v1/sync/push",
                    json=body,
                    headers={"Authorization": f"Bearer {workload.tokens[worker]}"},
                    timeout=PATIENCE,
                )
                outcomes[worker].append(
                    {"statuses": [response.status_code], "body": response.json()}
                )
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)
            barrier.abort()

    servers = [ServerProcess(db_url, tmp_path / name) for name in ("one", "two")]
    with running_servers(*servers):
        threads = [
            threading.Thread(target=push_rounds, args=(servers[i % 2].url, i))
            for i in range(len(tablets))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WORKER_TIMEOUT)
    assert errors == [] and not any(t.is_alive() for t in threads)

    assert _every_push_answered_200(outcomes)
    results = _results_by_instance(outcomes)
    assert (
        lost_update_problems(rt, workload.submissions, workload.device_of(), results, initial) == []
    )


@pytest.mark.slow
def test_one_batch_pushed_twice_at_once_is_applied_once(app, rt, db_url, tmp_path):
    [tablet] = _prepare(rt, app.test_client(), workers=1)
    initial = _stored_states(rt)
    workload = _workload([tablet], random.Random(3), rounds=6, per_batch=3)
    bodies = workload.bodies[0]

    # Two processes send the very same batches with the same token, as a tablet retrying a push
    # whose response is late would.
    outcomes = _run_worker_processes(db_url, tmp_path, [tablet.token] * 2, [bodies, bodies])

    assert _every_push_answered_200(outcomes)
    results = _results_by_instance(outcomes)
    for instance_id, answers in results.items():
        assert sorted(r["status"] for r in answers) == ["accepted", "duplicate"], instance_id
        assert answers[0]["revs"] == answers[1]["revs"]
    assert (
        lost_update_problems(rt, workload.submissions, workload.device_of(), results, initial) == []
    )


@pytest.mark.slow
def test_the_checks_catch_a_lost_update_when_household_locks_are_off(app, rt, db_url, tmp_path):
    """Negative control: without the advisory locks, concurrent read-modify-writes of one household
    overwrite each other, and the checks above must say so. Lock-step rounds make a collision
    nearly certain; three tries keep a rare quiet run from failing the control."""
    found: list[str] = []
    for attempt in range(3):
        _empty_postgres(db_url)
        tablets = _prepare(rt, app.test_client(), workers=3)
        initial = _stored_states(rt)
        workload = _workload(tablets, random.Random(attempt), rounds=10, per_batch=1)
        outcomes = _run_worker_processes(
            db_url,
            tmp_path / f"attempt-{attempt}",
            workload.tokens,
            workload.bodies,
            disable_household_locks=True,
        )
        results = _results_by_instance(outcomes)
        found = lost_update_problems(
            rt, workload.submissions, workload.device_of(), results, initial
        )
        if found:
            break
    assert found, "three unlocked runs raced without any detectable lost update"
    assert any("written by" in p or "holds" in p or "revs" in p for p in found), found


# -- pull never skips -----------------------------------------------------------------------------


class CommitGate:
    """Holds chosen pushes open just before their commit: the `push.before_commit` failpoint turned
    from a crash into a pause. The held transaction has already taken its txid and inserted its
    change rows (lower seq), so pushes that start later commit before it."""

    def __init__(self) -> None:
        self._armed: dict[int, float | None] = {}
        self._lock = threading.Lock()
        self.reached = threading.Event()
        self.release = threading.Event()
        self.open_transactions = 0

    def arm(self, pause: float | None = None) -> None:
        """Hold this thread's next push: `pause` seconds, or (None) until `release` is set."""
        self._armed[threading.get_ident()] = pause

    def reach(self, name: str, settings: Settings) -> None:
        if name != failpoints.PUSH_BEFORE_COMMIT or threading.get_ident() not in self._armed:
            return
        pause = self._armed.pop(threading.get_ident())
        with self._lock:
            self.open_transactions += 1
        try:
            self.reached.set()
            if pause is None:
                assert self.release.wait(PATIENCE), "the held push was never released"
            else:
                time.sleep(pause)
        finally:
            with self._lock:
                self.open_transactions -= 1


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommitGate]:
    gate = CommitGate()
    monkeypatch.setattr(failpoints, "reach", gate.reach)
    yield gate
    gate.release.set()


def _pull(tablet: Tablet, replica: Replica, limit: int = 1000) -> list[dict[str, Any]]:
    """Pull to the end from the replica's cursor, applying every page; returns what was served."""
    served: list[dict[str, Any]] = []
    for _page in range(500):
        query = f"?limit={limit}" + (f"&cursor={replica.cursor}" if replica.cursor else "")
        response = tablet.client.get(f"/api/v1/sync/pull{query}", headers=tablet.headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        replica.apply(page["entities"], page["removed"])
        served += page["entities"]
        replica.cursor = page["cursor"]
        if not page["more"]:
            return served
    raise AssertionError("pull did not finish within 500 pages")


def _assert_replica_is_the_register(rt: Runtime, tablet: Tablet, replica: Replica) -> None:
    from_scratch, removed, _ = tablet.pull_all()
    assert removed == []
    assert replica.view() == entity_views(from_scratch)
    assert {k: v[0] for k, v in replica.view().items()} == stored_revisions(rt)


def _visit_b(income: int) -> dict[str, Any]:
    member = {**SAMPLE["members"][0], "member_id": str(MEMBER_B)}  # type: ignore[index]
    return visit(HOUSEHOLD_B, annual_income=income, members=[member])


def _in_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_change_committed_after_a_later_transaction_is_still_pulled(app, rt, gate):
    build_register(rt, {"collector": [VILLAGE_A1, VILLAGE_B1]})
    early_writer = Tablet.login(app.test_client(), "collector")
    late_writer = Tablet.login(app.test_client(), "collector")
    reader = Tablet.login(app.test_client(), "collector")
    replica = Replica()
    _pull(reader, replica)
    errors: list[BaseException] = []
    early_result: list[int] = []

    def push_early() -> None:
        gate.arm()  # until released
        response = early_writer.push([early_writer.submission(visit(annual_income=30000))])
        early_result.append(response.status_code)

    held = _in_thread(push_early, errors)
    assert gate.reached.wait(PATIENCE), errors
    late = late_writer.push([late_writer.submission(_visit_b(24000))])
    assert late.status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        held_xid = session.scalar(
            text(
                "SELECT backend_xid::text::bigint FROM pg_stat_activity "
                "WHERE datname = current_database() AND backend_xid IS NOT NULL "
                "AND state LIKE 'idle in transaction%'"
            )
        )
        late_txid = session.scalar(
            select(Change.txid)
            .where(Change.entity_id == HOUSEHOLD_B)
            .order_by(Change.txid.desc())
            .limit(1)
        )
    # The scenario: the held transaction has the lower txid but commits second.
    assert held_xid is not None and late_txid is not None and held_xid < late_txid

    while_held = _pull(reader, replica)
    assert all(e["id"] != str(HOUSEHOLD_A) for e in while_held)  # not committed: not visible
    gate.release.set()
    held.join(PATIENCE)
    assert errors == [] and early_result == [200]

    after = _pull(reader, replica)
    household_a = [e for e in after if e["id"] == str(HOUSEHOLD_A)]
    assert household_a and household_a[-1]["rev"] == 2
    assert household_a[-1]["fields"]["annual_income"] == 30000
    with rt.db.unit_of_work(write=False) as session:
        first_seq = {
            txid: seq
            for txid, seq in session.execute(
                text(
                    "SELECT txid, min(seq) FROM changes WHERE submission_id IS NOT NULL "
                    "GROUP BY txid"
                )
            )
        }
    # ... and its change rows took the lower sequence numbers too: a "seq > last seen" cursor
    # would have skipped them once the later transaction's rows had been served.
    assert first_seq[held_xid] < first_seq[late_txid]
    _assert_replica_is_the_register(rt, reader, replica)


@pytest.mark.slow
def test_a_reader_pulling_during_out_of_order_commits_ends_with_the_register(app, rt, gate):
    build_register(rt, {"collector": [VILLAGE_A1, VILLAGE_B1]})
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    writers = [Tablet.login(app.test_client(), "collector") for _ in range(3)]
    reader = Tablet.login(app.test_client(), "collector")
    replica = Replica()
    _pull(reader, replica)
    errors: list[BaseException] = []
    plans = [
        [
            [
                (rng.choice([HOUSEHOLD_A, HOUSEHOLD_B]), 300 * rng.randrange(1, 200))
                for _ in range(rng.randrange(1, 3))
            ]
            for _ in range(10 if index else 6)
        ]
        for index in range(len(writers))
    ]

    def writer_loop(index: int) -> Callable[[], None]:
        tablet, thread_rng = writers[index], random.Random(seed + index)

        def run() -> None:
            for batch in plans[index]:
                if index == 0:  # the slow writer: its transaction stays open a while
                    gate.arm(thread_rng.uniform(0.05, 0.25))
                submissions = [
                    tablet.submission(
                        visit(annual_income=income)
                        if household == HOUSEHOLD_A
                        else _visit_b(income)
                    )
                    for household, income in batch
                ]
                response = tablet.push(submissions)
                assert response.status_code == 200, response.get_json()
                time.sleep(thread_rng.uniform(0, 0.03))

        return run

    threads = [_in_thread(writer_loop(i), errors) for i in range(len(writers))]
    pulls_while_held = 0
    deadline = time.monotonic() + PATIENCE
    for _round in range(2000):
        if not any(t.is_alive() for t in threads) or time.monotonic() > deadline:
            break
        pulls_while_held += gate.open_transactions > 0
        _pull(reader, replica, limit=rng.choice([1, 2, 1000]))
        time.sleep(0.005)
    for thread in threads:
        thread.join(PATIENCE)
    assert errors == [] and not any(t.is_alive() for t in threads), f"seed {seed}"
    assert pulls_while_held > 0, f"no pull overlapped a held transaction (seed {seed})"

    _pull(reader, replica)
    _assert_replica_is_the_register(rt, reader, replica)


# -- known bug: the lock follows the household a visit names, not the member's own ----------------


def _wait_for_a_lock_wait(rt: Runtime) -> bool:
    def someone_waits() -> bool:
        with rt.db.unit_of_work(write=False) as session:
            waiting = session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)

    return wait_until(someone_waits, what="a push waiting for a lock")


def test_a_visit_listing_another_households_member_does_not_lose_that_households_update(
    app, rt, gate
):
    build_register(rt, {"collector": [VILLAGE_A1, VILLAGE_B1]})
    at_b = Tablet.login(app.test_client(), "collector")
    at_a = Tablet.login(app.test_client(), "collector")
    now = wall_clock_ms()
    member_b = {**SAMPLE["members"][0], "member_id": str(MEMBER_B)}  # type: ignore[index]
    # The later write: a visit of household B, saying its member is not insured.
    later = at_b.submission(
        visit(HOUSEHOLD_B, members=[{**member_b, "insured": False, "health": "serious"}]),
        hlc=str(Hlc(now, 0, at_b.device_id)),
    )
    # The earlier write: a visit of household A that lists B's member (moving it into A).
    earlier = at_a.submission(
        visit(HOUSEHOLD_A, members=[{**member_b, "insured": True, "health": "healthy"}]),
        hlc=str(Hlc(now - 1000, 0, at_a.device_id)),
    )
    errors: list[BaseException] = []
    statuses: list[int] = []

    def push_later() -> None:
        gate.arm()  # holds household B's lock and the member row until released
        statuses.append(at_b.push([later]).status_code)

    held = _in_thread(push_later, errors)
    assert gate.reached.wait(PATIENCE), errors
    racing = _in_thread(lambda: statuses.append(at_a.push([earlier]).status_code), errors)
    assert _wait_for_a_lock_wait(rt), "the second push never waited for the first"
    gate.release.set()
    held.join(PATIENCE)
    racing.join(PATIENCE)
    assert errors == [] and statuses == [200, 200]

    with rt.db.unit_of_work(write=False) as session:
        member = session.get(Member, MEMBER_B)
        revs = sorted(change.rev for change in field_changes(session, MEMBER_B, "insured"))
    assert member is not None
    # Last writer wins by clock: household B's visit is the later one on every field it wrote.
    assert member.clocks["insured"] == later["hlc"] and member.insured is False
    assert str(member.household_id) == str(HOUSEHOLD_B)
    assert len(revs) == len(set(revs)), f"member revision written twice: {revs}"
