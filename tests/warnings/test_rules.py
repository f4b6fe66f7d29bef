"""Each risk rule on plain snapshots: when it fires, when it does not, and what its finding says."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from server.warnings import rules
from server.warnings.rules import (
    FactSnapshot,
    History,
    HouseholdSnapshot,
    MemberSnapshot,
    RuleConfig,
    evaluate,
)

TODAY = date(2026, 12, 5)
CONFIG = RuleConfig(year=2026, province_code="990000000000")


def household(**values) -> HouseholdSnapshot:
    return HouseholdSnapshot(id="h1", village_code="990102001001", today=TODAY, **values)


def fact(code: str, value, member_id: str | None = None, **more) -> FactSnapshot:
    from server.departments.facts import BY_CODE

    return FactSnapshot(
        BY_CODE[code].department.value, code, member_id, value, "imp-1", 7, more.get("as_of")
    )


def fired(rule: str, snapshot: HouseholdSnapshot, config: RuleConfig = CONFIG) -> list:
    return [f for f in evaluate(snapshot, config).findings if f.rule == rule]


def test_every_rule_is_documented_with_a_label_and_inputs():
    assert len({r.code for r in rules.RULES}) == len(rules.RULES)
    for rule in rules.RULES:
        assert rule.zh and rule.en and rule.inputs and rule.risk_causes


@pytest.mark.parametrize(
    ("income", "below", "near"),
    [("5999.99", 1, 0), ("6000", 0, 1), ("7199.99", 0, 1), ("7200", 0, 0), (None, 0, 0)],
)
def test_income_below_the_line_or_within_the_margin_above_it(income, below, near):
    snapshot = household(per_capita_income=None if income is None else Decimal(income))
    assert len(fired("income_below_line", snapshot)) == below
    assert len(fired("income_near_line", snapshot)) == near


def test_the_line_and_margin_come_from_the_configuration():
    snapshot = household(per_capita_income=Decimal(6500))
    assert fired("income_below_line", snapshot, replace(CONFIG, monitoring_line=Decimal(7000)))
    (finding,) = fired("income_near_line", snapshot)
    assert finding.values["monitoring_line"] == "6000" and finding.values["year"] == 2026
    assert not fired("income_near_line", snapshot, replace(CONFIG, near_line_margin=Decimal(0)))


def test_income_drop_needs_previous_values_and_a_fall_past_the_threshold():
    drop = household(
        per_capita_income=Decimal(7000), history=History(previous_per_capita_income=Decimal(10000))
    )
    (finding,) = fired("income_drop", drop)
    assert finding.values["fall"] == "0.300"
    assert not fired("income_drop", replace(drop, per_capita_income=Decimal(7001)))
    # Without history loaded the rule does not run at all (its warnings are left alone).
    result = evaluate(replace(drop, history=None), CONFIG)
    assert "income_drop" not in result.rules_run


def test_expenditure_spike_against_the_previous_value():
    spike = household(
        rigid_expenditure=Decimal(15000), history=History(previous_rigid_expenditure=Decimal(10000))
    )
    assert fired("expenditure_spike", spike)
    assert not fired("expenditure_spike", replace(spike, rigid_expenditure=Decimal(14999)))
    assert not fired("expenditure_spike", replace(spike, history=History()))


def test_a_child_of_school_age_out_of_school_is_flagged_per_child():
    members = (
        MemberSnapshot("c1", birth_date=date(2015, 1, 1), in_school=False),  # 11
        MemberSnapshot("c2", birth_date=date(2008, 1, 1), in_school=False),  # 18: past the age
        MemberSnapshot("c3", birth_date=date(2016, 1, 1), in_school=True),
        MemberSnapshot("c4", birth_date=date(2014, 1, 1), in_school=None),  # unknown: no finding
    )
    (finding,) = fired("child_out_of_school", household(members=members))
    assert finding.member_id == "c1" and finding.values["age"] == 11
    wider = replace(CONFIG, school_age_max=18)
    assert {
        f.member_id for f in fired("child_out_of_school", household(members=members), wider)
    } == {
        "c1",
        "c2",
    }


def test_uninsured_member_unsafe_house_unsafe_water():
    snapshot = household(
        housing_ok=False,
        water_ok=False,
        members=(MemberSnapshot("m1", insured=False), MemberSnapshot("m2", insured=True)),
    )
    assert [f.member_id for f in fired("member_uninsured", snapshot)] == ["m1"]
    assert fired("unsafe_house", snapshot) and fired("unsafe_water", snapshot)
    ok = household(housing_ok=True, water_ok=None)
    assert not fired("unsafe_house", ok) and not fired("unsafe_water", ok)


def test_relocated_household_with_labour_and_no_stable_work():
    members = (
        MemberSnapshot("m1", labor_capacity="ordinary", employment="unemployed"),
        MemberSnapshot("m2", labor_capacity="weak", employment="farming"),
    )
    assert fired("relocated_without_stable_work", household(relocated=True, members=members))
    assert not fired("relocated_without_stable_work", household(relocated=False, members=members))
    working = (*members[:1], MemberSnapshot("m3", labor_capacity="none", employment="in_county"))
    assert not fired("relocated_without_stable_work", household(relocated=True, members=working))


def test_serious_illness_with_large_medical_costs_prefers_the_insurers_figure():
    ill = (MemberSnapshot("m1", health="serious"), MemberSnapshot("m2", health="healthy"))
    (finding,) = fired(
        "illness_with_large_medical_costs",
        household(rigid_expenditure=Decimal(12000), members=ill),
    )
    assert finding.member_id == "m1"
    assert finding.values["costs_from"] == "household.rigid_expenditure"
    cheap = household(
        rigid_expenditure=Decimal(12000),
        members=ill,
        facts=(fact("medical_costs", "800", "m1"),),
    )
    assert not fired("illness_with_large_medical_costs", cheap)
    disabled = household(
        members=(MemberSnapshot("m3", disability="grade_2"),),
        facts=(fact("medical_costs", "20000.5", "m3"),),
    )
    (finding,) = fired("illness_with_large_medical_costs", disabled)
    assert finding.fact is not None and finding.values["medical_costs"] == "20000.5"


def test_department_says_uninsured_where_the_register_says_insured():
    snapshot = household(
        members=(MemberSnapshot("m1", insured=True), MemberSnapshot("m2", insured=True)),
        facts=(fact("insured", False, "m1"), fact("insured", True, "m2")),
    )
    (finding,) = fired("department_uninsured", snapshot)
    assert finding.member_id == "m1" and finding.fact.import_id == "imp-1"
    assert finding.fact.evidence()["row"] == 7


def test_department_dropout_and_not_enrolled():
    members = (MemberSnapshot("m1", in_school=True), MemberSnapshot("m2", in_school=True))
    snapshot = household(
        members=members, facts=(fact("dropped_out", True, "m1"), fact("enrolled", False, "m2"))
    )
    assert {f.member_id for f in fired("department_dropout", snapshot)} == {"m1", "m2"}
    enrolled = household(members=members, facts=(fact("enrolled", True, "m2"),))
    assert not fired("department_dropout", enrolled)


def test_department_dilapidated_house_only_when_the_register_does_not_say_so():
    assert fired(
        "department_dilapidated_house",
        household(housing_ok=True, facts=(fact("dilapidated_house", True),)),
    )
    assert not fired(
        "department_dilapidated_house",
        household(housing_ok=False, facts=(fact("dilapidated_house", True),)),
    )


def test_minimum_allowance_mismatch_waits_for_the_gradual_exit_period():
    listed = household(receives_minimum_allowance=None, facts=(fact("minimum_allowance", True),))
    assert fired("department_allowance_mismatch", listed)
    recent = household(
        receives_minimum_allowance=True,
        facts=(fact("minimum_allowance", False, as_of=date(2026, 8, 1)),),
    )
    assert not fired("department_allowance_mismatch", recent)  # exit period ends 2027-02-01
    old = replace(recent, facts=(fact("minimum_allowance", False, as_of=date(2026, 5, 31)),))
    (finding,) = fired("department_allowance_mismatch", old)
    assert finding.values["gradual_exit_ended"] == "2026-11-30"
    shorter = replace(CONFIG, gradual_exit_months=3)
    assert fired("department_allowance_mismatch", recent, shorter)


def test_disability_and_employment_mismatches():
    members = (
        MemberSnapshot("m1", disability="none", employment="in_county"),
        MemberSnapshot("m2", disability="grade_2", employment="unemployed"),
    )
    snapshot = household(
        members=members,
        facts=(
            fact("disability", "grade_3", "m1"),
            fact("disability", "grade_2", "m2"),
            fact("employed", False, "m1"),
            fact("employed", True, "m2"),
        ),
    )
    assert [f.member_id for f in fired("department_disability_mismatch", snapshot)] == ["m1"]
    assert {f.member_id for f in fired("department_employment_mismatch", snapshot)} == {"m1", "m2"}


def test_facts_about_members_not_in_the_household_are_ignored():
    snapshot = household(
        facts=(fact("insured", False, "ghost"), fact("disability", "grade_1", "x"))
    )
    assert evaluate(snapshot, CONFIG).findings == []


def test_the_docs_list_every_rule_and_every_setting():
    from server.config import PROJECT_ROOT
    from server.warnings.config import SPECS

    text = (PROJECT_ROOT / "docs" / "warnings.md").read_text(encoding="utf-8")
    for rule in rules.RULES:
        assert f"| `{rule.code}` | {rule.zh} |" in text, rule.code
        for setting in rule.settings:
            assert f"`{setting}`" in text
    for spec in SPECS:
        assert f"| `{spec.name}` | {spec.zh} | {spec.default} |" in text, spec.name
