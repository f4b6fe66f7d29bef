"""Pieces several datasets share: register-field columns, the region-name columns above a
village, and filter conditions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, true
from sqlalchemy.orm import aliased

from forms.register import EntitySpec, RegisterField
from server.exports.columns import Column, Kind, SqlJoin
from server.exports.registry import QueryContext
from server.regions.codes import code_range
from server.regions.models import Region

_KINDS: dict[str, Kind] = {
    "text": "text",
    "select_one": "choice",
    "select_multiple": "choices",
    "decimal": "decimal",
    "integer": "integer",
    "boolean": "boolean",
    "date": "date",
}


def register_column(field: RegisterField) -> Column:
    """The export column of a register field (sensitive text: masked form, cipher on reveal)."""
    if field.sensitive and field.kind == "text":
        return Column(
            field.name,
            field.zh,
            field.en,
            "text",
            sensitive=True,
            source=f"{field.name}_masked",
            cipher=f"{field.name}_cipher",
            sensitive_kind=field.name,
        )
    return Column(
        field.name,
        field.zh,
        field.en,
        _KINDS.get(field.kind, "text"),
        sensitive=field.sensitive,
        choices=field.choices,
    )


def register_columns(spec: EntitySpec, *, skip: tuple[str, ...] = ()) -> tuple[Column, ...]:
    return tuple(
        register_column(field)
        for name, field in spec.fields.items()
        if name not in skip and name != "deleted"
    )


def selected(model: Any, columns: tuple[Column, ...], ctx: QueryContext) -> list[Any]:
    """The labelled SELECT items of `model` that `columns` read (ciphertexts only to reveal)."""
    items: dict[str, Any] = {}
    for column in columns:
        if column.derive is not None and column.source is None:
            continue
        attribute = getattr(model, column.source_name, None)
        if attribute is not None:
            items.setdefault(column.source_name, attribute.label(column.source_name))
        if ctx.reveal and column.cipher:
            items.setdefault(column.cipher, getattr(model, column.cipher).label(column.cipher))
    return list(items.values())


def region_condition(ctx: QueryContext, column: Any) -> ColumnElement[bool]:
    """The caller's scope and the `region` filter, on a region-code column."""
    condition = ctx.scope(column)
    if ctx.filters.region:
        low, high = code_range(ctx.filters.region)
        condition = and_(condition, column >= low, column <= high)
    return condition


def since(ctx: QueryContext, column: Any) -> ColumnElement[bool]:
    return column >= ctx.filters.changed_since if ctx.filters.changed_since else true()


def apply_monitoring(ctx: QueryContext, query: Select[Any], model: Any) -> Select[Any]:
    if ctx.filters.monitoring_type:
        query = query.where(model.monitoring_type == ctx.filters.monitoring_type)
    if ctx.filters.monitoring_status:
        query = query.where(model.monitoring_status == ctx.filters.monitoring_status)
    return query


# The region levels above a household, with the number of significant digits of each.
LEVELS = (
    ("province", "省", "Province", 2),
    ("city", "市", "City", 4),
    ("county", "县", "County", 6),
    ("township", "乡镇", "Township", 9),
)


def _code_at(length: int) -> Any:
    def derive(village: str | None, _context: Any) -> str | None:
        return village[:length] + "0" * (12 - length) if village else None

    return derive


def _name_at(length: int) -> Any:
    def derive(village: str | None, context: Any) -> str | None:
        if not village:
            return None
        name: str | None = context.region_names.get(village[:length] + "0" * (12 - length))
        return name

    return derive


def _code_sql(length: int) -> Any:
    def sql(village: Any) -> Any:
        return func.substr(village, 1, length).op("||")(literal("0" * (12 - length)))

    return sql


def _name_sql(length: int) -> Any:
    """The name of the region above (or of) the village, as `_name_at` reads it (the regions an
    export's rows are in are always among the names it reads): an outer join on the regions."""

    def sql(village: Any) -> Any:
        code = village if length == 12 else _code_sql(length)(village)
        region = aliased(Region, name=f"region_name_{length}")
        return SqlJoin(region.name, region, region.code == code)

    return sql


def region_columns(source: str = "village_code") -> tuple[Column, ...]:
    """Code and name of every level above the village in `source`, then the village's name."""
    columns: list[Column] = []
    for level, zh, en, length in LEVELS:
        columns.append(
            Column(
                f"{level}_code",
                f"{zh}代码",
                f"{en} code",
                source=source,
                derive=_code_at(length),
                sql=_code_sql(length),
            )
        )
        columns.append(
            Column(
                f"{level}_name",
                f"{zh}名称",
                f"{en} name",
                source=source,
                derive=_name_at(length),
                sql=_name_sql(length),
            )
        )
    columns.append(
        Column(
            "village_name",
            "村名称",
            "Village name",
            source=source,
            derive=_name_at(12),
            sql=_name_sql(12),
        )
    )
    return tuple(columns)


def village_name_column(source: str = "village_code") -> Column:
    return Column(
        "village_name",
        "村名称",
        "Village name",
        source=source,
        derive=_name_at(12),
        sql=_name_sql(12),
    )
