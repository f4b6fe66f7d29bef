"""Datasets `conflicts` (open and resolved, both values and their origins) and `quarantine`
(rejected submissions with their errors). Sensitive values are shown masked unless revealed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import aliased

from server.conflicts.models import Conflict
from server.conflicts.service import SENSITIVE_TEXT
from server.exports.columns import Column
from server.exports.datasets.common import region_condition, since, village_name_column
from server.exports.datasets.visits import submissions_query
from server.exports.registry import Dataset, QueryContext, register
from server.sensitive import mask
from server.submissions.models import ReviewStatus, Submission, SubmissionStatus
from server.submissions.payload import masked_value, shown_payload
from server.users.models import User

CONFLICT_COLUMNS: tuple[Column, ...] = (
    Column("id", "冲突ID", "Conflict id"),
    Column("entity_type", "对象类型", "Entity type"),
    Column("entity_id", "对象ID", "Entity id"),
    Column("field", "字段", "Field"),
    Column("village_code", "所属村", "Village code"),
    village_name_column(),
    Column("status", "状态", "Status", "choice"),
    Column("winner_value", "胜出值", "Winning value", "json", sensitive=True),
    Column("winner_clock", "胜出时钟", "Winning clock"),
    Column("winner_submission_id", "胜出提交", "Winning submission"),
    Column("loser_value", "落选值", "Losing value", "json", sensitive=True),
    Column("loser_clock", "落选时钟", "Losing clock"),
    Column("loser_submission_id", "落选提交", "Losing submission"),
    Column("created_at", "发现时间", "Detected at", "datetime"),
    Column("resolved_at", "处理时间", "Resolved at", "datetime"),
    Column("resolved_by", "处理人", "Resolved by (username)"),
    Column("resolution_value", "处理结果", "Resolution value", "json", sensitive=True),
)


def _conflict_query(ctx: QueryContext) -> Select[Any]:
    resolver = aliased(User)
    statement = (
        select(
            *(
                getattr(Conflict, c.name).label(c.name)
                for c in CONFLICT_COLUMNS
                if hasattr(Conflict, c.name)
            ),
            resolver.username.label("resolved_by"),
        )
        .outerjoin(resolver, resolver.id == Conflict.resolved_by_id)
        .where(region_condition(ctx, Conflict.village_code), since(ctx, Conflict.created_at))
    )
    if ctx.filters.status:
        statement = statement.where(Conflict.status == ctx.filters.status)
    return statement


def _shown(codec: Any, field: str, stored: Any, reveal: bool) -> Any:
    if stored is None:
        return None
    if isinstance(stored, dict):
        cipher = stored.get("cipher")
        if reveal and isinstance(cipher, str) and cipher:
            return codec.reveal(field, cipher)
        return stored.get("masked")
    return str(stored) if reveal else mask(field, str(stored))


def _explode_conflict(row: Any, context: Any) -> Iterator[Mapping[str, Any]]:
    values = dict(row._mapping)
    if (row.entity_type, row.field) in SENSITIVE_TEXT:
        for name in ("winner_value", "loser_value", "resolution_value"):
            values[name] = _shown(context.codec, row.field, values[name], context.reveal)
    yield values


CONFLICTS = register(
    Dataset(
        name="conflicts",
        zh="冲突",
        en="Conflicts",
        columns=CONFLICT_COLUMNS,
        query=_conflict_query,
        key="id",
        key_expr=Conflict.id,
        filters=frozenset({"region", "status", "changed_since"}),
        explode=_explode_conflict,
        doc="Concurrent writes whose values differed, open and resolved. Identity numbers and "
        "phones among the values are masked unless revealed. `changed_since` filters on the "
        "time detected; `status` is `open` or `resolved`.",
    )
)

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    Column("instance_id", "提交ID", "Instance id"),
    Column("form_id", "表单", "Form"),
    Column("form_version", "表单版本", "Form version", "integer"),
    Column("village_code", "所属村", "Village code"),
    village_name_column(),
    Column("collector", "采集人", "Collector (username)"),
    Column("device_id", "设备", "Device id"),
    Column("collected_at", "采集时间", "Collected at", "datetime"),
    Column("received_at", "接收时间", "Received at", "datetime"),
    Column("reason", "隔离原因", "Quarantine reason"),
    Column("errors", "错误", "Errors", "json"),
    Column("payload", "提交内容", "Submitted answers", "json", sensitive=True),
    # The review (added after the columns above: their order is a promise to readers).
    Column(
        "review_status",
        "处理结果",
        "Review status",
        "choice",
        choices=ReviewStatus,
        doc="empty while waiting for review; `dismissed` or `corrected`",
    ),
    Column("reviewed_by", "处理人", "Reviewed by (username)"),
    Column("reviewed_at", "处理时间", "Reviewed at", "datetime"),
    Column(
        "review_reason",
        "驳回理由",
        "Reason for dismissing",
        doc="identity numbers and phones in it are masked",
    ),
    Column(
        "corrected_by_instance_id",
        "更正后的提交",
        "Replaced by submission",
        doc="the accepted submission that corrected it",
    ),
)


def _quarantine_query(ctx: QueryContext) -> Select[Any]:
    reviewer = aliased(User)
    # Changed since: received, or reviewed (dismissed or corrected), since then.
    changed_since = ctx.filters.changed_since
    unfiltered = replace(ctx, filters=replace(ctx.filters, changed_since=None))
    statement = submissions_query(
        unfiltered,
        SubmissionStatus.REJECTED,
        Submission.quarantine_reason.label("reason"),
        Submission.errors.label("errors"),
        Submission.review_status.label("review_status"),
        reviewer.username.label("reviewed_by"),
        Submission.reviewed_at.label("reviewed_at"),
        Submission.review_reason.label("review_reason"),
        Submission.corrected_by_instance_id.label("corrected_by_instance_id"),
    ).outerjoin(reviewer, reviewer.id == Submission.reviewed_by_id)
    if changed_since is not None:
        statement = statement.where(
            or_(Submission.received_at >= changed_since, Submission.reviewed_at >= changed_since)
        )
    return statement


def _explode_quarantine(row: Any, context: Any) -> Iterator[Mapping[str, Any]]:
    values = dict(row._mapping)
    values["instance_id"] = str(row.instance_id)
    values["device_id"] = str(row.device_id)
    if row.corrected_by_instance_id is not None:
        values["corrected_by_instance_id"] = str(row.corrected_by_instance_id)
    values["payload"] = shown_payload(
        context.codec, row.payload, row.instance_id, reveal=context.reveal
    ).payload
    values["errors"] = row.errors if context.reveal else masked_value(row.errors)
    yield values


QUARANTINE = register(
    Dataset(
        name="quarantine",
        zh="隔离提交",
        en="Quarantine",
        columns=QUARANTINE_COLUMNS,
        query=_quarantine_query,
        key="instance_id",
        key_expr=Submission.instance_id,
        filters=frozenset({"region", "form_id", "form_version", "changed_since"}),
        explode=_explode_quarantine,
        doc="Rejected submissions, kept with their errors, and what a reviewer did with each: "
        "dismissed with a reason, or corrected and re-submitted (empty while waiting). A "
        "submission whose village is not known (it could not be read) is in no region: only "
        "admins see it. `changed_since` takes the ones received or reviewed since then.",
    )
)
