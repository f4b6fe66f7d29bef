"""Running the risk rules over households and keeping their warnings: load snapshots set-based
(a fixed number of statements for any number of households), run `rules.evaluate`, and reconcile
the findings with the current warnings — raise new ones, refresh the ones that still hold, mark
the ones that no longer hold (never delete), start a new lifecycle for a rule firing again after
its warning was handled or dismissed.

Called inside the caller's unit of work (push, department import, configuration change, nightly
chunk); only flushes. Never a query per household.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from typing import cast as typing_cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    String,
    Table,
    Text,
    Uuid,
    and_,
    cast,
    false,
    func,
    insert,
    literal,
    literal_column,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from server.changes.models import Change
from server.db import among
from server.departments.models import DepartmentFact
from server.households.models import Household, Member
from server.warnings import rules
from server.warnings.config import configs_for, province_of
from server.warnings.models import RiskWarning, RiskWarningEvent, WarningStatus
from server.warnings.rules import (
    FactSnapshot,
    Finding,
    History,
    HouseholdSnapshot,
    MemberSnapshot,
    Source,
)

# Statuses under which a warning that holds again is the same warning; after the others
# (handled, dismissed) a firing that follows a period of not holding opens a new lifecycle.
_STILL_OPEN = frozenset({WarningStatus.OPEN, WarningStatus.REFERRED})


@dataclass(frozen=True)
class Trigger:
    """Why the rules run now, named in the evidence of what they find."""

    source: Source
    details: Mapping[str, Any] = field(default_factory=dict)
    # Push: the submission of the batch that wrote each household (its last one).
    submissions: Mapping[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    def evidence_source(self, household_id: uuid.UUID) -> dict[str, Any]:
        found: dict[str, Any] = {"kind": self.source.value, **self.details}
        submission = self.submissions.get(household_id)
        if submission is not None:
            found["submission_id"] = str(submission)
        return found


@dataclass
class Outcome:
    """Counts of what one evaluation did."""

    households: int = 0
    raised: int = 0
    refreshed: int = 0
    no_longer_hold: int = 0
    hold_again: int = 0

    def add(self, other: Outcome) -> None:
        for name in ("households", "raised", "refreshed", "no_longer_hold", "hold_again"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {
            "households": self.households,
            "raised": self.raised,
            "refreshed": self.refreshed,
            "no_longer_hold": self.no_longer_hold,
            "hold_again": self.hold_again,
        }


def income_year_column(session: Session) -> ColumnElement[Any]:
    """The HLC milliseconds of the write that last set `per_capita_income` (NULL if never):
    the year of that write is the year a household's record refers to."""
    if session.get_bind().dialect.name == "postgresql":
        expression = (
            "CAST(SUBSTRING((households.versions->'writes'->"
            "((households.versions->'fields'->>'per_capita_income')::int)->>0) FROM 1 FOR 13)"
            " AS BIGINT)"
        )
    else:
        expression = (
            "CAST(substr(json_extract(households.versions, '$.writes[' || "
            "json_extract(households.versions, '$.fields.per_capita_income') || '][0]'), 1, 13)"
            " AS INTEGER)"
        )
    return literal_column(expression)


def id_text(value: Any) -> str:
    """An id as text with dashes, from a UUID or from SQLite's stored 32 hex digits."""
    if isinstance(value, str):
        if len(value) == 32:
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return value
    return str(value)


class Ids:
    """UUIDs (and their text) from driver values, each distinct value converted once."""

    def __init__(self) -> None:
        self.seen: dict[Any, uuid.UUID] = {}
        self.texts: dict[Any, str] = {}

    def uuid(self, value: Any) -> uuid.UUID:
        found = self.seen.get(value)
        if found is None:
            found = self.seen[value] = (
                value if isinstance(value, uuid.UUID) else uuid.UUID(id_text(value))
            )
        return found

    def text(self, value: Any) -> str:
        found = self.texts.get(value)
        if found is None:
            found = self.texts[value] = id_text(value)
        return found


