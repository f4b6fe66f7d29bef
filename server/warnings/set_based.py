"""The risk rules evaluated set-based: for each rule, one SQL statement selects the slices of the
register it can fire on — the household columns, and only the members and department facts the
rule looks at — and the rule's own Python function (`server/warnings/rules.py`) judges each slice.

A slice statement is a necessary condition, never the rule itself: it may select more than fires
(bounds of the configuration over every year and province, a school age from birth years), and
the rule decides with the household's own configuration. A rule reads nothing outside its slice,
so it finds on the slice exactly what it finds on the whole household: the findings are those of
`rules.evaluate` on full snapshots (tests run both paths on the same data and compare). The work is
then in proportion to what can fire and to the warnings already there, not to the register.

A rule without a slice here (a new rule, until its statement is written) is still evaluated: on
full snapshots of every household in scope. The history rules (income drop, expenditure spike)
read previous values from the change log: they run on full snapshots of the households with at
least two writes in it (`revisited`), the only ones that can have a previous value.

Used by department imports, the nightly re-evaluation and configuration changes; a push evaluates
the few households it wrote on full snapshots (`evaluation.evaluate_households`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    and_,
    cast,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from server.changes.models import Change
from server.departments.facts import Department
from server.departments.models import DepartmentFact
from server.households.models import Household, Member
from server.warnings import config, rules
from server.warnings.evaluation import (
    FACT_COLUMNS,
    MEMBER_COLUMNS,
    Outcome,
    Scope,
    SnapshotRows,
    Trigger,
    evaluate_snapshots,
    household_columns,
    ids_scope,
    load_snapshots,
    reconcile,
)
from server.warnings.models import WarningSetting
from server.warnings.rules import (
    SERIOUS_HEALTH,
    FactSnapshot,
    Finding,
    HouseholdSnapshot,
    MemberSnapshot,
    RuleConfig,
)


@dataclass(frozen=True)
class Bounds:
    """The widest value of each setting over every year and province (stored settings and the
    defaults): a slice selected with these holds whatever configuration a household has."""

    highest: Mapping[str, Decimal]
    lowest: Mapping[str, Decimal]
    today: date

    def ceiling(self) -> Decimal:
        """No configuration flags an income at or above this (line × (1 + margin))."""
        return self.highest["monitoring_line"] * (1 + self.highest["near_line_margin"])

    def birth_dates(self) -> tuple[date, date]:
        """Birth dates of everyone of some configuration's school age today, and a little more."""
        oldest = int(self.highest["school_age_max"]) + 1
        youngest = int(self.lowest["school_age_min"])
        return date(self.today.year - oldest - 1, 1, 1), date(self.today.year - youngest, 12, 31)


def bounds(session: Session, today: date) -> Bounds:
    highest = {spec.name: spec.default for spec in config.SPECS}
    lowest = dict(highest)
    for name, value in session.execute(select(WarningSetting.name, WarningSetting.value)):
        if name in highest:
            highest[name] = max(highest[name], value)
            lowest[name] = min(lowest[name], value)
    return Bounds(highest, lowest, today)


# -- the slices ---------------------------------------------------------------------------------

# A slice row: the household's id and columns, then (if the slice has them) a member's columns,
# then a fact's (`evaluation.MEMBER_COLUMNS`, `FACT_COLUMNS`).
_LIVE_HOUSEHOLD = (Household.deleted.is_(False), Household.merged_into_id.is_(None))


def _household_columns(session: Session) -> tuple[Any, ...]:
    return (type_coerce(Household.id, String), *household_columns(session))


# Every join names the scope on its own household id too, so that each table is read by its
# index on the households in scope (a condition on the households alone lets the planner scan a
# whole table of facts or members for each chunk).


def _member_of_household(scope: Scope) -> ColumnElement[bool]:
    return and_(
        Member.household_id == Household.id,
        Member.deleted.is_(False),
        scope(Member.household_id),
    )


