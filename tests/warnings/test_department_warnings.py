"""Department comparison rules driven from `department_facts` rows (written here directly: the
import pipeline is another module's) and `hooks.after_department_import`: each mismatch raises a
warning whose source is the department import and row; a fact withdrawn by a later import makes
the warning no longer hold."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update

from server.departments.facts import BY_CODE
from server.departments.models import DepartmentFact
from server.households.models import Household, Member
from server.warnings import hooks
from tests.sync.helpers import HOUSEHOLD_A, MEMBERS_A
from tests.warnings.world import (
    current,
    events_of,
    good_visit,
    push,
    world_fixture,  # noqa: F401 - the `world` fixture
)


def write_facts(rt, rows: list[tuple[str, Any, uuid.UUID | None]], **more: Any) -> uuid.UUID:
    """An import of `(fact, value, member)` rows about household A; returns the import id."""
    import_id = uuid.uuid4()
    with rt.db.unit_of_work() as session:
        for number, (code, value, member_id) in enumerate(rows, start=2):
            spec = BY_CODE[code]
            session.add(
                DepartmentFact(
                    department=spec.department.value,
                    fact=code,
                    household_id=HOUSEHOLD_A,
                    member_id=member_id,
                    subject_key="" if member_id is None else str(member_id),
                    value=value,
                    present=True,
                    as_of=more.get("as_of"),
                    import_id=import_id,
                    source_row=number,
                )
            )
        session.flush()
        hooks.after_department_import(session, import_id, {HOUSEHOLD_A}, datetime.now(UTC))
    return import_id


def test_medical_insurance_says_uninsured_where_the_register_says_insured(rt, world):
    push(world["tablet"], good_visit())
    import_id = write_facts(rt, [("insured", False, MEMBERS_A[1]), ("insured", True, MEMBERS_A[0])])
    (key,) = [k for k in current(rt, HOUSEHOLD_A) if k[0] == "department_uninsured"]
    warning = current(rt, HOUSEHOLD_A)[key]
    assert key[1] == str(MEMBERS_A[1]) and warning.source == "department"
    source = warning.evidence["source"]
    assert source["kind"] == "department" and source["department"] == "medical_insurance"
    assert source["import_id"] == str(import_id) and source["row"] == 2
    assert warning.evidence["trigger"] == {"kind": "department", "import_id": str(import_id)}


def test_a_withdrawn_fact_makes_the_warning_no_longer_hold(rt, world):
    push(world["tablet"], good_visit())
    write_facts(rt, [("dilapidated_house", True, None)])
    warning = current(rt, HOUSEHOLD_A)[("department_dilapidated_house", "")]
    assert warning.holds
    second = uuid.uuid4()
    with rt.db.unit_of_work() as session:
        session.execute(
            update(DepartmentFact)
            .where(DepartmentFact.household_id == HOUSEHOLD_A)
            .values(present=False, import_id=second)
        )
        hooks.after_department_import(session, second, [HOUSEHOLD_A], datetime.now(UTC))
    after = current(rt, HOUSEHOLD_A)[("department_dilapidated_house", "")]
    assert after.id == warning.id and not after.holds
    assert events_of(rt, warning.id) == ["raised", "no_longer_holds"]


def test_education_dropout_and_housing_and_disability_and_employment(rt, world):
    push(world["tablet"], good_visit())
    write_facts(
        rt,
        [
            ("dropped_out", True, MEMBERS_A[2]),
            ("disability", "grade_3", MEMBERS_A[0]),
            ("employed", False, MEMBERS_A[0]),  # the register says in_province
        ],
    )
    rules = {rule for rule, _ in current(rt, HOUSEHOLD_A)}
    assert {
        "department_dropout",
        "department_disability_mismatch",
        "department_employment_mismatch",
    } <= rules


def test_minimum_allowance_gradual_exit(rt, world):
    push(world["tablet"], good_visit())
    with rt.db.unit_of_work() as session:
        session.execute(
            update(Household)
            .where(Household.id == HOUSEHOLD_A)
            .values(receives_minimum_allowance=True)
        )
    recent = date.today() - timedelta(days=30)
    write_facts(rt, [("minimum_allowance", False, None)], as_of=recent)
    assert ("department_allowance_mismatch", "") not in current(rt, HOUSEHOLD_A)
    write_facts(rt, [("extreme_poverty_support", True, None)])
    assert ("department_allowance_mismatch", "") in current(rt, HOUSEHOLD_A)


def test_large_bills_from_medical_insurance(rt, world):
    push(world["tablet"], good_visit())
    with rt.db.unit_of_work() as session:
        session.execute(update(Member).where(Member.id == MEMBERS_A[1]).values(health="serious"))
    write_facts(rt, [("medical_costs", "23000.50", MEMBERS_A[1])])
    warning = current(rt, HOUSEHOLD_A)[("illness_with_large_medical_costs", str(MEMBERS_A[1]))]
    assert warning.source == "department"
    assert warning.evidence["values"]["medical_costs"] == "23000.5"
