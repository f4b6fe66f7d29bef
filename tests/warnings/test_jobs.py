"""The nightly re-evaluation (the scheduler's job function) and `fieldsync warnings reevaluate`."""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update

from server.auth.actor import system_actor
from server.households.models import Household, Member
from server.runtime import Runtime
from server.warnings import service
from server.warnings.config import province_of
from server.warnings.jobs import nightly_reevaluation
from tests.conftest import VILLAGE_A1
from tests.sync.helpers import HOUSEHOLD_A, HOUSEHOLD_B
from tests.warnings.world import (
    CHILD,
    current,
    good_visit,
    push,
    world_fixture,  # noqa: F401 - the `world` fixture
)


def test_the_job_function_has_the_agreed_signature():
    signature = inspect.signature(nightly_reevaluation, eval_str=True)
    assert list(signature.parameters) == ["runtime", "now"]
    assert signature.parameters["runtime"].annotation is Runtime
    assert signature.parameters["now"].annotation is datetime
    assert signature.return_annotation == dict[str, Any]


def test_nightly_re_evaluation_raises_and_clears(rt, world):
    push(world["tablet"], good_visit(water_status="insufficient"))
    assert current(rt, HOUSEHOLD_A)[("unsafe_water", "")].holds
    with rt.db.unit_of_work() as session:
        # Changed outside any trigger: only the nightly run sees it.
        session.execute(
            update(Household)
            .where(Household.id == HOUSEHOLD_A)
            .values(water_ok=True, housing_ok=False)
        )
    summary = nightly_reevaluation(rt, datetime.now(UTC))
    assert summary["households"] == 2 and summary["raised"] == 1 and summary["no_longer_hold"] == 1
    found = current(rt, HOUSEHOLD_A)
    assert not found[("unsafe_water", "")].holds
    assert found[("unsafe_house", "")].source == "reevaluation"
    again = nightly_reevaluation(rt, datetime.now(UTC))
    assert again["raised"] == 0 and again["no_longer_hold"] == 0


def test_a_deleted_household_s_warnings_no_longer_hold(rt, world):
    push(world["tablet"], good_visit(water_status="insufficient"))
    with rt.db.unit_of_work() as session:
        session.execute(update(Household).where(Household.id == HOUSEHOLD_A).values(deleted=True))
    nightly_reevaluation(rt, datetime.now(UTC))
    assert not current(rt, HOUSEHOLD_A)[("unsafe_water", "")].holds


def test_the_command_line_re_evaluation(cli, rt, world):
    push(world["tablet"], good_visit(water_status="insufficient"))
    with rt.db.unit_of_work() as session:
        session.execute(update(Household).where(Household.id == HOUSEHOLD_A).values(water_ok=True))
    result = cli("warnings", "reevaluate", "--region", "990102001001", "--chunk", "1")
    assert result.exit_code == 0, result.output
    assert "households=1" in result.output and "no_longer_hold=1" in result.output
    result = cli("warnings", "config", "--year", "2026", "--set", "monitoring_line=7000")
    assert result.exit_code == 0, result.output
    assert "monitoring_line = 7000" in result.output


def test_a_later_nightly_run_evaluates_only_the_households_changed_since(rt, world):
    push(world["tablet"], good_visit(water_status="insufficient"))
    earlier = datetime.now(UTC) - timedelta(hours=3)  # beyond the margin the next run looks back
    with rt.db.unit_of_work() as session:
        session.execute(update(Household).values(updated_at=earlier))
        session.execute(update(Member).values(updated_at=earlier))
    first = nightly_reevaluation(rt, datetime.now(UTC))
    assert (first["mode"], first["households"]) == ("full", 2)
    seen = current(rt, HOUSEHOLD_A)[("unsafe_water", "")].last_seen
    with rt.db.unit_of_work() as session:
        # Changed outside any trigger (its updated_at moves): the next run must look at it.
        session.execute(update(Household).where(Household.id == HOUSEHOLD_B).values(water_ok=False))
    later = datetime.now(UTC) + timedelta(seconds=1)
    summary = nightly_reevaluation(rt, later)
    assert (summary["mode"], summary["households"], summary["skipped"]) == ("changed", 1, 1)
    assert summary["raised"] == 1 and current(rt, HOUSEHOLD_B)[("unsafe_water", "")].holds
    # Household A was skipped: nothing it reads changed, its warning still holds, seen again.
    kept = current(rt, HOUSEHOLD_A)[("unsafe_water", "")]
    assert kept.holds and kept.last_seen > seen and summary["still_seen"] >= 1
    forced = service.reevaluate(rt.db, now=later + timedelta(seconds=1), full=True)
    assert (forced.mode, forced.households) == ("full", 2)


