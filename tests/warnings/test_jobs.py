"""The nightly re-evaluation (the scheduler's job function) and `fieldsync warnings reevaluate`."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from server.households.models import Household
from server.runtime import Runtime
from server.warnings.jobs import nightly_reevaluation
from tests.sync.helpers import HOUSEHOLD_A
from tests.warnings.world import (
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
