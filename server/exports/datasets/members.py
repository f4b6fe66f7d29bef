"""Dataset `members`: one row per member of a live household, with its household number and
village."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from forms.register import MEMBER
from server.exports.columns import Column
from server.exports.datasets.common import (
    apply_monitoring,
    region_condition,
    register_columns,
    selected,
    since,
    village_name_column,
)
from server.exports.registry import Dataset, QueryContext, register
from server.households.models import Household, Member

COLUMNS: tuple[Column, ...] = (
    Column("id", "成员ID", "Member id"),
    Column("household_id", "农户ID", "Household id"),
    Column("household_no", "户编号", "Household number"),
    Column("village_code", "所属村", "Village code"),
    village_name_column(),
    *register_columns(MEMBER, skip=("household_id",)),
    Column("extra", "扩展属性", "Extension properties", "json"),
    Column("rev", "版本", "Revision", "integer"),
    Column("updated_at", "更新时间", "Updated at", "datetime"),
)

_FROM_HOUSEHOLD = {"household_no", "village_code"}


def query(ctx: QueryContext) -> Select[Any]:
    member_columns = tuple(c for c in COLUMNS if c.source_name not in _FROM_HOUSEHOLD)
    statement = (
        select(
            *selected(Member, member_columns, ctx),
            Household.household_no.label("household_no"),
            Household.village_code.label("village_code"),
        )
        .join(Household, Household.id == Member.household_id)
        .where(
            region_condition(ctx, Household.village_code),
            Household.merged_into_id.is_(None),
            Household.deleted.is_(False),
            Member.deleted.is_(False),
            since(ctx, Member.updated_at),
        )
    )
    return apply_monitoring(ctx, statement, Household)


MEMBERS = register(
    Dataset(
        name="members",
        zh="家庭成员",
        en="Members",
        columns=COLUMNS,
        query=query,
        key="id",
        key_expr=Member.id,
        filters=frozenset({"region", "monitoring_type", "monitoring_status", "changed_since"}),
        change_entity="member",
        doc="One row per member of a live household. The monitoring filters apply to the "
        "member's household.",
    )
)
