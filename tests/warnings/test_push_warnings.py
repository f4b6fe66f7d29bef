"""Warnings raised inside the push: every register rule driven by a real visit pushed from a
tablet, the evidence naming the submission, a later visit that fixes the household marking the
warning as no longer holding (never deleting it), and the lifecycle after a dismissal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import event, update

from server.households.models import Household
from server.warnings import evaluation
from server.warnings.evaluation import Trigger, evaluate_households
from server.warnings.models import RiskWarning, WarningStatus
from server.warnings.rules import Source
from tests.sync.helpers import HOUSEHOLD_A, HOUSEHOLD_B, MEMBERS_A
from tests.warnings.world import (
    CHILD,
    CHILD_IS_SCHOOL_AGE,
    current,
    events_of,
    good_visit,
    members,
    push,
    warnings_of,
    world_fixture,  # noqa: F401 - the `world` fixture
)


def test_a_good_visit_raises_nothing(rt, world):
    push(world["tablet"], good_visit())
    assert current(rt, HOUSEHOLD_A) == {}


def test_income_below_the_line_is_raised_in_the_push_with_the_submission_as_evidence(rt, world):
    instance = push(world["tablet"], good_visit(annual_income=15000))  # 5,000 a person
    warning = current(rt, HOUSEHOLD_A)[("income_below_line", "")]
    assert warning.holds and warning.status is WarningStatus.OPEN and warning.source == "submission"
    assert warning.evidence["source"] == {"kind": "submission", "submission_id": instance}
    assert warning.evidence["values"]["per_capita_income"] == "5000"
    assert warning.evidence["values"]["monitoring_line"] == "6000"
    assert warning.village_code == "990102001001"
    assert events_of(rt, warning.id) == ["raised"]


def test_income_within_the_margin_above_the_line(rt, world):
    push(world["tablet"], good_visit(annual_income=19800))  # 6,600 a person: within 20 %
    assert set(current(rt, HOUSEHOLD_A)) == {("income_near_line", "")}


def test_a_later_visit_that_fixes_the_household_marks_the_warning_no_longer_holding(rt, world):
    push(world["tablet"], good_visit(annual_income=15000, water_status="insufficient"))
    first = current(rt, HOUSEHOLD_A)
    assert {("income_below_line", ""), ("unsafe_water", "")} <= set(first)
    fixing = push(world["tablet"], good_visit())
    after = current(rt, HOUSEHOLD_A)
    for key in (("income_below_line", ""), ("unsafe_water", "")):
        warning = after[key]
        assert warning.id == first[key].id  # the same warning, kept
        assert not warning.holds and warning.cleared_at is not None
        assert events_of(rt, warning.id) == ["raised", "no_longer_holds"]
    (event_source,) = [
        e for e in _event_sources(rt, after[("unsafe_water", "")].id) if e.get("submission_id")
    ][-1:]
    assert event_source["submission_id"] == fixing


def _event_sources(rt, warning_id):
    from sqlalchemy import select

    from server.warnings.models import RiskWarningEvent

    with rt.db.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(RiskWarningEvent.source)
                .where(RiskWarningEvent.warning_id == warning_id)
                .order_by(RiskWarningEvent.at)
            )
        )


def test_a_sharp_income_drop_and_an_expenditure_spike_against_previous_visits(rt, world):
    push(world["tablet"], good_visit(annual_income=60000, medical_expenditure=2000))
    assert current(rt, HOUSEHOLD_A) == {}
    push(world["tablet"], good_visit(annual_income=36000, medical_expenditure=4000))
    found = current(rt, HOUSEHOLD_A)
    drop = found[("income_drop", "")]
    assert drop.evidence["values"]["previous_per_capita_income"] == "20000"
    assert drop.evidence["values"]["per_capita_income"] == "12000"
    spike = found[("expenditure_spike", "")]
    assert spike.evidence["values"]["previous_rigid_expenditure"] == "2500"
    # The same values pushed again: the drop still holds (the previous *different* value).
    push(world["tablet"], good_visit(annual_income=36000, medical_expenditure=4000))
    assert current(rt, HOUSEHOLD_A)[("income_drop", "")].holds
    # Income back up: no fall against the previous value any more.
    push(world["tablet"], good_visit(annual_income=60000, medical_expenditure=1000))
    assert not current(rt, HOUSEHOLD_A)[("income_drop", "")].holds
    assert not current(rt, HOUSEHOLD_A)[("expenditure_spike", "")].holds


def test_member_rules_name_the_member(rt, world):
    uninsured = members(m1={"insured": False})
    if CHILD_IS_SCHOOL_AGE:
        uninsured[2].update(school_status="dropped_out", dropout_reason="外出打工")
    push(world["tablet"], good_visit(members=uninsured))
    found = current(rt, HOUSEHOLD_A)
    assert found[("member_uninsured", str(MEMBERS_A[1]))].member_id == MEMBERS_A[1]
    if CHILD_IS_SCHOOL_AGE:
        child = found[("child_out_of_school", CHILD)]
        assert child.evidence["values"]["in_school"] is False


def test_unsafe_house_and_serious_illness_with_large_costs(rt, world):
    ill = members(m0={"health": "serious"})
    push(
        world["tablet"], good_visit(house_safety="grade_d", medical_expenditure=15000, members=ill)
    )
    found = current(rt, HOUSEHOLD_A)
    assert ("unsafe_house", "") in found
    costs = found[("illness_with_large_medical_costs", str(MEMBERS_A[0]))]
    assert costs.evidence["values"]["medical_costs"] == "15500"


def test_relocated_household_without_stable_work(rt, world):
    with rt.db.unit_of_work() as session:
        session.execute(update(Household).where(Household.id == HOUSEHOLD_A).values(relocated=True))
        from server.households.models import Member

        session.execute(
            update(Member).where(Member.id == MEMBERS_A[0]).values(labor_capacity="ordinary")
        )
    jobless = members(m0={"employment": "unemployed"}, m1={"employment": "unemployed"})
    push(world["tablet"], good_visit(members=jobless))
    assert ("relocated_without_stable_work", "") in current(rt, HOUSEHOLD_A)


def test_a_rule_firing_again_after_a_dismissal_opens_a_new_lifecycle_only_after_it_stopped(
    rt, world
):
    push(world["tablet"], good_visit(water_status="insufficient"))
    (first,) = warnings_of(rt, HOUSEHOLD_A, "unsafe_water")
    with rt.db.unit_of_work() as session:
        session.execute(
            update(RiskWarning)
            .where(RiskWarning.id == first.id)
            .values(status=WarningStatus.DISMISSED, status_reason="已改水")
        )
    # Still holding: the dismissal stands, no new warning.
    push(world["tablet"], good_visit(water_status="insufficient"))
    assert [w.id for w in warnings_of(rt, HOUSEHOLD_A, "unsafe_water")] == [first.id]
    push(world["tablet"], good_visit())  # fixed
    push(world["tablet"], good_visit(water_status="poor_quality"))  # fires again
    old, new = warnings_of(rt, HOUSEHOLD_A, "unsafe_water")
    assert (old.id, old.lifecycle, old.is_current, old.status) == (
        first.id,
        1,
        False,
        WarningStatus.DISMISSED,
    )
    assert (new.lifecycle, new.is_current, new.holds, new.status) == (
        2,
        True,
        True,
        WarningStatus.OPEN,
    )


def test_an_open_warning_holds_again_as_the_same_warning(rt, world):
    push(world["tablet"], good_visit(water_status="insufficient"))
    push(world["tablet"], good_visit())
    push(world["tablet"], good_visit(water_status="insufficient"))
    (warning,) = warnings_of(rt, HOUSEHOLD_A, "unsafe_water")
    assert warning.holds and warning.cleared_at is None
    assert events_of(rt, warning.id) == ["raised", "no_longer_holds", "holds_again"]


def test_evaluation_takes_a_fixed_number_of_statements_whatever_the_number_of_households(
    rt, village_households
):
    from server.households.loading import NewHousehold, load_households
    from tests.conftest import LOAD_CLOCK, VILLAGE_A1

    def statements_for(count: int) -> int:
        ids = [uuid.uuid4() for _ in range(count)]
        with rt.db.unit_of_work() as session:
            load_households(
                session,
                rt.codec,
                [
                    NewHousehold(
                        hid,
                        {"village_code": VILLAGE_A1, "per_capita_income": 3000, "water_ok": False},
                        [(uuid.uuid4(), {"name": "甲", "insured": False})],
                    )
                    for hid in ids
                ],
                clock=LOAD_CLOCK,
            )
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(rt.db.engine, "before_cursor_execute", listener)
        try:
            with rt.db.unit_of_work() as session:
                outcome = evaluate_households(
                    session,
                    ids,
                    now=datetime.now(UTC),
                    trigger=Trigger(Source.REEVALUATION),
                    with_history=True,
                )
        finally:
            event.remove(rt.db.engine, "before_cursor_execute", listener)
        assert outcome.raised == 3 * count
        return len(statements)

    one = statements_for(1)
    assert statements_for(40) == one
    assert one <= 12


def test_households_of_other_batches_are_left_alone(rt, world):
    push(world["tablet"], good_visit(water_status="insufficient"))
    assert current(rt, HOUSEHOLD_B) == {}
    assert evaluation  # the module the push calls