def _facts_of(scope: Scope, department: Department, *facts: str) -> ColumnElement[bool]:
    return and_(
        DepartmentFact.household_id == Household.id,
        scope(DepartmentFact.household_id),
        DepartmentFact.department == department.value,
        DepartmentFact.fact.in_(facts),
        DepartmentFact.present.is_(True),
    )


@dataclass(frozen=True)
class Slice:
    """What one rule can fire on: `statement(columns, bounds, scope)` selects the slice rows of
    the households in scope, whose columns are the household's, then a member's if `members`,
    then a fact's if `facts`."""

    statement: Callable[[tuple[Any, ...], Bounds, Scope], Select[Any]]
    members: bool = False
    facts: bool = False


def _households(where: Callable[[Bounds], ColumnElement[bool]]) -> Slice:
    """A rule on household columns alone."""
    return Slice(lambda h, b, s: select(*h).where(where(b), s(Household.id), *_LIVE_HOUSEHOLD))


def _members(where: Callable[[Bounds], ColumnElement[bool]]) -> Slice:
    """A rule on each member alone (with the household's columns)."""
    return Slice(
        lambda h, b, s: (
            select(*h, *MEMBER_COLUMNS)
            .join(Member, _member_of_household(s))
            .where(where(b), s(Household.id), *_LIVE_HOUSEHOLD)
        ),
        members=True,
    )


def _department_members(
    department: Department,
    facts: tuple[str, ...],
    where: Callable[[Bounds], ColumnElement[bool]] | None = None,
) -> Slice:
    """A comparison rule on members' facts: each fact with the member it names."""
    return Slice(
        lambda h, b, s: (
            select(*h, *MEMBER_COLUMNS, *FACT_COLUMNS)
            .join(DepartmentFact, _facts_of(s, department, *facts))
            .join(Member, _member_of_household(s) & (Member.id == DepartmentFact.member_id))
            .where(s(Household.id), *_LIVE_HOUSEHOLD, *(() if where is None else (where(b),)))
        ),
        members=True,
        facts=True,
    )


def _department_households(department: Department, facts: tuple[str, ...]) -> Slice:
    """A comparison rule on household facts."""
    return Slice(
        lambda h, b, s: (
            select(*h, *FACT_COLUMNS)
            .join(DepartmentFact, _facts_of(s, department, *facts))
            .where(s(Household.id), *_LIVE_HOUSEHOLD)
        ),
        facts=True,
    )


def _below_ceiling(b: Bounds) -> ColumnElement[bool]:
    return Household.per_capita_income < b.ceiling()


def _ill_with_costs(h: tuple[Any, ...], b: Bounds, s: Scope) -> Select[Any]:
    """Seriously ill or disabled members, with their 医保 costs if listed, in households whose
    rigid expenditure is large or whose member has listed costs (the rule takes the listed costs
    first, then the expenditure)."""
    costs = _facts_of(s, Department.MEDICAL_INSURANCE, "medical_costs") & (
        DepartmentFact.member_id == Member.id
    )
    ill = or_(
        type_coerce(Member.health, String).in_(sorted(SERIOUS_HEALTH)),
        type_coerce(Member.disability, String) != "none",
    )
    return (
        select(*h, *MEMBER_COLUMNS, *FACT_COLUMNS)
        .join(Member, _member_of_household(s))
        .outerjoin(DepartmentFact, costs)
        .where(
            ill,
            s(Household.id),
            or_(
                Household.rigid_expenditure >= b.lowest["large_medical_cost"],
                DepartmentFact.household_id.is_not(None),
            ),
            *_LIVE_HOUSEHOLD,
        )
    )


def _relocated(h: tuple[Any, ...], b: Bounds, s: Scope) -> Select[Any]:
    """Relocated households with every live member (the rule looks at all of them)."""
    return (
        select(*h, *MEMBER_COLUMNS)
        .outerjoin(Member, _member_of_household(s))
        .where(Household.relocated.is_(True), s(Household.id), *_LIVE_HOUSEHOLD)
    )


