"""What one case step asks of the database: the case is read once — with its household's lock,
its own row lock and the village's notice settings in that one statement — and the answer's
steps and referrals come with their usernames. Also that the settings read inside a statement
give what `settings.effective` gives, and that the household lock taken inside a statement is
the very lock `lock_households` takes."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, literal, select, text

from server.auth.actor import Actor
from server.auth.service import actor_for_token
from server.monitoring import settings
from server.monitoring.cases import StepRequest, take_step
from server.monitoring.terms import CaseStage, StepDecision
from server.runtime import Runtime
from server.sync.apply import household_lock, lock_households
from tests.conftest import (
    CITY,
    COUNTY,
    PROVINCE,
    TOWNSHIP_A,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
)
from tests.monitoring.cases_world import (
    open_case_of,
    verify,
    world_fixture,  # noqa: F401 - the `world` fixture
)


def _statements(rt: Runtime) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(rt.db.engine, "before_cursor_execute", record)


def _reads(statements: list[str]) -> list[set[str]]:
    """The SELECTs, each as the set of tables it reads."""
    return [
        set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", statement))
        for statement in statements
        if statement.lstrip().upper().startswith("SELECT")
    ]


def _actor(rt: Runtime, token: str) -> Actor:
    with rt.db.unit_of_work() as session:
        return actor_for_token(session, token, address=None)


def _take(rt: Runtime, actor: Actor, case_id: uuid.UUID, request: StepRequest) -> list[str]:
    seen, stop = _statements(rt)
    try:
        with rt.db.unit_of_work() as session:
            view = take_step(
                session,
                actor,
                case_id,
                request,
                now=datetime.now(UTC),
                clock=rt.clock,
                codec=rt.codec,
            )
    finally:
        stop()
    assert view.steps[-1].stage is request.stage and view.steps[-1].taken_by == actor.username
    return seen


def test_a_step_reads_the_case_once_with_its_locks_and_settings(rt, world):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    today = datetime.now(UTC).date()
    village = StepRequest(
        stage=CaseStage.VILLAGE_REVIEW,
        decision=StepDecision.APPROVE,
        deliberation_date=today - timedelta(days=10),
        notice_start=today - timedelta(days=9),
        notice_end=today - timedelta(days=3),
        comment="评议通过",
    )
    township = StepRequest(stage=CaseStage.TOWNSHIP_REVIEW, decision=StepDecision.APPROVE)
    for username, request in (("sup_village", village), ("sup_town", township)):
        statements = _take(rt, _actor(rt, world["tokens"][username]), case_id, request)
        reads = _reads(statements)
        # The case once (locks and settings inside), then the answer's steps and referrals.
        settings_read = {"monitoring_settings"} if request is village else set()
        assert reads == [
            {"monitoring_cases"} | settings_read,
            {"case_steps", "users"},
            {"referrals", "users"},
        ], statements
        if rt.db.kind == "postgresql":
            assert not any("pg_advisory_xact_lock(k)" in s for s in statements), "no own lock"
            assert "pg_advisory_xact_lock" in next(s for s in statements if "FOR UPDATE" in s)


def test_settings_read_inside_a_statement_are_the_effective_ones(rt, regions):
    names = [
        "notice_min_days",
        "notice_days",
        "followup_days.marginal",
        "exit_stable_income_months",
    ]
    placed = {
        ("notice_min_days", settings.EVERYWHERE): 4,
        ("notice_min_days", COUNTY): 6,
        ("notice_min_days", VILLAGE_A1): 8,
        ("notice_days", PROVINCE): 9,
        ("notice_days", TOWNSHIP_A): 7,
        ("followup_days.marginal", CITY): 45,
    }
    with rt.db.unit_of_work() as session:
        for (name, region), value in placed.items():
            session.execute(
                text(
                    "INSERT INTO monitoring_settings (region_code, name, value, updated_at) "
                    "VALUES (:r, :n, :v, CURRENT_TIMESTAMP)"
                ),
                {"r": region, "n": name, "v": str(value)},
            )
    with rt.db.unit_of_work(write=False) as session:
        for village in (VILLAGE_A1, VILLAGE_A2, VILLAGE_B1):
            row = session.execute(select(*settings.effective_in_query(literal(village), names)))
            found = dict(zip(names, row.one(), strict=True))
            assert {n: settings.or_default(n, found[n]) for n in names} == {
                n: settings.effective(session, village, n) for n in names
            }, village
        a1 = session.execute(select(*settings.effective_in_query(literal(VILLAGE_A1), names)))
    assert [settings.or_default(n, v) for n, v in zip(names, a1.one(), strict=True)] == [
        8,
        7,
        45,
        settings.SETTINGS["exit_stable_income_months"].default,
    ]


@pytest.mark.postgres_only
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_lock_taken_inside_a_statement_is_lock_households_lock(rt):
    def held(session: Any) -> set[tuple[int, int]]:
        rows = session.execute(
            text(
                "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
        )
        return {(int(c), int(o)) for c, o in rows}

    for household_id in [uuid.uuid4() for _ in range(20)] + [uuid.UUID(int=2**127 + 5)]:
        with rt.db.unit_of_work() as session:
            lock_households(session, {household_id})
            expected = held(session)
        with rt.db.unit_of_work() as session:
            session.execute(select(household_lock(session, literal(household_id))))
            assert held(session) == expected and len(expected) == 1