def _set_child(rt: Runtime, birth: date, written: datetime) -> None:
    """The child's birth date and schooling, as if written at `written` (before the last run)."""
    with rt.db.unit_of_work() as session:
        session.execute(
            update(Member)
            .where(Member.id == uuid.UUID(CHILD))
            .values(birth_date=birth, in_school=False, disability=None, updated_at=written)
        )


def test_the_nightly_run_sees_a_child_reach_school_age_on_her_birthday(rt, world):
    now = datetime.now(UTC)
    today = now.date()
    sixth = today.replace(year=today.year - 6) if (today.month, today.day) != (2, 29) else None
    if sixth is None or now.year != (now - timedelta(days=1)).year:
        return  # 29 February or New Year's Day: the run would be a full one anyway
    _set_child(rt, sixth, now - timedelta(days=3))
    yesterday = now - timedelta(days=1)
    service.reevaluate(rt.db, now=yesterday, full=True)
    assert ("child_out_of_school", CHILD) not in current(rt, HOUSEHOLD_A)  # 5 years old
    # Nothing was written since; her birthday alone brings the household into today's run.
    outcome = service.reevaluate(rt.db, now=now)
    assert outcome.mode == "changed" and outcome.households >= 1
    warning = current(rt, HOUSEHOLD_A)[("child_out_of_school", CHILD)]
    assert warning.holds and warning.evidence["values"]["age"] == 6


def test_the_nightly_run_re_judges_an_income_drop_with_the_current_configuration(rt, world):
    push(world["tablet"], good_visit(annual_income=60000))
    push(world["tablet"], good_visit(annual_income=36000))  # a 40 % fall: the threshold is 30 %
    assert current(rt, HOUSEHOLD_A)[("income_drop", "")].holds
    with rt.db.unit_of_work() as session:
        service.change_config(
            session,
            system_actor(),
            datetime.now(UTC).year,
            province_of(VILLAGE_A1),
            {"income_drop": Decimal("0.5")},
            now=datetime.now(UTC),
        )
    # The configuration change does not read previous values; the nightly run does.
    assert current(rt, HOUSEHOLD_A)[("income_drop", "")].holds
    summary = nightly_reevaluation(rt, datetime.now(UTC))
    assert summary["no_longer_hold"] >= 1
    assert not current(rt, HOUSEHOLD_A)[("income_drop", "")].holds


def test_a_full_run_shared_by_two_processes_finds_what_one_finds(rt, world):
    if rt.db.kind != "postgresql":
        return  # the processes share a full run on PostgreSQL only (SQLite: one writer)
    push(world["tablet"], good_visit(water_status="insufficient"))
    with rt.db.unit_of_work() as session:
        session.execute(update(Household).where(Household.id == HOUSEHOLD_B).values(water_ok=False))
    shared = service.reevaluate(rt.db, now=datetime.now(UTC), full=True, workers=2)
    assert (shared.households, shared.raised) == (2, 1)  # B's water; A's was raised in the push
    alone = service.reevaluate(rt.db, now=datetime.now(UTC), full=True)
    assert (alone.households, alone.raised, alone.no_longer_hold) == (2, 0, 0)
    assert current(rt, HOUSEHOLD_B)[("unsafe_water", "")].holds