SLICES: Mapping[str, Slice] = {
    "income_below_line": _households(_below_ceiling),
    "income_near_line": _households(_below_ceiling),
    "unsafe_house": _households(lambda b: Household.housing_ok.is_(False)),
    "unsafe_water": _households(lambda b: Household.water_ok.is_(False)),
    "relocated_without_stable_work": Slice(_relocated, members=True),
    "child_out_of_school": _members(
        lambda b: Member.in_school.is_(False) & Member.birth_date.between(*b.birth_dates())
    ),
    "member_uninsured": _members(lambda b: Member.insured.is_(False)),
    "illness_with_large_medical_costs": Slice(_ill_with_costs, members=True, facts=True),
    "department_uninsured": _department_members(
        Department.MEDICAL_INSURANCE,
        ("insured",),
        lambda b: (
            (cast(DepartmentFact.value, Text) == "false")
            & or_(Member.insured.is_(None), Member.insured.is_(True))
        ),
    ),
    "department_dropout": _department_members(Department.EDUCATION, ("dropped_out", "enrolled")),
    "department_dilapidated_house": _department_households(
        Department.HOUSING, ("dilapidated_house",)
    ),
    "department_allowance_mismatch": _department_households(
        Department.CIVIL_AFFAIRS, ("minimum_allowance", "extreme_poverty_support")
    ),
    "department_disability_mismatch": _department_members(
        Department.DISABLED_FEDERATION, ("disability",)
    ),
    "department_employment_mismatch": _department_members(
        Department.HUMAN_RESOURCES, ("employed",)
    ),
}


# -- evaluation ---------------------------------------------------------------------------------


def _snapshots(
    read: SnapshotRows, rows: Iterable[Any], slice_: Slice, at_member: int
) -> tuple[dict[uuid.UUID, HouseholdSnapshot], dict[uuid.UUID, tuple[int, str]]]:
    """Slice rows as partial snapshots (each member and each fact once) and their scopes; a
    member's columns start at `at_member` (after the household's)."""
    households: dict[uuid.UUID, Any] = {}
    members: dict[uuid.UUID, dict[str, MemberSnapshot]] = defaultdict(dict)
    facts: dict[uuid.UUID, dict[FactSnapshot, None]] = defaultdict(dict)
    at_fact = at_member + (len(MEMBER_COLUMNS) if slice_.members else 0)
    for row in rows:
        hid = read.ids.uuid(row[0])
        households.setdefault(hid, row)
        if slice_.members and row[at_member] is not None:
            member = read.member(row, at_member)
            members[hid][member.id] = member
        if slice_.facts and row[at_fact] is not None:
            facts[hid][read.fact(row, at_fact)] = None
    snapshots: dict[uuid.UUID, HouseholdSnapshot] = {}
    scopes: dict[uuid.UUID, tuple[int, str]] = {}
    for hid, row in households.items():
        snapshots[hid], scopes[hid] = read.household(
            hid, row, 1, members[hid].values(), facts[hid], None
        )
    return snapshots, scopes


HISTORY_RULES = frozenset(rule.code for rule in rules.RULES if rule.needs_history)


def revisited(
    session: Session, scope: Scope | None, span: tuple[str, str] | None
) -> set[uuid.UUID]:
    """Households with at least two writes in the change log: the only ones whose fields can
    have a previous value (the history rules find nothing on the others). One statement."""
    statement = (
        select(Change.entity_id)
        .where(Change.entity_type == "household")
        .group_by(Change.entity_id)
        .having(func.count() >= 2)
    )
    if scope is not None:
        statement = statement.where(scope(Change.entity_id))
    if span is not None:
        statement = statement.where(Change.village_code.between(*span))
    return set(session.scalars(statement))