# The columns snapshots are read from, ids and codes as the driver gives them (converted once per
# distinct value): a member's, a department fact's (present facts only), a household's after its
# id (`household_columns`).
MEMBER_COLUMNS: tuple[Any, ...] = (
    type_coerce(Member.id, String),
    Member.birth_date,
    Member.in_school,
    Member.insured,
    # The stored codes as text: skips building enum members for millions of rows.
    type_coerce(Member.health, String),
    type_coerce(Member.disability, String),
    type_coerce(Member.labor_capacity, String),
    type_coerce(Member.employment, String),
)
FACT_COLUMNS: tuple[Any, ...] = (
    DepartmentFact.department,
    DepartmentFact.fact,
    type_coerce(DepartmentFact.member_id, String),
    # The JSON as text, decoded once per distinct text (the values are few).
    cast(DepartmentFact.value, Text),
    type_coerce(DepartmentFact.import_id, String),
    DepartmentFact.source_row,
    DepartmentFact.as_of,
)


def household_columns(session: Session) -> tuple[Any, ...]:
    return (
        Household.village_code,
        Household.per_capita_income,
        Household.rigid_expenditure,
        Household.housing_ok,
        Household.water_ok,
        Household.relocated,
        Household.receives_minimum_allowance,
        Household.receives_extreme_poverty_support,
        income_year_column(session),
    )


class SnapshotRows:
    """Snapshot parts from rows of the columns above, starting at a given column."""

    def __init__(self, today: date, now: datetime) -> None:
        self.today, self.now = today, now
        self.ids = Ids()
        self.decoded: dict[str, Any] = {}

    def member(self, row: Sequence[Any], at: int) -> MemberSnapshot:
        return MemberSnapshot(self.ids.text(row[at]), *row[at + 1 : at + len(MEMBER_COLUMNS)])

    def fact(self, row: Sequence[Any], at: int) -> FactSnapshot:
        value = self.decoded.get(row[at + 3], _UNSEEN)
        if value is _UNSEEN:
            value = self.decoded[row[at + 3]] = json.loads(row[at + 3])
        return FactSnapshot(
            row[at],
            row[at + 1],
            None if row[at + 2] is None else self.ids.text(row[at + 2]),
            value,
            self.ids.text(row[at + 4]),
            row[at + 5],
            row[at + 6],
        )

    def household(
        self,
        hid: uuid.UUID,
        row: Sequence[Any],
        at: int,
        members: Iterable[MemberSnapshot],
        facts: Iterable[FactSnapshot],
        history: History | None,
    ) -> tuple[HouseholdSnapshot, tuple[int, str]]:
        """The snapshot, and its (year, province): the configuration it is judged with."""
        snapshot = HouseholdSnapshot(
            str(hid),
            row[at],
            self.today,
            per_capita_income=row[at + 1],
            rigid_expenditure=row[at + 2],
            housing_ok=row[at + 3],
            water_ok=row[at + 4],
            relocated=row[at + 5],
            receives_minimum_allowance=row[at + 6],
            receives_extreme_poverty_support=row[at + 7],
            members=tuple(members),
            facts=tuple(facts),
            history=history,
        )
        return snapshot, (record_year(row[at + 8], self.now), province_of(row[at]))


def record_year(written_ms: int | None, now: datetime) -> int:
    if not written_ms:
        return now.year
    return datetime.fromtimestamp(written_ms / 1000, UTC).year


