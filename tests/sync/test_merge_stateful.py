"""Convergence as a Hypothesis state machine over the real app: tablets, each with its own skewed
clock, edit household visits from what they last pulled, push (sometimes in reverse order, or
re-sending an earlier batch), pull, and time passes.

After every step: each accepted submission is stored exactly once; each field holds the value of
its greatest-clock accepted write; each entity's revision counts the submissions that changed it;
and no accepted write is lost — its value is the current one, or a recorded conflict's loser, or it
was replaced by a later write of the same device or of a writer that had seen it (the rule of
`sync_protocol/merge.py`). At the end every tablet pushes, pulls to completion and then holds
exactly the server's register.
"""

from __future__ import annotations

import copy
import shutil
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from forms.bindings import derive_register_updates
from forms.bundled import load_bundled_form
from server.app import create_app
from server.changes.models import Change
from server.conflicts.models import Conflict
from server.households.fields import household_fields, member_fields
from server.households.models import Household, Member
from server.runtime import Runtime
from server.submissions.models import Submission
from server.users.models import Role
from sync_protocol.clock import Hlc, HybridClock, wall_clock_ms
from sync_protocol.merge import values_equal
from tests.conftest import VILLAGE_A1, VILLAGE_B1, _empty_postgres, cheap_settings
from tests.sync.harness import (
    Replica,
    build_register,
    entity_views,
    stored_revisions,
)
from tests.sync.helpers import (
    HOUSEHOLD_A,
    HOUSEHOLD_B,
    MEMBER_B,
    SAMPLE,
    Tablet,
    load_register,
    visit,
)

VISIT_FORM = load_bundled_form("household_visit")
# A few incomes, so that equal values meet as often as different ones (multiples of 3: the
# per-capita income of a household of three stays exact).
INCOMES = [12000, 15000, 18000, 19800, 24000]
HEALTH = ["healthy", "chronic", "serious", "disabled"]
TABLETS = st.integers(0, 2)
COLLECTED_AT = "2026-11-20T08:15:00+08:00"  # what `Tablet.submission` stamps

FieldKey = tuple[tuple[str, str], str]  # ((entity type, id), field name)


@dataclass
class Write:
    """One accepted write of one field, as the model saw it arrive."""

    value: Any
    clock: Hlc
    origin: str
    base_rev: int | None
    instance_id: str | None  # None: the register's imported value
    stored_rev: int | None  # the revision at which it became the field's state; None: it lost


@dataclass
class SimulatedTablet:
    tablet: Tablet
    skew_ms: int = 0
    replica: Replica = field(default_factory=Replica)
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = field(default_factory=list)


def _visit_data(household: str, income: int, insured: bool, health: str) -> dict[str, Any]:
    members: list[dict[str, Any]] = copy.deepcopy(cast(list[dict[str, Any]], SAMPLE["members"]))
    if household == "B":
        member = {**members[0], "member_id": str(MEMBER_B), "insured": insured, "health": health}
        return visit(HOUSEHOLD_B, annual_income=income, members=[member])
    members[0]["insured"] = insured
    members[1]["health"] = health
    return visit(HOUSEHOLD_A, annual_income=income, members=members)


