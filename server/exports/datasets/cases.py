"""Datasets `cases` (monitoring entry and exit cases) and `case_steps` (each workflow step of
them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from forms.register import MonitoringStatus, MonitoringType, RiskCause
from server.exports.columns import Column
from server.exports.datasets.common import region_condition, since, village_name_column
from server.exports.registry import Dataset, QueryContext, register
from server.households.models import Household
from server.monitoring.models import CaseStep, MonitoringCase
from server.monitoring.terms import CaseDirection, CaseOutcome, CaseStage, StepDecision
from server.users.models import User

CASE_COLUMNS: tuple[Column, ...] = (
    Column("id", "案件ID", "Case id"),
    Column("household_id", "农户ID", "Household id"),
    Column("household_no", "户编号", "Household number"),
    Column("village_code", "所属村", "Village code"),
    village_name_column(),
    Column("direction", "类型", "Direction", "choice", choices=CaseDirection),
    Column("stage", "环节", "Stage", "choice", choices=CaseStage),
    Column("outcome", "结果", "Outcome", "choice", choices=CaseOutcome),
    Column("prior_status", "原监测状态", "Status before", "choice", choices=MonitoringStatus),
    Column("monitoring_type", "监测对象类别", "Monitoring type", "choice", choices=MonitoringType),
    Column("risk_causes", "风险类型", "Risk causes", "choices", choices=RiskCause),
    Column("opened_at", "发起时间", "Opened at", "datetime"),
    Column("opened_by", "发起人", "Opened by (username)"),
    Column("closed_at", "办结时间", "Closed at", "datetime"),
    Column("updated_at", "更新时间", "Updated at", "datetime"),
)


def _case_query(ctx: QueryContext) -> Select[Any]:
    opener = aliased(User)
    statement = (
        select(
            *(
                getattr(MonitoringCase, c.name).label(c.name)
                for c in CASE_COLUMNS
                if c.derive is None and hasattr(MonitoringCase, c.name)
            ),
            Household.household_no.label("household_no"),
            opener.username.label("opened_by"),
        )
        .join(Household, Household.id == MonitoringCase.household_id)
        .outerjoin(opener, opener.id == MonitoringCase.opened_by_id)
        .where(
            region_condition(ctx, MonitoringCase.village_code),
            since(ctx, MonitoringCase.updated_at),
        )
    )
    if ctx.filters.monitoring_type:
        statement = statement.where(MonitoringCase.monitoring_type == ctx.filters.monitoring_type)
    if ctx.filters.status:
        statement = statement.where(MonitoringCase.outcome == ctx.filters.status)
    return statement


CASES = register(
    Dataset(
        name="cases",
        zh="监测案件",
        en="Cases",
        columns=CASE_COLUMNS,
        query=_case_query,
        key="id",
        key_expr=MonitoringCase.id,
        filters=frozenset({"region", "monitoring_type", "status", "changed_since"}),
        doc="Entry and exit cases of the monitoring workflow. `status` filters on the outcome "
        "(`open`, `approved`, `rejected`); `changed_since` on the last update.",
    )
)

STEP_COLUMNS: tuple[Column, ...] = (
    Column("id", "环节ID", "Step id"),
    Column("case_id", "案件ID", "Case id"),
    Column("seq", "序号", "Sequence", "integer"),
    Column("village_code", "所属村", "Village code"),
    Column("stage", "环节", "Stage", "choice", choices=CaseStage),
    Column("decision", "决定", "Decision", "choice", choices=StepDecision),
    Column("taken_by", "办理人", "Taken by (username)"),
    Column("taken_at", "办理时间", "Taken at", "datetime"),
    Column("comment", "意见", "Comment"),
)


def _step_query(ctx: QueryContext) -> Select[Any]:
    taker = aliased(User)
    return (
        select(
            CaseStep.id.label("id"),
            CaseStep.case_id.label("case_id"),
            CaseStep.seq.label("seq"),
            MonitoringCase.village_code.label("village_code"),
            CaseStep.stage.label("stage"),
            CaseStep.decision.label("decision"),
            taker.username.label("taken_by"),
            CaseStep.taken_at.label("taken_at"),
            CaseStep.comment.label("comment"),
        )
        .join(MonitoringCase, MonitoringCase.id == CaseStep.case_id)
        .outerjoin(taker, taker.id == CaseStep.taken_by_id)
        .where(region_condition(ctx, MonitoringCase.village_code), since(ctx, CaseStep.taken_at))
    )


CASE_STEPS = register(
    Dataset(
        name="case_steps",
        zh="案件环节",
        en="Case steps",
        columns=STEP_COLUMNS,
        query=_step_query,
        key="id",
        key_expr=CaseStep.id,
        filters=frozenset({"region", "changed_since"}),
        doc="Each step taken on a case, linked to it by `case_id`.",
    )
)