def evaluate_scope(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    trigger: Trigger,
    only: frozenset[str] | None = None,
    with_history: bool = False,
    revisited_ids: Collection[uuid.UUID] = (),
    fallback_ids: Callable[[], Collection[uuid.UUID]] | None = None,
    limits: Bounds | None = None,
) -> Outcome:
    """Evaluate the rules (or those in `only`) on the households in `scope` set-based and
    reconcile their warnings, inside the caller's unit of work. History rules run with
    `with_history` on the `revisited_ids` in scope; rules without a slice on the full snapshots
    of `fallback_ids()` (every household in scope)."""
    wanted = [rule for rule in rules.RULES if only is None or rule.code in only]
    if not with_history:
        wanted = [rule for rule in wanted if not rule.needs_history]
    every_rule = frozenset(rule.code for rule in wanted)
    today = now.date()
    limits = limits or bounds(session, today)
    read = SnapshotRows(today, now)
    findings: dict[uuid.UUID, list[Finding]] = defaultdict(list)
    villages: dict[uuid.UUID, str] = {}
    configs: dict[tuple[int, str], RuleConfig] = {}
    columns = _household_columns(session)
    connection = session.connection()
    for rule in wanted:
        slice_ = SLICES.get(rule.code)
        if slice_ is None:
            continue
        statement = slice_.statement(columns, limits, scope)
        snapshots, scopes = _snapshots(read, connection.execute(statement), slice_, len(columns))
        configs.update(config.configs_for(session, set(scopes.values()) - set(configs)))
        for hid, snapshot in snapshots.items():
            villages[hid] = snapshot.village_code
            findings[hid].extend(rule.check(snapshot, configs[scopes[hid]]))
    results = {
        hid: rules.Evaluation(str(hid), found, every_rule) for hid, found in findings.items()
    }
    whole = [r.code for r in wanted if r.needs_history or r.code not in SLICES]
    history = [code for code in whole if code in HISTORY_RULES]
    if history:
        _on_full_snapshots(session, results, villages, revisited_ids, history, now, every_rule)
    python_only = [code for code in whole if code not in HISTORY_RULES]
    if python_only and fallback_ids is not None:
        _on_full_snapshots(session, results, villages, fallback_ids(), python_only, now, every_rule)
    return reconcile(session, scope, results, villages, every_rule, now=now, trigger=trigger)


# Households per statement when they are given by id (one list parameter each).
IDS_CHUNK = 20000


def evaluate_ids(
    session: Session,
    ids: Collection[uuid.UUID],
    *,
    now: datetime,
    trigger: Trigger,
    only: frozenset[str] | None = None,
    with_history: bool = False,
    revisited_ids: Collection[uuid.UUID] = frozenset(),
) -> Outcome:
    """`evaluate_scope` on the households `ids`, `IDS_CHUNK` at a time, in the caller's unit of
    work; every rule (or those in `only`) has its slice or runs on their full snapshots."""
    outcome = Outcome()
    ordered = sorted(ids)
    for start in range(0, len(ordered), IDS_CHUNK):
        part = ordered[start : start + IDS_CHUNK]
        found = evaluate_scope(
            session,
            ids_scope(session, part),
            now=now,
            trigger=trigger,
            only=only,
            with_history=with_history,
            revisited_ids=[i for i in part if i in revisited_ids],
            fallback_ids=part.copy,
        )
        found.households = len(part)
        outcome.add(found)
    return outcome


def _on_full_snapshots(
    session: Session,
    results: dict[uuid.UUID, rules.Evaluation],
    villages: dict[uuid.UUID, str],
    ids: Collection[uuid.UUID],
    codes: list[str],
    now: datetime,
    every_rule: frozenset[str],
) -> None:
    """Add the findings of `codes` on full snapshots of `ids` (with previous values)."""
    if not ids:
        return
    history = bool(HISTORY_RULES & set(codes))
    snapshots, scopes = load_snapshots(
        session, ids, today=now.date(), now=now, with_history=history
    )
    found, where = evaluate_snapshots(session, snapshots, scopes, frozenset(codes))
    villages.update(where)
    for hid, evaluation in found.items():
        earlier = results.get(hid)
        merged = [*(earlier.findings if earlier else ()), *evaluation.findings]
        results[hid] = replace(evaluation, findings=merged, rules_run=every_rule)
