"""Dataset `households`: one row per household in the merged register (current state), with the
code and name of every region level above it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from forms.register import HOUSEHOLD
from server.exports.columns import Column
from server.exports.datasets.common import (
    apply_monitoring,
    region_columns,
    region_condition,
    register_columns,
    selected,
    since,
)
from server.exports.registry import Dataset, QueryContext, register
from server.households.models import Household

COLUMNS: tuple[Column, ...] = (
    Column("id", "农户ID", "Household id"),
    *register_columns(HOUSEHOLD),
    *region_columns(),
    Column("extra", "扩展属性", "Extension properties", "json"),
    Column("rev", "版本", "Revision", "integer"),
    Column("updated_at", "更新时间", "Updated at", "datetime"),
)


def query(ctx: QueryContext) -> Select[Any]:
    statement = select(*selected(Household, COLUMNS, ctx)).where(
        region_condition(ctx, Household.village_code),
        Household.merged_into_id.is_(None),
        Household.deleted.is_(False),
        since(ctx, Household.updated_at),
    )
    return apply_monitoring(ctx, statement, Household)


HOUSEHOLDS = register(
    Dataset(
        name="households",
        zh="农户",
        en="Households",
        columns=COLUMNS,
        query=query,
        key="id",
        key_expr=Household.id,
        filters=frozenset({"region", "monitoring_type", "monitoring_status", "changed_since"}),
        change_entity="household",
        doc="One row per household of the merged register, in its current state; merged-away "
        "and deleted households are left out (an incremental export reports them as removed).",
    )
)