def load_snapshots(
    session: Session,
    household_ids: Collection[uuid.UUID],
    *,
    today: date,
    now: datetime,
    with_history: bool,
    departments: Collection[str] | None = None,
) -> tuple[list[HouseholdSnapshot], dict[uuid.UUID, tuple[int, str]]]:
    """Snapshots of the live households among `household_ids` and each one's (year, province):
    four statements (five with history) whatever their number. `departments`: load only those
    departments' facts (None: all). Core execution: plain rows, no ORM bookkeeping per row."""
    ids = list(household_ids)
    if not ids:
        return [], {}
    connection = session.connection()
    read = SnapshotRows(today, now)
    members: dict[uuid.UUID, list[MemberSnapshot]] = defaultdict(list)
    for row in connection.execute(
        select(type_coerce(Member.household_id, String), *MEMBER_COLUMNS).where(
            among(session, Member.household_id, ids), Member.deleted.is_(False)
        )
    ):
        members[read.ids.uuid(row[0])].append(read.member(row, 1))
    facts: dict[uuid.UUID, list[FactSnapshot]] = defaultdict(list)
    wanted = select(type_coerce(DepartmentFact.household_id, String), *FACT_COLUMNS).where(
        among(session, DepartmentFact.household_id, ids), DepartmentFact.present.is_(True)
    )
    if departments is not None:
        if not departments:
            wanted = wanted.where(false())
        wanted = wanted.where(DepartmentFact.department.in_(sorted(departments)))
    for row in connection.execute(wanted):
        facts[read.ids.uuid(row[0])].append(read.fact(row, 1))
    rows = connection.execute(
        select(Household.id, *household_columns(session)).where(
            among(session, Household.id, ids),
            Household.deleted.is_(False),
            Household.merged_into_id.is_(None),
        )
    ).all()
    histories = _histories(session, rows) if with_history else {}
    snapshots: list[HouseholdSnapshot] = []
    scopes: dict[uuid.UUID, tuple[int, str]] = {}
    for row in rows:
        hid = row[0]
        history = histories.get(hid, History()) if with_history else None
        snapshot, scopes[hid] = read.household(
            hid, row, 1, members.get(hid, ()), facts.get(hid, ()), history
        )
        snapshots.append(snapshot)
    return snapshots, scopes


_UNSEEN = object()
_HISTORY_FIELDS = ("per_capita_income", "rigid_expenditure")


def _histories(session: Session, rows: Sequence[Any]) -> dict[uuid.UUID, History]:
    """Each household's previous income and expenditure: the last value in its change log that
    differs from the current one. One statement; the change log is read by village (its index)."""
    current = {row[0]: (row[2], row[3]) for row in rows}
    if not current:
        return {}
    values: dict[uuid.UUID, dict[str, list[Decimal | None]]] = defaultdict(
        lambda: {name: [] for name in _HISTORY_FIELDS}
    )
    for entity_id, fields in session.execute(
        select(Change.entity_id, Change.fields)
        .where(
            Change.village_code.in_({row[1] for row in rows}),
            among(session, Change.entity_id, list(current)),
            Change.entity_type == "household",
        )
        .order_by(Change.seq)
    ):
        for name in _HISTORY_FIELDS:
            if name in fields:
                value = fields[name]
                values[entity_id][name].append(None if value is None else Decimal(str(value)))
    histories: dict[uuid.UUID, History] = {}
    for hid, (income, spent) in current.items():
        seen = values.get(hid)
        if seen is None:
            continue
        histories[hid] = History(
            previous_per_capita_income=_previous(seen["per_capita_income"], income),
            previous_rigid_expenditure=_previous(seen["rigid_expenditure"], spent),
        )
    return histories


def _previous(history: list[Decimal | None], current: Decimal | None) -> Decimal | None:
    for value in reversed(history):
        if value is not None and value != current:
            return value
        if value is None:
            return None
    return None


@dataclass
class _Current:
    id: uuid.UUID
    rule: str
    subject_key: str
    holds: bool
    status: WarningStatus
    lifecycle: int
    values: Any


Scope = Callable[[Any], ColumnElement[bool]]


def ids_scope(session: Session, ids: Collection[uuid.UUID]) -> Scope:
    """Households among `ids`, as a condition on any household id column. On PostgreSQL a
    semi-join with the unnested array: `= ANY(array)` is checked element by element wherever the
    planner puts it as a filter (a scan of the facts with 20,000 ids took minutes)."""
    wanted = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        listed = select(func.unnest(literal(wanted, ARRAY(Uuid()))))
        return lambda column: column.in_(listed)
    return lambda column: among(session, column, wanted)


