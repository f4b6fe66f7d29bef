"""The set-based evaluation (`server/warnings/set_based.py`) against the rules on full snapshots
(`evaluation.evaluate_households`): on the same register — households at and around every rule's
edges, department facts of every department, settings of other years and provinces, previous
values — both paths leave the same warnings, first from nothing, then after a day of changes
(values fixed, facts withdrawn, a household deleted), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.changes.models import Change
from server.departments.models import DepartmentFact
from server.households.loading import NewHousehold, load_households
from server.households.models import Household, Member
from server.runtime import Runtime
from server.warnings import rules, set_based
from server.warnings.evaluation import Trigger, evaluate_households, ids_scope
from server.warnings.models import RiskWarning, WarningSetting
from server.warnings.rules import Source
from tests.conftest import VILLAGE_A1, VILLAGE_A2, VILLAGE_B1

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
CHOICES: dict[str, list[Any]] = {
    "health": ["healthy", "chronic", "serious", "disabled", None],
    "disability": ["none", "grade_1", "grade_2", "grade_3", None],
    "labor_capacity": ["skilled", "ordinary", "weak", "lost", "none", None],
    "employment": ["in_county", "farming", "student", "unemployed", "not_applicable", None],
}


def _flag(rng: random.Random) -> bool | None:
    return rng.choice([True, True, True, False, None])


def _household(rng: random.Random, n: int) -> NewHousehold:
    members = []
    for k in range(rng.randint(1, 5)):
        # Ages around every school-age edge (5 to 17), and adults.
        age = rng.choice([5, 6, 7, 14, 15, 16, 17, 30, 45, 70])
        birth = date(TODAY.year - age, 1, 1) + timedelta(days=rng.randint(-200, 200))
        fields: dict[str, Any] = {
            "name": f"成员{n}-{k}",
            "relation": "head" if k == 0 else "child",
            "sex": rng.choice(["male", "female"]),
            "birth_date": birth.isoformat(),
            "in_school": _flag(rng),
            "insured": _flag(rng),
        }
        for name, values in CHOICES.items():
            value = rng.choice(values)
            if value is not None:
                fields[name] = value
        members.append((uuid.uuid4(), {k: v for k, v in fields.items() if v is not None}))
    household_fields: dict[str, Any] = {
        "village_code": rng.choice([VILLAGE_A1, VILLAGE_A2, VILLAGE_B1]),
        "household_no": f"S-{n:04d}",
        "category": "monitored",
        "head_member_id": str(members[0][0]),
        # Around the default line (6000), its margin (7200) and a configured line (6500).
        "per_capita_income": rng.choice([3000, 5999, 6000, 6400, 6500, 7199, 7200, 7500, 20000]),
        "rigid_expenditure": rng.choice([0, 2000, 9999, 10000, 30000]),
        "housing_ok": _flag(rng),
        "water_ok": _flag(rng),
        "relocated": rng.choice([True, False, None]),
        "receives_minimum_allowance": _flag(rng),
        "receives_extreme_poverty_support": rng.choice([True, False]),
    }
    return NewHousehold(
        uuid.uuid4(), {k: v for k, v in household_fields.items() if v is not None}, members
    )


MEMBER_FACTS: dict[tuple[str, str], list[Any]] = {
    ("medical_insurance", "insured"): [True, False],
    ("medical_insurance", "medical_costs"): ["500.00", "9999.99", "10000", "25000.5"],
    ("education", "dropped_out"): [True, False],
    ("education", "enrolled"): [True, False],
    ("disabled_federation", "disability"): ["none", "grade_1", "grade_3"],
    ("human_resources", "employed"): [True, False],
}
HOUSEHOLD_FACTS: dict[tuple[str, str], list[Any]] = {
    ("civil_affairs", "minimum_allowance"): [True, False],
    ("civil_affairs", "extreme_poverty_support"): [True, False],
    ("housing", "dilapidated_house"): [True, False],
}


def _facts(rng: random.Random, households: list[NewHousehold]) -> list[DepartmentFact]:
    import_id = uuid.uuid4()
    facts = []
    row = 0

    def fact(
        department: str, code: str, hid: uuid.UUID, member: uuid.UUID | None, value: Any
    ) -> None:
        nonlocal row
        row += 1
        as_of = TODAY - timedelta(days=rng.choice([30, 400]))
        facts.append(
            DepartmentFact(
                department=department,
                fact=code,
                household_id=hid,
                subject_key="" if member is None else str(member),
                member_id=member,
                value=value,
                present=rng.random() > 0.1,
                as_of=as_of,
                import_id=import_id,
                source_row=row,
                updated_at=NOW - timedelta(days=2),
            )
        )

    for household in households:
        for (department, code), values in HOUSEHOLD_FACTS.items():
            if rng.random() < 0.4:
                fact(department, code, household.id, None, rng.choice(values))
        for member_id, _ in household.members:
            for (department, code), values in MEMBER_FACTS.items():
                if rng.random() < 0.4:
                    fact(department, code, household.id, member_id, rng.choice(values))
    return facts


def _register(rt: Runtime) -> list[uuid.UUID]:
    rng = random.Random(20261205)
    households = [_household(rng, n) for n in range(160)]
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, households, clock="1700000000000-0000-test")
        session.add_all(_facts(rng, households))
        # Settings of this year for the province, of an earlier year for every province.
        for year, province, name, value in (
            (TODAY.year, "990000000000", "monitoring_line", Decimal(6500)),
            (TODAY.year, "990000000000", "school_age_max", Decimal(16)),
            (TODAY.year - 1, "*", "near_line_margin", Decimal("0.3")),
            (TODAY.year, "*", "large_medical_cost", Decimal(9000)),
        ):
            session.add(WarningSetting(year=year, province_code=province, name=name, value=value))
        # Previous values for some households: an earlier change with another income and spend.
        for household in households[::7]:
            session.add(
                Change(
                    entity_type="household",
                    entity_id=household.id,
                    fields={"per_capita_income": "12000", "rigid_expenditure": "1000"},
                    clock="1600000000000-0000-test",
                    rev=0,
                    village_code=household.fields["village_code"],
                    txid=1,
                    changed_at=NOW - timedelta(days=400),
                )
            )
    return [h.id for h in households]


def _warnings(session: Session) -> dict[tuple[str, str, str, int], tuple[Any, ...]]:
    return {
        (str(w.household_id), w.rule, w.subject_key, w.lifecycle): (
            w.holds,
            w.is_current,
            w.status.value,
            w.source,
            w.evidence["values"],
            w.evidence["source"],
        )
        for w in session.scalars(select(RiskWarning))
    }


TRIGGER = Trigger(Source.REEVALUATION, {"at": "test"})


def _python(session: Session, ids: list[uuid.UUID]) -> None:
    evaluate_households(session, ids, now=NOW, trigger=TRIGGER, with_history=True)


def _set_based(session: Session, ids: list[uuid.UUID]) -> None:
    set_based.evaluate_scope(
        session,
        ids_scope(session, ids),
        now=NOW,
        trigger=TRIGGER,
        with_history=True,
        revisited_ids=set_based.revisited(session, None, None),
        fallback_ids=lambda: ids,
    )


def _both(rt: Runtime, ids: list[uuid.UUID]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The warnings each path leaves from the same state (each in a transaction rolled back)."""
    found = []
    for evaluate in (_python, _set_based):
        session = rt.db.sessionmaker()
        try:
            evaluate(session, ids)
            session.flush()
            found.append(_warnings(session))
        finally:
            session.rollback()
            session.close()
    return found[0], found[1]


