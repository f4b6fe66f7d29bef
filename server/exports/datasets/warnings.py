"""Dataset `warnings` (预警): every risk warning, current and past lifecycles, with where its
latest firing came from. The values a rule read stay out of the export (they can be health or
disability data); the warning API shows them, masked, one warning at a time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from server.exports.columns import Column
from server.exports.datasets.common import region_condition, since, village_name_column
from server.exports.registry import Dataset, QueryContext, register
from server.households.models import Household
from server.users.models import User
from server.warnings.models import RiskWarning, WarningStatus


def _source_of(evidence: Any, _row: Any) -> Any:
    """The evidence's source (kind, submission or department import and row), never its values."""
    return (evidence or {}).get("source") if isinstance(evidence, dict) else None


WARNING_COLUMNS: tuple[Column, ...] = (
    Column("id", "预警ID", "Warning id"),
    Column("household_id", "农户ID", "Household id"),
    Column("household_no", "户编号", "Household number"),
    Column("member_id", "成员ID", "Member id (a rule about one person)"),
    Column("village_code", "所属村", "Village code"),
    village_name_column(),
    Column("rule", "预警规则", "Rule (docs/warnings.md)"),
    Column("lifecycle", "轮次", "Lifecycle", "integer"),
    Column("is_current", "当前轮次", "Current lifecycle", "boolean"),
    Column("holds", "仍然成立", "Still holds", "boolean"),
    Column("status", "处置状态", "Status", "choice", choices=WarningStatus),
    Column("source", "来源", "Source of the latest firing"),
    Column(
        "evidence_source",
        "证据来源",
        "Evidence source (submission, department import and row, …)",
        "json",
        source="evidence",
        derive=_source_of,
    ),
    Column("first_seen", "首次发现", "First seen", "datetime"),
    Column("last_seen", "最近发现", "Last seen", "datetime"),
    Column("cleared_at", "不再成立时间", "No longer holds since", "datetime"),
    Column("status_by", "处置人", "Status set by (username)"),
    Column("status_at", "处置时间", "Status set at", "datetime"),
    Column("status_reason", "处置说明", "Reason"),
    Column("referral_id", "转介ID", "Referral id"),
    Column("updated_at", "更新时间", "Updated at", "datetime"),
)


def _query(ctx: QueryContext) -> Select[Any]:
    actor = aliased(User)
    statement = (
        select(
            *(
                getattr(RiskWarning, c.name).label(c.name)
                for c in WARNING_COLUMNS
                if c.derive is None and hasattr(RiskWarning, c.name)
            ),
            RiskWarning.evidence.label("evidence"),
            Household.household_no.label("household_no"),
            actor.username.label("status_by"),
        )
        .join(Household, Household.id == RiskWarning.household_id)
        .outerjoin(actor, actor.id == RiskWarning.status_by_id)
        .where(
            region_condition(ctx, RiskWarning.village_code),
            since(ctx, RiskWarning.updated_at),
        )
    )
    if ctx.filters.status:
        statement = statement.where(RiskWarning.status == ctx.filters.status)
    return statement


WARNINGS = register(
    Dataset(
        name="warnings",
        zh="风险预警",
        en="Risk warnings",
        columns=WARNING_COLUMNS,
        query=_query,
        key="id",
        key_expr=RiskWarning.id,
        filters=frozenset({"region", "status", "changed_since"}),
        doc="Risk warnings raised by the rules of docs/warnings.md, one row per warning "
        "lifecycle. `status` filters on `open`, `referred`, `handled` or `dismissed`; "
        "`changed_since` on the last update. The values a rule read are not exported.",
    )
)