def _bound_writes(data: dict[str, Any], collected_at: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The register fields a submission writes, bound exactly as the server binds them."""
    collected = datetime.fromisoformat(collected_at)
    updates = derive_register_updates(VISIT_FORM, data, today=collected.date(), now=collected)
    return {(u.type, u.id): dict(u.fields) for u in updates}


def _server_fields(rt: Runtime) -> dict[FieldKey, tuple[Any, Hlc]]:
    with rt.db.unit_of_work(write=False) as session:
        rows: list[tuple[str, Household | Member, dict[str, Any]]] = [
            ("household", h, household_fields(h)) for h in session.scalars(select(Household))
        ]
        rows += [("member", m, member_fields(m)) for m in session.scalars(select(Member))]
    return {
        ((kind, str(row.id)), name): (values.get(name), Hlc.parse(clock))
        for kind, row, values in rows
        for name, clock in row.clocks.items()
    }


class TabletsConverge(RuleBasedStateMachine):
    """The machine; a test subclasses it with `fresh_database` (a new empty, migrated database per
    example, given a folder of its own)."""

    fresh_database: ClassVar[Callable[[Path], str]]
    workdir_root: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        self.workdir = Path(tempfile.mkdtemp(dir=self.workdir_root))
        url = type(self).fresh_database(self.workdir)
        self.app = create_app(cheap_settings(url, self.workdir))
        self.rt: Runtime = self.app.extensions["fieldsync"]
        both = [VILLAGE_A1, VILLAGE_B1]
        build_register(self.rt, {"alice": both, "bob": both})
        # Tablets run behind the server (and the register's import stamp) until they sync.
        self.base_ms = wall_clock_ms() - 90_000
        self.elapsed_ms = 0
        self.tablets = [
            self._simulated(Tablet.login(self.app.test_client(), user))
            for user in ("alice", "alice", "bob")
        ]
        self.writes: dict[FieldKey, list[Write]] = defaultdict(list)
        for key, (value, clock) in _server_fields(self.rt).items():
            self.writes[key].append(Write(value, clock, "import", None, None, 1))
        self.revisions = stored_revisions(self.rt)
        self.accepted: set[str] = set()

    def _simulated(self, tablet: Tablet) -> SimulatedTablet:
        sim = SimulatedTablet(tablet)
        tablet.clock = HybridClock(
            tablet.device_id, physical_time_ms=lambda: self.base_ms + self.elapsed_ms + sim.skew_ms
        )
        return sim

    # -- rules ------------------------------------------------------------------------------------

    @initialize(skews=st.lists(st.integers(-60_000, 60_000), min_size=3, max_size=3))
    def set_clock_skews(self, skews: list[int]) -> None:
        for sim, skew in zip(self.tablets, skews, strict=True):
            sim.skew_ms = skew

    @rule(
        t=TABLETS,
        household=st.sampled_from(["A", "B"]),
        income=st.sampled_from(INCOMES),
        insured=st.booleans(),
        health=st.sampled_from(HEALTH),
    )
    def edit(self, t: int, household: str, income: int, insured: bool, health: str) -> None:
        sim = self.tablets[t]
        data = _visit_data(household, income, insured, health)
        seen = sim.replica.entities
        base_revs = {
            f"{kind}/{entity_id}": seen[(kind, entity_id)]["rev"]
            for kind, entity_id in _bound_writes(data, COLLECTED_AT)
            if (kind, entity_id) in seen
        }
        sim.pending.append(sim.tablet.submission(data, base_revs=base_revs))

    @rule(t=TABLETS, reverse=st.booleans())
    def push(self, t: int, reverse: bool) -> None:
        sim = self.tablets[t]
        if not sim.pending:
            return
        batch = sim.pending[::-1] if reverse else list(sim.pending)
        sim.pending.clear()
        batch_id = str(uuid.uuid4())
        results = self._push(sim, batch, batch_id)
        for submission, result in zip(batch, results, strict=True):
            assert result["status"] == "accepted", result
            self._arrived(sim, submission, result)
        sim.sent.append((batch_id, batch, results))

    @precondition(lambda self: any(sim.sent for sim in self.tablets))
    @rule(t=TABLETS, pick=st.integers(0, 1000))
    def resend_an_earlier_batch(self, t: int, pick: int) -> None:
        sent = self.tablets[t].sent
        if not sent:
            return
        batch_id, batch, first = sent[pick % len(sent)]
        changes = self._change_count()
        results = self._push(self.tablets[t], batch, batch_id)
        assert [r["status"] for r in results] == ["duplicate"] * len(batch)
        assert [r["revs"] for r in results] == [r["revs"] for r in first]
        assert self._change_count() == changes

    @rule(t=TABLETS, limit=st.sampled_from([1, 3, 1000]))
    def pull(self, t: int, limit: int) -> None:
        self._pull(self.tablets[t], limit)

    @rule(ms=st.integers(0, 5_000))
    def time_passes(self, ms: int) -> None:
        self.elapsed_ms += ms

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def each_accepted_submission_is_stored_exactly_once(self) -> None:
        with self.rt.db.unit_of_work(write=False) as session:
            stored = [str(i) for i in session.scalars(select(Submission.instance_id))]
        assert sorted(stored) == sorted(self.accepted)

    @invariant()
    def each_field_holds_its_greatest_clock_write(self) -> None:
        server = _server_fields(self.rt)
        for key, writes in self.writes.items():
            latest = max(writes, key=lambda w: w.clock)
            value, clock = server[key]
            assert clock == latest.clock and values_equal(value, latest.value), (key, latest)

    @invariant()
    def each_revision_counts_the_submissions_that_changed_the_entity(self) -> None:
        assert stored_revisions(self.rt) == self.revisions

    @invariant()
    def no_accepted_write_is_lost(self) -> None:
        server = _server_fields(self.rt)
        with self.rt.db.unit_of_work(write=False) as session:
            recorded = [
                (((c.entity_type, str(c.entity_id)), c.field), c.loser_submission_id, c.loser_value)
                for c in session.scalars(select(Conflict))
            ]
        for key, writes in self.writes.items():
            current = server[key][0]
            later_first = sorted(writes, key=lambda w: w.clock, reverse=True)
            kept: list[bool] = []
            for index, write in enumerate(later_first):
                later = later_first[:index]
                is_kept = (
                    values_equal(current, write.value)
                    or any(
                        where == key
                        and str(loser) == str(write.instance_id)
                        and values_equal(value, write.value)
                        for where, loser, value in recorded
                    )
                    or any(w.origin == write.origin for w in later)
                    or (
                        write.stored_rev is not None
                        and any(
                            w.base_rev is not None and w.base_rev >= write.stored_rev for w in later
                        )
                    )
                    # an equal value with a later clock that is itself kept keeps this one too
                    or any(
                        kept[i] and values_equal(w.value, write.value) for i, w in enumerate(later)
                    )
                )
                assert is_kept, f"lost: {key} = {write}"
                kept.append(is_kept)

    # -- the end: everyone syncs and agrees ------------------------------------------------------

    def teardown(self) -> None:
        try:
            # Only after a run that went well: a failing step is the report, not what follows it.
            if sys.exc_info()[1] is None:
                self._everyone_syncs_and_agrees()
        finally:
            self.rt.db.dispose()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _everyone_syncs_and_agrees(self) -> None:
        for t, sim in enumerate(self.tablets):
            self.push(t, reverse=False)
            assert not sim.pending
        for sim in self.tablets:
            self._pull(sim, 1000)
        for sim in self.tablets:
            from_scratch, removed, _ = sim.tablet.pull_all()
            assert removed == []
            assert sim.replica.view() == entity_views(from_scratch)
            assert {k: v[0] for k, v in sim.replica.view().items()} == self.revisions
        self.each_field_holds_its_greatest_clock_write()
        self.no_accepted_write_is_lost()

    # -- talking to the server -------------------------------------------------------------------

    def _push(
        self, sim: SimulatedTablet, batch: list[dict[str, Any]], batch_id: str
    ) -> list[dict[str, Any]]:
        response = sim.tablet.push(batch, batch_id)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        sim.tablet.clock.observe(Hlc.parse(body["clock"]))
        results: list[dict[str, Any]] = body["results"]
        return results

    def _pull(self, sim: SimulatedTablet, limit: int) -> None:
        for _page in range(500):
            query = f"?limit={limit}" + (
                f"&cursor={sim.replica.cursor}" if sim.replica.cursor else ""
            )
            response = sim.tablet.client.get(
                f"/api/v1/sync/pull{query}", headers=sim.tablet.headers
            )
            assert response.status_code == 200, response.get_json()
            page = response.get_json()
            sim.replica.apply(page["entities"], page["removed"])
            sim.replica.cursor = page["cursor"]
            sim.tablet.clock.observe(Hlc.parse(page["clock"]))
            if not page["more"]:
                return
        raise AssertionError("pull did not finish within 500 pages")

    def _arrived(
        self, sim: SimulatedTablet, submission: dict[str, Any], result: dict[str, Any]
    ) -> None:
        """Record an accepted submission's writes in arrival order, as last-writer-wins says."""
        clock = Hlc.parse(submission["hlc"])
        bound = _bound_writes(submission["data"], submission["collected_at"])
        for entity, values in bound.items():
            key = f"{entity[0]}/{entity[1]}"
            wins = {
                name: all(w.clock < clock for w in self.writes[(entity, name)]) for name in values
            }
            if any(wins.values()):
                self.revisions[entity] += 1
            assert result["revs"][key] == self.revisions[entity], (key, result)
            for name, value in values.items():
                self.writes[(entity, name)].append(
                    Write(
                        value,
                        clock,
                        sim.tablet.device_id,
                        submission["base_revs"].get(key),
                        submission["instance_id"],
                        self.revisions[entity] if wins[name] else None,
                    )
                )
        self.accepted.add(submission["instance_id"])

    def _change_count(self) -> int:
        with self.rt.db.unit_of_work(write=False) as session:
            return int(session.scalar(select(func.count()).select_from(Change)) or 0)


def _machine(name: str, fresh_database: Callable[[Path], str], root: Path) -> type:
    return type(
        name,
        (TabletsConverge,),
        {"fresh_database": staticmethod(fresh_database), "workdir_root": root},
    )


@pytest.mark.slow
def test_tablets_converge_to_the_register_on_sqlite(sqlite_template: Path, tmp_path: Path):
    def fresh_database(workdir: Path) -> str:
        shutil.copyfile(sqlite_template, workdir / "fieldsync.db")
        return f"sqlite:///{workdir / 'fieldsync.db'}"

    run_state_machine_as_test(
        _machine("SqliteTabletsConverge", fresh_database, tmp_path),
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.slow
@pytest.mark.postgres_only
def test_tablets_converge_to_the_register_on_postgresql(postgres_database: str, tmp_path: Path):
    def fresh_database(workdir: Path) -> str:
        _empty_postgres(postgres_database)
        return postgres_database

    run_state_machine_as_test(
        _machine("PostgresTabletsConverge", fresh_database, tmp_path),
        settings=settings(
            max_examples=5,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- known bugs: a visit may list a member who belongs to another household ----------------------
# Found while modelling convergence; these belong with the push and pull tests once fixed.


@pytest.fixture
def member_of_b() -> dict[str, Any]:
    """Household B's only member, as a row of a visit's member list."""
    members = cast(list[dict[str, Any]], SAMPLE["members"])
    return {**members[0], "member_id": str(MEMBER_B)}


def test_a_member_moved_out_of_a_tablets_villages_leaves_its_replica(
    client, rt, create_user_, member_of_b
):
    load_register(rt)
    create_user_("both", Role.COLLECTOR, [VILLAGE_A1, VILLAGE_B1])
    create_user_("only_b", Role.COLLECTOR, [VILLAGE_B1])
    mover, watcher = Tablet.login(client, "both"), Tablet.login(client, "only_b")
    replica = Replica()
    entities, removed, replica.cursor = watcher.pull_all()
    replica.apply(entities, removed)
    assert ("member", str(MEMBER_B)) in replica.entities

    # A visit of household A (village A1) lists B's member: it now belongs to household A.
    moved = mover.push([mover.submission(visit(HOUSEHOLD_A, members=[member_of_b]))])
    assert moved.get_json()["results"][0]["status"] == "accepted"

    entities, removed, _ = watcher.pull_all(replica.cursor)
    replica.apply(entities, removed)
    from_scratch, _, _ = watcher.pull_all()
    assert replica.view() == entity_views(from_scratch)


def test_a_collector_cannot_move_a_member_out_of_a_village_it_does_not_cover(
    client, rt, create_user_, member_of_b
):
    load_register(rt)
    create_user_("only_a", Role.COLLECTOR, [VILLAGE_A1])
    tablet = Tablet.login(client, "only_a")

    response = tablet.push([tablet.submission(visit(HOUSEHOLD_A, members=[member_of_b]))])

    [result] = response.get_json()["results"]
    with rt.db.unit_of_work(write=False) as session:
        member = session.get(Member, MEMBER_B)
        assert member is not None
        assert str(member.household_id) == str(HOUSEHOLD_B)
    assert result["status"] == "rejected"
    assert {e["code"] for e in result["errors"]} == {"forbidden"}
