"""The dashboard: the monitoring summary of one region (the user's own region by default) as
tables and bar charts, its child regions as rows linking to their own dashboards, a breadcrumb up
to the user's roots, and a year selector. Figures come from `server.monitoring.dashboard`; this
module only lays them out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from flask import render_template, request
from flask_babel import format_date

from server.console.blueprint import bp
from server.console.i18n import current_language
from server.console.session import console_page, current_user
from server.db import utcnow
from server.monitoring import dashboard, summary
from server.monitoring.report_schemas import SummaryQuerySchema
from server.monitoring.summary import Dimension, RegionSummary, Section, SectionCounts
from server.regions import service as regions
from server.regions.codes import RegionLevel
from server.request_body import load_with
from server.runtime import runtime

# The years the selector offers: this one and the ones before it.
YEARS_SHOWN = 6


class Bar(NamedTuple):
    """One bar of a `bars` chart: its label and value."""

    label: str
    value: int


@dataclass(frozen=True)
class Grid:
    """A section as a table: one dimension down, another across (or the measures across)."""

    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[int]]]
    totals: list[int]


def _text(label: summary.Label, language: str) -> str:
    return label.zh if language == "zh" else label.en


def _by(
    counts: SectionCounts, section: Section, dimension: int, measure: int, language: str
) -> list[Bar]:
    """One measure summed over every dimension but `dimension`, per value of it."""
    values = section.dimensions[dimension].values
    totals = dict.fromkeys((v.code for v in values), 0)
    for key, measures in counts.rows.items():
        totals[key[dimension]] = totals.get(key[dimension], 0) + measures[measure]
    labels = {v.code: _text(v.label, language) for v in values}
    return [Bar(labels.get(code, code), n) for code, n in totals.items()]


def _grid(
    counts: SectionCounts,
    section: Section,
    language: str,
    *,
    measure: int = 0,
    title: str | None = None,
) -> Grid:
    """Two dimensions: the first down, the second across, one measure in the cells. One
    dimension: the measures across."""
    first = section.dimensions[0]
    down = [(v.code, _text(v.label, language)) for v in first.values]
    if len(section.dimensions) == 1:
        columns = [_text(label, language) for _name, label in section.measures]
        rows = [(text, list(counts.rows.get((code,), [0] * len(columns)))) for code, text in down]
        return Grid(
            title or _text(section.label, language),
            _text(first.label, language),
            columns,
            rows,
            list(counts.total),
        )
    second: Dimension = section.dimensions[1]
    across = [(v.code, _text(v.label, language)) for v in second.values]
    grid_rows = []
    for code, text in down:
        cells = [
            counts.rows.get((code, other), [0] * len(section.measures))[measure]
            for other, _t in across
        ]
        grid_rows.append((text, cells))
    totals = [sum(row[1][i] for row in grid_rows) for i in range(len(across))]
    return Grid(
        title or _text(section.label, language),
        _text(first.label, language),
        [text for _c, text in across],
        grid_rows,
        totals,
    )


def _child_row(child: RegionSummary) -> dict[str, Any]:
    sections = child.sections
    movements = summary.DIRECTION.values
    entered = {v.code: 0 for v in movements}
    for (direction,), (n,) in sections["movements"].rows.items():
        entered[direction] = entered.get(direction, 0) + n
    return {
        "code": child.code,
        "name": child.name or child.code,
        "households": sections["monitored"].total[0],
        "persons": sections["monitored"].total[1],
        "open_cases": sections["open_cases"].total[0],
        "overdue": sections["overdue_followups"].total[0],
        "warnings": sections["warnings"].total[0],
        "entries": entered.get("entry", 0),
        "exits": entered.get("exit", 0),
    }


def _year_argument(args: dict[str, Any]) -> int:
    year = args.get("year")
    return int(year) if year else datetime.now(summary.REPORT_TIMEZONE).year


@bp.get("/")
@console_page()
def home() -> str:
    actor = current_user()
    asked = {k: v for k, v in request.args.items() if k in ("region", "year") and v}
    # The region is optional here (the user's own is the default): validated only when given.
    args = load_with(SummaryQuerySchema(partial=("region",)), asked)
    year = _year_argument(args)
    language = current_language()
    rt = runtime()
    with rt.db.unit_of_work(write=False) as session:
        region_code = args.get("region")
        if region_code is None:
            roots = regions.region_roots(session, actor)
            if len(roots) != 1:
                return render_template(
                    "console/home.html", roots=roots, board=None, year=year, years=_years()
                )
            region_code = roots[0].code
            # Start where the tree branches: a province with one city with one county opens
            # at the county (the breadcrumb leads back up).
            for _level in range(len(RegionLevel) - 1):
                below = regions.region_children(session, actor, region_code)
                if len(below) != 1:
                    break
                region_code = below[0].code
        board = dashboard.dashboard(session, actor, region_code, year, utcnow())
        path = regions.region_path(session, actor, region_code)
    found = board.summary
    sections = {s.name: s for s in found.sections}
    counts = found.region.sections
    monitored = sections["monitored"]
    view = {
        "region": found.region,
        "level": path.region.level,
        "crumbs": [a for a in path.ancestors if actor.covers(a.code)],
        "children": [_child_row(c) for c in found.children],
        "child_level": found.children[0].level if found.children else None,
        "totals": _child_row(found.region),
        "by_type": _by(counts["monitored"], monitored, 0, 0, language),
        "by_status": _by(counts["monitored"], monitored, 1, 0, language),
        "monitored_households": _grid(counts["monitored"], monitored, language, measure=0),
        "monitored_persons": _grid(counts["monitored"], monitored, language, measure=1),
        "stages": _by(counts["open_cases"], sections["open_cases"], 1, 0, language),
        "open_cases": _grid(counts["open_cases"], sections["open_cases"], language),
        "warnings": [
            bar
            for bar in _by(counts["warnings"], sections["warnings"], 0, 0, language)
            if bar.value
        ],
        "overdue": _by(counts["overdue_followups"], sections["overdue_followups"], 0, 0, language),
        "referrals": _by(counts["referrals"], sections["referrals"], 0, 0, language),
        "movements": _grid(counts["movements"], sections["movements"], language),
        "activity": [Bar(format_date(day.day, "MM-dd"), day.accepted) for day in board.activity],
        "labels": {s.name: _text(s.label, language) for s in found.sections},
    }
    return render_template(
        "console/home.html", roots=None, board=view, year=year, years=_years(year)
    )


def _years(selected: int | None = None) -> Sequence[int]:
    this_year = datetime.now(summary.REPORT_TIMEZONE).year
    years = list(range(this_year, this_year - YEARS_SHOWN, -1))
    if selected is not None and selected not in years:
        years.append(selected)
    return years
