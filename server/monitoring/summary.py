"""The monitoring summary (动态清零 reporting): for a region and each of its child regions, how many
households and persons are under monitoring by type and status, referrals by channel, open cases
at each stage, and entries and exits approved in a year.

Every section counts in one grouped query over the region's code range, grouped by child region
(the prefix of the village code; indexes: migrations 0013 and 0022 — the persons are the sum of
the households' kept `member_count`), and the region's figure is the sum of
its children's, so a parent always equals the sum of its children. A section is declared once in
`SECTIONS`; adding one (e.g. overdue follow-ups) is a `Section` with its query, nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    false,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from forms.register import LabelledEnum, MonitoringStatus, MonitoringType
from server.auth.actor import Actor
from server.db import utcnow
from server.errors import NotFound
from server.households.models import Household
from server.monitoring.models import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    CaseStep,
    MonitoringCase,
    Referral,
    ReferralChannel,
    StepDecision,
)
from server.regions.codes import PREFIX_LENGTH, RegionLevel, code_range, level_of
from server.regions.models import Region

# Report years follow the calendar of China Standard Time (no daylight saving): a step taken on
# 31 December at 20:00 UTC counts in the next year, as the people who took it would count it.
REPORT_TIMEZONE = timezone(timedelta(hours=8), "CST")
FIRST_YEAR = 2000
LAST_YEAR = 2100


@dataclass(frozen=True)
class Label:
    zh: str
    en: str


@dataclass(frozen=True)
class Value:
    """One value of a dimension: its code on the wire and its labels."""

    code: str
    label: Label


@dataclass(frozen=True)
class Dimension:
    name: str
    label: Label
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Window:
    """What a summary covers: the villages in `[low, high]` and the year `[start, end)`; counts
    are grouped by the first `digits` of the village code (the child regions' prefix)."""

    low: str
    high: str
    year: int
    start: datetime
    end: datetime
    digits: int = 12

    def within(self, column: Any) -> ColumnElement[bool]:
        return cast(ColumnElement[bool], column.between(self.low, self.high))

    def bucket(self, column: Any) -> ColumnElement[str]:
        """The child region a village code falls in, as its significant prefix."""
        # Literal arguments: the same expression in SELECT and GROUP BY must read the same on
        # PostgreSQL, which bound parameters (named apart) would not.
        return func.substr(column, literal_column("1"), literal_column(str(int(self.digits))))


# One counted group: (the child region's code prefix, as `Window.bucket` gives it, the dimension
# codes in order, the measures in order).
CountRow = tuple[str, tuple[str, ...], tuple[int, ...]]
CountQuery = Callable[[Session, Window], Iterable[CountRow]]


@dataclass(frozen=True)
class Section:
    """A named part of the report: counts of `measures` by every combination of `dimensions`,
    per child region, from `count`."""

    name: str
    label: Label
    dimensions: tuple[Dimension, ...]
    measures: tuple[tuple[str, Label], ...]
    count: CountQuery

    def combinations(self) -> list[tuple[str, ...]]:
        return list(itertools.product(*([v.code for v in d.values] for d in self.dimensions)))


def _values(
    enum: type[LabelledEnum], members: Iterable[LabelledEnum] | None = None
) -> tuple[Value, ...]:
    return tuple(Value(m.value, Label(m.zh, m.en)) for m in (members or list(enum)))


NO_TYPE = "none"  # a household whose type is not decided yet (its entry is still under review)
MONITORING_STATUSES = (
    MonitoringStatus.ENTRY_REVIEW,
    MonitoringStatus.MONITORED,
    MonitoringStatus.EXIT_REVIEW,
    MonitoringStatus.RISK_ELIMINATED,
)
OPEN_STAGES = (
    CaseStage.VERIFICATION,
    CaseStage.VILLAGE_REVIEW,
    CaseStage.TOWNSHIP_REVIEW,
    CaseStage.COUNTY_REVIEW,
)
TYPE = Dimension(
    "type",
    Label("监测对象类型", "Monitoring type"),
    (*_values(MonitoringType), Value(NO_TYPE, Label("未定类型", "Type not decided yet"))),
)
TYPE_CODES = frozenset(MonitoringType.codes())
STATUS = Dimension(
    "status", Label("监测状态", "Monitoring status"), _values(MonitoringStatus, MONITORING_STATUSES)
)
CHANNEL = Dimension("channel", Label("发现渠道", "Channel"), _values(ReferralChannel))
DIRECTION = Dimension("direction", Label("方向", "Direction"), _values(CaseDirection))
STAGE = Dimension("stage", Label("审核环节", "Stage"), _values(CaseStage, OPEN_STAGES))
HOUSEHOLDS = ("households", Label("户数", "Households"))
PERSONS = ("persons", Label("人数", "Persons"))
CASES = ("cases", Label("件数", "Cases"))
REFERRALS = ("referrals", Label("件数", "Referrals"))


def _code(value: Any) -> str:
    return NO_TYPE if value is None else str(value)


def _text(column: Any) -> ColumnElement[str]:
    """An enumeration column read as its stored code (no conversion of every row)."""
    return type_coerce(column, String())


def _rows(session: Session, statement: Any) -> list[Any]:
    # Core execution: plain tuples, without the ORM's per-row work.
    return list(session.connection().execute(statement))


def count_monitored(session: Session, window: Window) -> Iterable[CountRow]:
    """Households under monitoring (any status but not_monitored) and their live members, both
    from `ix_households_monitoring` alone: the persons are the households' kept `member_count`s
    (migration 0022), not a count of member rows."""
    groups = (
        window.bucket(Household.village_code),
        _text(Household.monitoring_type),
        _text(Household.monitoring_status),
    )
    rows = _rows(
        session,
        select(*groups, func.count(), func.coalesce(func.sum(Household.member_count), 0))
        .where(
            Household.monitoring_status.in_(MONITORING_STATUSES),
            window.within(Household.village_code),
            Household.deleted == false(),
        )
        .group_by(*groups),
    )
    return [
        (code, (_code(kind), status), (int(households), int(persons)))
        for code, kind, status, households, persons in rows
    ]


def count_referrals(session: Session, window: Window) -> Iterable[CountRow]:
    """Referrals made in the year, by channel (also those attached to an open case)."""
    groups = (window.bucket(Referral.village_code), _text(Referral.channel))
    rows = _rows(
        session,
        select(*groups, func.count())
        .where(
            Referral.created_at >= window.start,
            Referral.created_at < window.end,
            window.within(Referral.village_code),
        )
        .group_by(*groups),
    )
    return [(code, (channel,), (int(n),)) for code, channel, n in rows]


def count_open_cases(session: Session, window: Window) -> Iterable[CountRow]:
    """Cases open now, by direction and the stage they wait at (not limited to the year)."""
    groups = (
        window.bucket(MonitoringCase.village_code),
        _text(MonitoringCase.direction),
        _text(MonitoringCase.stage),
    )
    rows = _rows(
        session,
        select(*groups, func.count())
        .where(
            MonitoringCase.outcome == CaseOutcome.OPEN,
            window.within(MonitoringCase.village_code),
        )
        .group_by(*groups),
    )
    return [(code, (direction, stage), (int(n),)) for code, direction, stage, n in rows]


def count_movements(session: Session, window: Window) -> Iterable[CountRow]:
    """Entries and exits of the year: cases the county step approved in it, by direction."""
    groups = (window.bucket(MonitoringCase.village_code), _text(MonitoringCase.direction))
    rows = _rows(
        session,
        select(*groups, func.count())
        .select_from(CaseStep)
        .join(MonitoringCase, MonitoringCase.id == CaseStep.case_id)
        .where(
            CaseStep.stage == CaseStage.COUNTY_REVIEW,
            CaseStep.decision == StepDecision.APPROVE,
            CaseStep.taken_at >= window.start,
            CaseStep.taken_at < window.end,
            window.within(MonitoringCase.village_code),
        )
        .group_by(*groups),
    )
    return [(code, (direction,), (int(n),)) for code, direction, n in rows]


def count_overdue(session: Session, window: Window) -> Iterable[CountRow]:
    """Monitored households whose follow-up visit is overdue now (a state of today, whatever
    the year asked for), by monitoring type; the rule is `server.monitoring.followups`'."""
    from server.monitoring.followups import overdue_where

    counts: dict[tuple[str, str], int] = {}
    overdue = overdue_where(session, window.within(Household.village_code), utcnow())
    for village, by_type in overdue.items():
        for kind, n in by_type.items():
            key = (village[: window.digits], kind if kind in TYPE_CODES else NO_TYPE)
            counts[key] = counts.get(key, 0) + n
    return [(code, (kind,), (n,)) for (code, kind), n in counts.items()]


# The report, in the order it is laid out.
SECTIONS: tuple[Section, ...] = (
    Section(
        "monitored",
        Label("监测对象", "Households under monitoring"),
        (TYPE, STATUS),
        (HOUSEHOLDS, PERSONS),
        count_monitored,
    ),
    Section(
        "referrals",
        Label("本年发现（按渠道）", "Referrals this year, by channel"),
        (CHANNEL,),
        (REFERRALS,),
        count_referrals,
    ),
    Section(
        "open_cases",
        Label("审核中案件（按环节）", "Open cases, by stage"),
        (DIRECTION, STAGE),
        (CASES,),
        count_open_cases,
    ),
    Section(
        "overdue_followups",
        Label("逾期未回访", "Follow-up visits overdue now"),
        (TYPE,),
        (HOUSEHOLDS,),
        count_overdue,
    ),
    Section(
        "movements",
        Label("本年纳入与退出（县级审定）", "Entries and exits approved this year"),
        (DIRECTION,),
        (CASES,),
        count_movements,
    ),
)


# --- the answer ----------------------------------------------------------------------------------


@dataclass
class SectionCounts:
    """One section's numbers for one region: every combination of its dimensions (zeros
    included, in declared order) and the total of each measure."""

    rows: dict[tuple[str, ...], list[int]]
    total: list[int]


@dataclass
class RegionSummary:
    code: str
    name: str | None
    level: str
    sections: dict[str, SectionCounts]


@dataclass(frozen=True)
class Summary:
    year: int
    region: RegionSummary
    children: list[RegionSummary]
    sections: tuple[Section, ...]


def year_window(region_code: str, year: int) -> Window:
    """The villages of `region_code` in `year`, grouped by its child regions (or by village,
    for a village)."""
    low, high = code_range(region_code)
    start = datetime(year, 1, 1, tzinfo=REPORT_TIMEZONE)
    end = datetime(year + 1, 1, 1, tzinfo=REPORT_TIMEZONE)
    below = child_level(level_of(region_code))
    digits = PREFIX_LENGTH[below] if below is not None else PREFIX_LENGTH[RegionLevel.VILLAGE]
    return Window(low, high, year, start, end, digits)


def child_level(level: RegionLevel) -> RegionLevel | None:
    order = list(PREFIX_LENGTH)
    index = order.index(level)
    return order[index + 1] if index + 1 < len(order) else None


def child_code(prefix: str, level: RegionLevel) -> str:
    """The region at `level` named by a village code or its prefix."""
    keep = PREFIX_LENGTH[level]
    return prefix[:keep] + "0" * (12 - keep)


def _empty(section: Section) -> SectionCounts:
    width = len(section.measures)
    return SectionCounts({key: [0] * width for key in section.combinations()}, [0] * width)


def _add(counts: SectionCounts, key: tuple[str, ...], measures: tuple[int, ...]) -> None:
    row = counts.rows.get(key)
    if row is None:  # a value the dimension does not declare: counted, shown after the others
        row = counts.rows[key] = [0] * len(measures)
    for i, n in enumerate(measures):
        row[i] += n
        counts.total[i] += n


def summarize(
    session: Session,
    actor: Actor,
    region_code: str,
    year: int,
    sections: Sequence[Section] = SECTIONS,
) -> Summary:
    """The summary of `region_code` for `year` and of each of its child regions.

    404 for a region not in the register's hierarchy, 403 outside the caller's regions. The
    code and year are checked for form by the route (422)."""
    region = session.get(Region, region_code)
    if region is None:
        raise NotFound("no such region", details={"region": region_code})
    actor.ensure_covers(region_code, "this region")
    window = year_window(region_code, year)
    level = level_of(region_code)
    below = child_level(level)
    names: dict[str, str | None] = {}
    if below is not None:
        children_found = session.execute(
            select(Region.code, Region.name).where(Region.parent_code == region_code)
        )
        names = {code: name for code, name in children_found}
    total = RegionSummary(
        region.code, region.name, level.value, {s.name: _empty(s) for s in sections}
    )
    children: dict[str, RegionSummary] = {}

    def child(code: str) -> RegionSummary:
        found = children.get(code)
        if found is None:
            found = children[code] = RegionSummary(
                code,
                names.get(code),
                below.value if below is not None else level.value,
                {s.name: _empty(s) for s in sections},
            )
        return found

    for code in sorted(names):
        child(code)
    for section in sections:
        for prefix, key, measures in section.count(session, window):
            _add(total.sections[section.name], key, measures)
            if below is not None:
                _add(child(child_code(prefix, below)).sections[section.name], key, measures)
    return Summary(
        year=year,
        region=total,
        children=[children[code] for code in sorted(children)],
        sections=tuple(sections),
    )


def as_document(summary: Summary) -> dict[str, Any]:
    """The summary as the API answers it: the layout of the sections (labels, dimensions and
    measures) once, then each region's numbers laid out like a report table — per section, one
    row per combination of its dimensions with the measures as columns, and the total."""

    def region(r: RegionSummary) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        for section in summary.sections:
            counts = r.sections[section.name]
            names = [d.name for d in section.dimensions]
            measures = [m for m, _ in section.measures]
            sections[section.name] = {
                "rows": [
                    {
                        **dict(zip(names, key, strict=True)),
                        **dict(zip(measures, values, strict=True)),
                    }
                    for key, values in counts.rows.items()
                ],
                "total": dict(zip(measures, counts.total, strict=True)),
            }
        return {"code": r.code, "name": r.name, "level": r.level, "sections": sections}

    return {
        "year": summary.year,
        "layout": [
            {
                "name": s.name,
                "label": vars(s.label),
                "dimensions": [
                    {
                        "name": d.name,
                        "label": vars(d.label),
                        "values": [{"code": v.code, "label": vars(v.label)} for v in d.values],
                    }
                    for d in s.dimensions
                ],
                "measures": [{"name": m, "label": vars(label)} for m, label in s.measures],
            }
            for s in summary.sections
        ],
        "region": region(summary.region),
        "children": [region(c) for c in summary.children],
    }