def test_the_set_based_path_leaves_the_warnings_of_the_rules_on_full_snapshots(
    rt: Runtime, regions: list[str]
):
    ids = _register(rt)
    python, set_based_ = _both(rt, ids)
    assert python == set_based_
    # Every rule fires somewhere in this register, so every slice is compared.
    assert {rule for _, rule, _, _ in python} == set(rules.BY_RULE)

    # A day later: the full-snapshot path's warnings are in place; values are fixed, facts are
    # withdrawn, a household is deleted; both paths must raise, refresh and clear alike.
    with rt.db.unit_of_work() as session:
        _python(session, ids)
    with rt.db.unit_of_work() as session:
        session.execute(
            update(Household)
            .where(Household.id.in_(ids[::3]))
            .values(per_capita_income=Decimal(30000), housing_ok=True, water_ok=True)
        )
        session.execute(
            update(Member).where(Member.household_id.in_(ids[1::4])).values(insured=True)
        )
        session.execute(
            update(DepartmentFact)
            .where(DepartmentFact.household_id.in_(ids[::5]))
            .values(present=False)
        )
        session.execute(update(Household).where(Household.id == ids[2]).values(deleted=True))
    python, set_based_ = _both(rt, ids)
    assert python == set_based_
    assert any(not holds for holds, *_ in python.values())


@pytest.mark.parametrize("only", ["medical_insurance", "civil_affairs"])
def test_a_department_import_evaluates_only_its_rules_alike(
    rt: Runtime, regions: list[str], only: str
):
    ids = _register(rt)
    wanted = rules.reading_department(only)
    found = []
    for path in ("python", "set"):
        session = rt.db.sessionmaker()
        try:
            if path == "python":
                evaluate_households(session, ids, now=NOW, trigger=TRIGGER, only=wanted)
            else:
                set_based.evaluate_scope(
                    session, ids_scope(session, ids), now=NOW, trigger=TRIGGER, only=wanted
                )
            session.flush()
            found.append(_warnings(session))
        finally:
            session.rollback()
            session.close()
    assert found[0] == found[1]
    assert {rule for _, rule, _, _ in found[0]} == wanted