def range_scope(after: uuid.UUID | None, upto: uuid.UUID) -> Scope:
    """Households with an id in (`after`, `upto`], as a condition on any household id column."""

    def condition(column: Any) -> ColumnElement[bool]:
        bounded: ColumnElement[bool] = column <= upto
        return bounded if after is None else and_(column > after, bounded)

    return condition


def evaluate_households(
    session: Session,
    household_ids: Collection[uuid.UUID],
    *,
    now: datetime,
    trigger: Trigger,
    with_history: bool = False,
    only: frozenset[str] | None = None,
) -> Outcome:
    """Evaluate every rule (or the rules in `only`) on the given households and reconcile their
    warnings — only the warnings of the rules that ran can stop holding. Households not live in
    the register (deleted, merged, unknown) have nothing that holds."""
    ids = set(household_ids)
    if not ids:
        return Outcome()
    snapshots, scopes = load_snapshots(
        session,
        ids,
        today=now.date(),
        now=now,
        with_history=with_history,
        departments=None if only is None else rules.departments_read(only),
    )
    results, villages = evaluate_snapshots(session, snapshots, scopes, only)
    every_rule = frozenset(rules.BY_RULE) if only is None else only
    outcome = reconcile(
        session,
        ids_scope(session, ids),
        results,
        villages,
        every_rule,
        now=now,
        trigger=trigger,
        households=ids,
    )
    outcome.households = len(ids)
    return outcome


def evaluate_snapshots(
    session: Session,
    snapshots: Sequence[HouseholdSnapshot],
    scopes: Mapping[uuid.UUID, tuple[int, str]],
    only: frozenset[str] | None,
) -> tuple[dict[uuid.UUID, rules.Evaluation], dict[uuid.UUID, str]]:
    """Each snapshot's evaluation with the configuration of its (year, province), and each
    household's village. `scopes` is keyed by the households' ids in the order of `snapshots`."""
    configs = configs_for(session, scopes.values())
    villages: dict[uuid.UUID, str] = {}
    results: dict[uuid.UUID, rules.Evaluation] = {}
    for hid, snapshot in zip(scopes, snapshots, strict=True):
        villages[hid] = snapshot.village_code
        results[hid] = rules.evaluate(snapshot, configs[scopes[hid]], only)
    return results, villages


