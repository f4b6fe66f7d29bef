"""A small world for warning tests: the bundled forms, household A (3 members, village A1) and B
(village B1), a collector's tablet in A1, supervisors and an admin; helpers to push visits and
read warnings. Everything goes through the same services and endpoints users use."""

from __future__ import annotations

import copy
import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from server.runtime import Runtime
from server.users.models import Role
from server.warnings.models import RiskWarning, RiskWarningEvent
from tests.conftest import COUNTY, TOWNSHIP_B, VILLAGE_A1
from tests.sync.helpers import HOUSEHOLD_A, SAMPLE, Tablet, load_register, visit


def members(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample visit's three members with the given changes by index ("m0", "m1", "m2")."""
    out: list[dict[str, Any]] = copy.deepcopy(SAMPLE["members"])  # type: ignore[arg-type]
    for key, values in changes.items():
        out[int(key[1:])].update(values)
    return out


def good_visit(**answers: Any) -> dict[str, Any]:
    """A visit of household A where nothing is at risk (income well above the line)."""
    values: dict[str, Any] = {
        "annual_income": 60000,
        "household_size": 3,
        "medical_expenditure": 1000,
        "education_expenditure": 500,
        "water_status": "safe",
        "house_safety": "safe",
        "members": members(),
    }
    values.update(answers)
    return visit(HOUSEHOLD_A, **values)


def push(tablet: Tablet, data: dict[str, Any]) -> str:
    """Push one visit; the accepted submission's instance id."""
    submission = tablet.submission(data)
    response = tablet.push([submission])
    assert response.status_code == 200, response.get_json()
    result = response.get_json()["results"][0]
    assert result["status"] == "accepted", result
    return str(submission["instance_id"])


def warnings_of(rt: Runtime, household_id: uuid.UUID, rule: str | None = None) -> list[RiskWarning]:
    with rt.db.unit_of_work(write=False) as session:
        statement = select(RiskWarning).where(RiskWarning.household_id == household_id)
        if rule is not None:
            statement = statement.where(RiskWarning.rule == rule)
        rows = list(session.scalars(statement.order_by(RiskWarning.rule, RiskWarning.lifecycle)))
        session.expunge_all()
        return rows


def current(rt: Runtime, household_id: uuid.UUID) -> dict[tuple[str, str], RiskWarning]:
    return {(w.rule, w.subject_key): w for w in warnings_of(rt, household_id) if w.is_current}


def events_of(rt: Runtime, warning_id: uuid.UUID) -> list[str]:
    with rt.db.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(RiskWarningEvent.kind)
                .where(RiskWarningEvent.warning_id == warning_id)
                .order_by(RiskWarningEvent.at)
            )
        )


CHILD = str(SAMPLE["members"][2]["member_id"])  # type: ignore[index]
# The sample's child (born 2012-09-15) is of compulsory-school age until she turns 16.
CHILD_IS_SCHOOL_AGE = date.today() < date(2028, 9, 15)


@pytest.fixture(name="world")
def world_fixture(client, rt, create_user_, login) -> dict[str, Any]:
    load_register(rt)
    create_user_("col_a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("sup_a1", Role.SUPERVISOR, [VILLAGE_A1])
    create_user_("sup_county", Role.SUPERVISOR, [COUNTY])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    create_user_("admin", Role.ADMIN, [])
    return {
        "tablet": Tablet.login(client, "col_a1"),
        "tokens": {
            name: login(name) for name in ("col_a1", "sup_a1", "sup_county", "sup_b", "admin")
        },
    }
