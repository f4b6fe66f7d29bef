"""The early-warning (预警) risk rules: plain functions from one household's snapshot (register
values, previous values, department facts) and the configuration of its year and province to the
findings that hold for it now.

Pure: no Flask, no database, no clock — the evaluator (`server/warnings/evaluation.py`) loads the
snapshots set-based and turns findings into warnings. A rule never decides what to do with a
warning (open, reopen, mark as no longer holding); it only says what holds. To add a rule, write a
function `(HouseholdSnapshot, RuleConfig) -> Iterable[Finding]` and list it in `RULES` with its
inputs and settings (the docs table in docs/warnings.md is checked against `RULES` by a test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any

from server.departments.facts import Department

# Employment codes that count as stable work (稳定就业) for the relocated-household rule.
STABLE_WORK = frozenset(
    {"in_county", "in_province", "out_of_province", "public_welfare_job", "self_employed"}
)
# Labour capacity codes that mean someone could work.
ABLE_TO_WORK = frozenset({"skilled", "ordinary"})
# Health codes that count as a serious illness or a disability for the medical-cost rule.
SERIOUS_HEALTH = frozenset({"serious", "disabled"})


class Source(str, Enum):  # noqa: UP042 - same str() as the other enumerations
    """Where the values behind a firing came from (the warning's `source`)."""

    SUBMISSION = "submission"  # a pushed visit (its instance id in the evidence)
    DEPARTMENT = "department"  # a department import (its id and row in the evidence)
    CONFIGURATION = "configuration"  # a change of the configuration of a year and province
    REEVALUATION = "reevaluation"  # the nightly (or command-line) full re-evaluation


@dataclass(frozen=True)
class RuleConfig:
    """The configuration of one year and province (see `server/warnings/config.py`)."""

    year: int
    province_code: str
    monitoring_line: Decimal = Decimal(6000)  # 监测标准, yuan per person a year
    near_line_margin: Decimal = Decimal("0.2")  # flagged below line × (1 + margin)
    school_age_min: int = 6
    school_age_max: int = 15
    income_drop: Decimal = Decimal("0.3")  # a fall of at least this share of the previous value
    expenditure_spike: Decimal = Decimal("0.5")  # a rise of at least this share
    large_medical_cost: Decimal = Decimal(10000)  # yuan a year
    gradual_exit_months: int = 6  # 渐退期 of the minimum living allowance


@dataclass(frozen=True)
class MemberSnapshot:
    id: str
    birth_date: date | None = None
    in_school: bool | None = None
    insured: bool | None = None
    health: str | None = None
    disability: str | None = None
    labor_capacity: str | None = None
    employment: str | None = None


@dataclass(frozen=True)
class FactSnapshot:
    """One current department fact (`department_facts` row with `present`)."""

    department: str
    fact: str
    member_id: str | None  # None: a household fact
    value: Any  # bool, a decimal as a string, or a choice code
    import_id: str
    source_row: int | None
    as_of: date | None = None

    def evidence(self) -> dict[str, Any]:
        return {
            "department": self.department,
            "fact": self.fact,
            "value": self.value,
            "import_id": self.import_id,
            "row": self.source_row,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
        }


@dataclass(frozen=True)
class History:
    """The values a household had before its latest change (from the register's change log);
    None where the field never had an earlier value."""

    previous_per_capita_income: Decimal | None = None
    previous_rigid_expenditure: Decimal | None = None


@dataclass(frozen=True)
class HouseholdSnapshot:
    id: str
    village_code: str
    today: date
    per_capita_income: Decimal | None = None
    rigid_expenditure: Decimal | None = None
    housing_ok: bool | None = None
    water_ok: bool | None = None
    relocated: bool | None = None
    receives_minimum_allowance: bool | None = None
    receives_extreme_poverty_support: bool | None = None
    members: tuple[MemberSnapshot, ...] = ()
    facts: tuple[FactSnapshot, ...] = ()
    # None when the evaluation did not load the history (then the history rules are not run).
    history: History | None = None

    def member(self, member_id: str | None) -> MemberSnapshot | None:
        return next((m for m in self.members if m.id == member_id), None)

    def facts_of(self, fact: str) -> list[FactSnapshot]:
        return [f for f in self.facts if f.fact == fact]


@dataclass(frozen=True)
class Finding:
    """One rule holding for a household, or for one member of it (`member_id`)."""

    rule: str
    member_id: str | None
    values: dict[str, Any]
    # The department fact behind it (department rules), named in the evidence.
    fact: FactSnapshot | None = None

    @property
    def subject_key(self) -> str:
        return self.member_id or ""


Check = Callable[[HouseholdSnapshot, RuleConfig], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    code: str
    zh: str
    en: str
    check: Check
    inputs: tuple[str, ...]  # register fields and department facts read
    settings: tuple[str, ...] = ()  # RuleConfig fields used
    risk_causes: tuple[str, ...] = ("other",)  # RiskCause codes a referral from it claims
    department: Department | None = None  # the department behind a comparison rule
    needs_history: bool = False  # reads previous values: run only when they are loaded
    about_members: bool = False


def _money(value: Decimal | None) -> str | None:
    """A decimal as plain text without trailing zeros ("6000", "0.2"), the same however it was
    stored, so evidence compares equal across evaluations."""
    return None if value is None else format(value.normalize(), "f")


def age_on(birth: date, day: date) -> int:
    """Whole years of age on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# -- register rules ------------------------------------------------------------------------------


def income_below_line(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    if h.per_capita_income is not None and h.per_capita_income < c.monitoring_line:
        yield Finding(
            "income_below_line",
            None,
            {
                "per_capita_income": _money(h.per_capita_income),
                "monitoring_line": _money(c.monitoring_line),
                "year": c.year,
                "province": c.province_code,
            },
        )


def income_near_line(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    ceiling = c.monitoring_line * (1 + c.near_line_margin)
    income = h.per_capita_income
    if income is not None and c.monitoring_line <= income < ceiling:
        yield Finding(
            "income_near_line",
            None,
            {
                "per_capita_income": _money(income),
                "monitoring_line": _money(c.monitoring_line),
                "margin": _money(c.near_line_margin),
                "ceiling": _money(ceiling.quantize(Decimal("0.01"))),
                "year": c.year,
                "province": c.province_code,
            },
        )


def income_drop(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    previous = h.history.previous_per_capita_income if h.history else None
    income = h.per_capita_income
    if previous is None or income is None or previous <= 0:
        return
    fall = (previous - income) / previous
    if fall >= c.income_drop:
        yield Finding(
            "income_drop",
            None,
            {
                "per_capita_income": _money(income),
                "previous_per_capita_income": _money(previous),
                "fall": str(fall.quantize(Decimal("0.001"))),
                "threshold": _money(c.income_drop),
            },
        )


def expenditure_spike(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    previous = h.history.previous_rigid_expenditure if h.history else None
    spent = h.rigid_expenditure
    if previous is None or spent is None or previous <= 0:
        return
    rise = (spent - previous) / previous
    if rise >= c.expenditure_spike:
        yield Finding(
            "expenditure_spike",
            None,
            {
                "rigid_expenditure": _money(spent),
                "previous_rigid_expenditure": _money(previous),
                "rise": str(rise.quantize(Decimal("0.001"))),
                "threshold": _money(c.expenditure_spike),
            },
        )


# Children the register marks as severely disabled: the visit form's "exempt" (physically unable
# to attend, 免学) is stored as not in school, and these are the children it applies to.
EXEMPT_DISABILITY = frozenset({"grade_1", "grade_2"})


def child_out_of_school(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    for m in h.members:
        if m.birth_date is None or m.in_school is not False:
            continue
        if m.disability in EXEMPT_DISABILITY:
            continue
        age = age_on(m.birth_date, h.today)
        if c.school_age_min <= age <= c.school_age_max:
            yield Finding(
                "child_out_of_school",
                m.id,
                {
                    "age": age,
                    "in_school": False,
                    "school_age": [c.school_age_min, c.school_age_max],
                },
            )


def member_uninsured(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    for m in h.members:
        if m.insured is False:
            yield Finding("member_uninsured", m.id, {"insured": False})


def unsafe_house(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    if h.housing_ok is False:
        yield Finding("unsafe_house", None, {"housing_ok": False})


def unsafe_water(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    if h.water_ok is False:
        yield Finding("unsafe_water", None, {"water_ok": False})


def relocated_without_stable_work(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    if h.relocated is not True:
        return
    able = [m for m in h.members if m.labor_capacity in ABLE_TO_WORK]
    if able and not any(m.employment in STABLE_WORK for m in h.members):
        yield Finding(
            "relocated_without_stable_work",
            None,
            {
                "relocated": True,
                "members_able_to_work": len(able),
                "employment": sorted({m.employment or "unknown" for m in able}),
            },
        )


def illness_with_large_medical_costs(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    """A member seriously ill or disabled, and large medical costs: the member's out-of-pocket
    costs from 医保 when known, else the household's rigid expenditure."""
    costs = {f.member_id: f for f in h.facts_of("medical_costs")}
    for m in h.members:
        disabled = m.disability not in (None, "none")
        if m.health not in SERIOUS_HEALTH and not disabled:
            continue
        fact = costs.get(m.id)
        amount = _decimal(fact.value) if fact is not None else h.rigid_expenditure
        if amount is not None and amount >= c.large_medical_cost:
            yield Finding(
                "illness_with_large_medical_costs",
                m.id,
                {
                    "health": m.health,
                    "disabled": disabled,
                    "medical_costs": _money(amount),
                    "costs_from": "medical_insurance" if fact else "household.rigid_expenditure",
                    "threshold": _money(c.large_medical_cost),
                },
                fact,
            )


# -- department comparison rules (部门信息比对) --------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except ArithmeticError:
        return None


def department_uninsured(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    for f in h.facts_of("insured"):
        m = h.member(f.member_id)
        if m is not None and f.value is False and m.insured is not False:
            yield Finding(
                "department_uninsured",
                m.id,
                {"register_insured": m.insured, "department_insured": False},
                f,
            )


def department_dropout(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    enrolled = {f.member_id: f for f in h.facts_of("enrolled")}
    for f in h.facts_of("dropped_out"):
        if f.value is True and h.member(f.member_id) is not None:
            m = h.member(f.member_id)
            assert m is not None
            yield Finding(
                "department_dropout",
                m.id,
                {"register_in_school": m.in_school, "department_dropped_out": True},
                f,
            )
            enrolled.pop(f.member_id, None)
    for member_id, f in enrolled.items():
        m = h.member(member_id)
        if m is not None and f.value is False and m.in_school is True:
            yield Finding(
                "department_dropout",
                m.id,
                {"register_in_school": True, "department_enrolled": False},
                f,
            )


def department_dilapidated_house(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    for f in h.facts_of("dilapidated_house"):
        if f.value is True and h.housing_ok is not False:
            yield Finding(
                "department_dilapidated_house",
                None,
                {"register_housing_ok": h.housing_ok, "department_dilapidated": True},
                f,
            )


def _months_after(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def department_allowance_mismatch(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    """民政's minimum-allowance (低保) and extreme-poverty (特困) lists against the register. A
    household 民政 no longer lists is only flagged after the gradual-exit period (渐退期) counted
    from the list's date: until then it still receives the allowance."""
    pairs = (
        ("minimum_allowance", h.receives_minimum_allowance),
        ("extreme_poverty_support", h.receives_extreme_poverty_support),
    )
    for code, register in pairs:
        for f in h.facts_of(code):
            if f.value is True and register is not True:
                values: dict[str, Any] = {"register": register, "department": True}
            elif f.value is False and register is True:
                if code == "minimum_allowance" and f.as_of is not None:
                    ends = _months_after(f.as_of, c.gradual_exit_months)
                    if h.today < ends:
                        continue
                    values = {
                        "register": True,
                        "department": False,
                        "gradual_exit_ended": str(ends),
                    }
                else:
                    values = {"register": True, "department": False}
            else:
                continue
            yield Finding("department_allowance_mismatch", None, {"fact": code, **values}, f)


def department_disability_mismatch(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    for f in h.facts_of("disability"):
        m = h.member(f.member_id)
        if m is None:
            continue
        register = m.disability or "none"
        if str(f.value) != register:
            yield Finding(
                "department_disability_mismatch",
                m.id,
                {"register_disability": m.disability, "department_disability": f.value},
                f,
            )


def department_employment_mismatch(h: HouseholdSnapshot, c: RuleConfig) -> Iterable[Finding]:
    for f in h.facts_of("employed"):
        m = h.member(f.member_id)
        if m is None or m.employment is None:
            continue
        stable = m.employment in STABLE_WORK
        if (f.value is False and stable) or (f.value is True and m.employment == "unemployed"):
            yield Finding(
                "department_employment_mismatch",
                m.id,
                {"register_employment": m.employment, "department_employed": f.value},
                f,
            )


RULES: tuple[Rule, ...] = (
    Rule(
        "income_below_line",
        "人均纯收入低于监测标准",
        "Per-capita net income below the monitoring line",
        income_below_line,
        ("household.per_capita_income",),
        ("monitoring_line",),
        ("other",),
    ),
    Rule(
        "income_near_line",
        "人均纯收入接近监测标准",
        "Per-capita net income within the margin above the monitoring line",
        income_near_line,
        ("household.per_capita_income",),
        ("monitoring_line", "near_line_margin"),
        ("other",),
    ),
    Rule(
        "income_drop",
        "收入大幅缩减",
        "Sharp fall of per-capita income against its previous value",
        income_drop,
        ("household.per_capita_income", "its previous value (change log)"),
        ("income_drop",),
        ("other",),
        needs_history=True,
    ),
    Rule(
        "expenditure_spike",
        "刚性支出骤增",
        "Sharp rise of rigid expenditure against its previous value",
        expenditure_spike,
        ("household.rigid_expenditure", "its previous value (change log)"),
        ("expenditure_spike",),
        ("illness", "education"),
        needs_history=True,
    ),
    Rule(
        "child_out_of_school",
        "义务教育阶段适龄儿童失学辍学",
        "Child of compulsory-school age not in school",
        child_out_of_school,
        ("member.birth_date", "member.in_school"),
        ("school_age_min", "school_age_max"),
        ("education",),
        about_members=True,
    ),
    Rule(
        "member_uninsured",
        "未参加基本医疗保险",
        "Member without basic medical insurance",
        member_uninsured,
        ("member.insured",),
        (),
        ("illness",),
        about_members=True,
    ),
    Rule(
        "unsafe_house",
        "住房不安全",
        "Unsafe house",
        unsafe_house,
        ("household.housing_ok",),
        (),
        ("housing",),
    ),
    Rule(
        "unsafe_water",
        "饮水不安全",
        "Unsafe drinking water",
        unsafe_water,
        ("household.water_ok",),
        (),
        ("water",),
    ),
    Rule(
        "relocated_without_stable_work",
        "易地搬迁户无稳定就业",
        "Relocated household with labour capacity and no one in stable work",
        relocated_without_stable_work,
        ("household.relocated", "member.labor_capacity", "member.employment"),
        (),
        ("unemployment",),
    ),
    Rule(
        "illness_with_large_medical_costs",
        "大病或残疾且医疗费用负担较重",
        "Serious illness or disability with large medical costs",
        illness_with_large_medical_costs,
        (
            "member.health",
            "member.disability",
            "household.rigid_expenditure",
            "medical_insurance.medical_costs",
        ),
        ("large_medical_cost",),
        ("illness", "disability"),
        about_members=True,
    ),
    Rule(
        "department_uninsured",
        "医保比对：登记参保但医保未参保",
        "Register says insured, medical insurance says not",
        department_uninsured,
        ("member.insured", "medical_insurance.insured"),
        (),
        ("illness",),
        Department.MEDICAL_INSURANCE,
        about_members=True,
    ),
    Rule(
        "department_dropout",
        "教育比对：辍学或未在校",
        "Education says dropped out (or not enrolled while the register says in school)",
        department_dropout,
        ("member.in_school", "education.dropped_out", "education.enrolled"),
        (),
        ("education",),
        Department.EDUCATION,
        about_members=True,
    ),
    Rule(
        "department_dilapidated_house",
        "住建比对：危房",
        "Housing says the house is dilapidated, the register does not",
        department_dilapidated_house,
        ("household.housing_ok", "housing.dilapidated_house"),
        (),
        ("housing",),
        Department.HOUSING,
    ),
    Rule(
        "department_allowance_mismatch",
        "民政比对：低保/特困与登记不符",
        "Civil affairs' minimum-allowance or extreme-poverty list differs from the register",
        department_allowance_mismatch,
        (
            "household.receives_minimum_allowance",
            "household.receives_extreme_poverty_support",
            "civil_affairs.minimum_allowance",
            "civil_affairs.extreme_poverty_support",
        ),
        ("gradual_exit_months",),
        ("other",),
        Department.CIVIL_AFFAIRS,
    ),
    Rule(
        "department_disability_mismatch",
        "残联比对：残疾等级与登记不符",
        "Disabled persons' federation's disability grade differs from the register",
        department_disability_mismatch,
        ("member.disability", "disabled_federation.disability"),
        (),
        ("disability",),
        Department.DISABLED_FEDERATION,
        about_members=True,
    ),
    Rule(
        "department_employment_mismatch",
        "人社比对：就业状况与登记不符",
        "Human resources' employment status differs from the register",
        department_employment_mismatch,
        ("member.employment", "human_resources.employed"),
        (),
        ("unemployment",),
        Department.HUMAN_RESOURCES,
        about_members=True,
    ),
)

BY_RULE: Mapping[str, Rule] = {rule.code: rule for rule in RULES}


@dataclass(frozen=True)
class Evaluation:
    """What the rules say about one household: every finding, and which rules ran (a rule that
    did not run — a history rule without history — says nothing about its warnings)."""

    household_id: str
    findings: list[Finding] = field(default_factory=list)
    rules_run: frozenset[str] = frozenset()


def reading_department(department: str) -> frozenset[str]:
    """The rules that read a department's facts (a comparison rule of that department, or a rule
    with one of its facts among its inputs)."""
    prefix = f"{department}."
    return frozenset(
        rule.code
        for rule in RULES
        if rule.department == department or any(i.startswith(prefix) for i in rule.inputs)
    )


def departments_read(codes: Iterable[str]) -> frozenset[str]:
    """The departments whose facts the given rules read."""
    known = {d.value for d in Department}
    found: set[str] = set()
    for code in codes:
        rule = BY_RULE[code]
        if rule.department is not None:
            found.add(rule.department.value)
        found.update(i.split(".", 1)[0] for i in rule.inputs if i.split(".", 1)[0] in known)
    return frozenset(found)


def evaluate(
    snapshot: HouseholdSnapshot, config: RuleConfig, only: frozenset[str] | None = None
) -> Evaluation:
    """Run every rule (or those in `only`) on one household. Rules needing previous values run
    only when `snapshot.history` is loaded."""
    findings: list[Finding] = []
    run: set[str] = set()
    has_facts = bool(snapshot.facts)
    for rule in RULES:
        if rule.needs_history and snapshot.history is None:
            continue
        if only is not None and rule.code not in only:
            continue
        run.add(rule.code)
        if rule.department is not None and not has_facts:
            continue  # a comparison finds nothing without the department's facts
        findings.extend(rule.check(snapshot, config))
    return Evaluation(snapshot.id, findings, frozenset(run))