def reconcile(
    session: Session,
    scope: Scope,
    results: Mapping[uuid.UUID, rules.Evaluation],
    villages: Mapping[uuid.UUID, str],
    every_rule: frozenset[str],
    *,
    now: datetime,
    trigger: Trigger,
    households: Collection[uuid.UUID] | None = None,
) -> Outcome:
    """Turn evaluations into warnings for the households in `scope`: raise new ones, refresh the
    ones that still hold, mark the ones of `every_rule` that no longer hold. A household in scope
    without an evaluation has nothing that holds. `households`: those to reconcile (None: those
    with an evaluation or a current warning — the others have nothing to change)."""
    outcome = Outcome()
    current: dict[uuid.UUID, list[_Current]] = defaultdict(list)
    for row in session.connection().execute(
        select(
            RiskWarning.id,
            RiskWarning.household_id,
            RiskWarning.rule,
            RiskWarning.subject_key,
            RiskWarning.holds,
            RiskWarning.status,
            RiskWarning.lifecycle,
            RiskWarning.evidence["values"],
        ).where(scope(RiskWarning.household_id), RiskWarning.is_current.is_(True))
    ):
        current[row[1]].append(_Current(row[0], *row[2:]))
    ids = set(results) | set(current) if households is None else households

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    seen_ids: list[uuid.UUID] = []
    events: list[dict[str, Any]] = []
    for hid in ids:
        result = results.get(hid)
        findings = {(f.rule, f.subject_key): f for f in result.findings} if result else {}
        rules_run = result.rules_run if result else every_rule
        existing = {(w.rule, w.subject_key): w for w in current.get(hid, ())}
        source = trigger.evidence_source(hid)
        for key, finding in findings.items():
            evidence, kind = _evidence(finding, source, trigger)
            w = existing.get(key)
            if w is None or (not w.holds and w.status not in _STILL_OPEN):
                if w is not None:
                    updates.append({"id": w.id, "is_current": False, "updated_at": now})
                new_id = uuid.uuid4()
                inserts.append(
                    {
                        "id": new_id,
                        "household_id": hid,
                        "member_id": None
                        if not finding.member_id
                        else uuid.UUID(finding.member_id),
                        "subject_key": finding.subject_key,
                        "village_code": villages[hid],
                        "rule": finding.rule,
                        "lifecycle": 1 if w is None else w.lifecycle + 1,
                        "is_current": True,
                        "holds": True,
                        "status": WarningStatus.OPEN,
                        "source": kind,
                        "evidence": evidence,
                        "first_seen": now,
                        "last_seen": now,
                        "cleared_at": None,
                        "version": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                events.append(_event(new_id, "raised", now, "open", source=evidence["source"]))
                outcome.raised += 1
            elif not w.holds:
                updates.append(
                    {
                        "id": w.id,
                        "holds": True,
                        "cleared_at": None,
                        "last_seen": now,
                        "evidence": evidence,
                        "source": kind,
                        "updated_at": now,
                    }
                )
                events.append(_event(w.id, "holds_again", now, None, source=evidence["source"]))
                outcome.hold_again += 1
            elif w.values != evidence["values"]:
                updates.append(
                    {
                        "id": w.id,
                        "last_seen": now,
                        "evidence": evidence,
                        "source": kind,
                        "updated_at": now,
                    }
                )
                outcome.refreshed += 1
            else:
                seen_ids.append(w.id)
                outcome.refreshed += 1
        for key, w in existing.items():
            if w.holds and key not in findings and w.rule in rules_run:
                updates.append({"id": w.id, "holds": False, "cleared_at": now, "updated_at": now})
                events.append(_event(w.id, "no_longer_holds", now, None, source=source))
                outcome.no_longer_hold += 1

    # Order matters: a lifecycle stops being current before its successor is inserted.
    for group in _by_keys(updates):
        session.execute(update(RiskWarning), group)
    if seen_ids:
        session.execute(
            update(RiskWarning)
            .where(among(session, RiskWarning.id, seen_ids))
            .values(last_seen=now)
        )
    # Core inserts: one executemany each (the ORM's bulk insert would split the rows into runs of
    # the same None-ness, e.g. household and member warnings interleaved).
    if inserts:
        session.execute(insert(typing_cast(Table, RiskWarning.__table__)), inserts)
    if events:
        session.execute(insert(typing_cast(Table, RiskWarningEvent.__table__)), events)
    return outcome


def _by_keys(rows: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their set of keys (one executemany each), the `is_current` ones first."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return sorted(groups.values(), key=lambda g: "is_current" not in g[0])


def _evidence(
    finding: Finding, source: dict[str, Any], trigger: Trigger
) -> tuple[dict[str, Any], str]:
    if finding.fact is not None:
        fact = finding.fact.evidence()
        return (
            {
                "values": finding.values,
                "source": {"kind": Source.DEPARTMENT.value, **fact},
                "trigger": source,
            },
            Source.DEPARTMENT.value,
        )
    return {"values": finding.values, "source": source}, trigger.source.value


def _event(
    warning_id: uuid.UUID,
    kind: str,
    at: datetime,
    status: str | None,
    *,
    source: dict[str, Any],
    by_id: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "warning_id": warning_id,
        "kind": kind,
        "at": at,
        "by_id": by_id,
        "status": status,
        "reason": reason,
        "source": source,
    }


def household_ids_in(
    session: Session,
    *,
    after: uuid.UUID | None,
    limit: int,
    code_range: tuple[str, str] | None,
    upto: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """The next `limit` household ids after `after` (and at most `upto`), by id, optionally
    within a code range: the chunks of a full re-evaluation."""
    statement = select(Household.id).order_by(Household.id).limit(limit)
    if after is not None:
        statement = statement.where(Household.id > after)
    if upto is not None:
        statement = statement.where(Household.id <= upto)
    if code_range is not None:
        low, high = code_range
        statement = statement.where(Household.village_code.between(low, high))
    return list(session.scalars(statement))
