"""Dataset `monitoring_summary`: the monitoring summary of a region and of each region below it
for a year (server/monitoring/summary.py), in long form — one row per region, section,
combination of dimension values and measure — which pivot tables and BI tools take directly."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Select, literal, select

from server.exports.columns import Column
from server.exports.registry import Dataset, QueryContext, register
from server.monitoring.summary import summarize

COLUMNS: tuple[Column, ...] = (
    Column("year", "年度", "Year", "integer"),
    Column("region_code", "区划代码", "Region code"),
    Column("region_name", "区划名称", "Region name"),
    Column("region_level", "区划级别", "Region level"),
    Column("is_total", "是否合计", "Is the region's own total", "boolean"),
    Column("section", "统计项", "Section"),
    Column(
        "dimensions",
        "分组",
        "Dimensions",
        "json",
        doc="The section's dimension values of the row (empty for the section's total).",
    ),
    Column("measure", "指标", "Measure"),
    Column("value", "数值", "Value", "integer"),
)


def _query(ctx: QueryContext) -> Select[Any]:
    return select(literal(1).label("one"))


def _explode(row: Any, context: Any) -> Iterator[Mapping[str, Any]]:
    filters = context.filters
    summary = summarize(context.session, context.actor, filters.region, filters.year)
    for region, is_total in [(summary.region, True)] + [(c, False) for c in summary.children]:
        for section in summary.sections:
            counts = region.sections[section.name]
            names = [d.name for d in section.dimensions]
            measures = [m for m, _ in section.measures]
            lines = [
                (dict(zip(names, key, strict=True)), values) for key, values in counts.rows.items()
            ]
            lines.append(({}, counts.total))
            for dimensions, values in lines:
                for measure, value in zip(measures, values, strict=True):
                    yield {
                        "year": summary.year,
                        "region_code": region.code,
                        "region_name": region.name,
                        "region_level": region.level,
                        "is_total": is_total,
                        "section": section.name,
                        "dimensions": dimensions,
                        "measure": measure,
                        "value": value,
                    }


MONITORING_SUMMARY = register(
    Dataset(
        name="monitoring_summary",
        zh="监测统计",
        en="Monitoring summary",
        columns=COLUMNS,
        query=_query,
        key="region_code",
        key_expr=None,
        filters=frozenset({"region", "year"}),
        required=frozenset({"region", "year"}),
        explode=_explode,
        doc="Needs `region` and `year`. `is_total` marks the rows of the region asked for; the "
        "others are its child regions. Rows with empty `dimensions` are each section's total.",
    )
)
