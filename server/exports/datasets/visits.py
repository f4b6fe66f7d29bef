"""Datasets `visits` (one row per accepted submission, answers flattened by form version) and
`visit_repeats` (one row per repeat item, linked to its visit by `key`/`parent_key` as ODK
Central's KEY/PARENT_KEY). Answers are shown as the submissions API shows them: identity numbers
and phones masked, and answers bound to sensitive register fields (health, disability) hidden,
unless the export reveals."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from forms.definition import SELECT_TYPES, Field, FieldType, FormDefinition
from forms.definition_schema import load_definition
from forms.register import find_register_field
from server.exports.columns import HIDDEN, Column, Kind
from server.exports.datasets.common import region_condition, since, village_name_column
from server.exports.registry import Dataset, ExportFilters, QueryContext, register
from server.forms.models import FormVersion
from server.submissions.models import Submission, SubmissionStatus
from server.submissions.payload import shown_payload
from server.users.models import User

META: tuple[Column, ...] = (
    Column("instance_id", "提交ID", "Instance id (KEY)"),
    Column("form_id", "表单", "Form"),
    Column("form_version", "表单版本", "Form version", "integer"),
    Column("household_id", "农户ID", "Household id"),
    Column("village_code", "所属村", "Village code"),
    village_name_column(),
    Column("collector", "采集人", "Collector (username)"),
    Column("device_id", "设备", "Device id"),
    Column("collected_at", "采集时间", "Collected at", "datetime"),
    Column("received_at", "接收时间", "Received at", "datetime"),
)
ANSWERS = Column(
    "answers",
    "回答",
    "Answers",
    "json",
    doc="Without a form and version filter: the visit's answers outside repeats, as JSON. With "
    "`form_id` and `form_version`, one column per question of that version instead (code: "
    "the question's name; headers: its label); a choice question's answer is its code, or "
    "with `labels=zh|en` its label from the form's choice list.",
)
REPEAT_META: tuple[Column, ...] = (
    Column("key", "KEY", "KEY", doc="`<instance_id>/<repeat>[<position>]`, stable."),
    Column("parent_key", "PARENT_KEY", "PARENT_KEY", doc="The visit's `instance_id`."),
    Column("repeat", "重复组", "Repeat"),
    Column("position", "序号", "Position", "integer"),
    Column("form_id", "表单", "Form"),
    Column("form_version", "表单版本", "Form version", "integer"),
    Column("village_code", "所属村", "Village code"),
)
REPEAT_ANSWERS = Column(
    "answers",
    "回答",
    "Answers",
    "json",
    doc="Without a form and version filter: the item's answers as JSON; with them, one column "
    "per question of the repeat.",
)

_KINDS: dict[FieldType, Kind] = {
    FieldType.INTEGER: "integer",
    FieldType.DECIMAL: "decimal",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.SELECT_MULTIPLE: "choices",
    FieldType.GEOPOINT: "json",
}
_SKIPPED = {FieldType.NOTE, FieldType.REPEAT}


def _answer_column(field: Field, definition: FormDefinition) -> Column:
    kind = _KINDS.get(field.value_type or field.type, "text")
    label = field.label
    choices = field.choices
    if isinstance(choices, str):
        choices = definition.choice_lists.get(choices)
    answer_labels: tuple[tuple[str, str, str], ...] = ()
    if field.type in SELECT_TYPES and choices:
        kind = "choices" if kind == "choices" else "choice"
        answer_labels = tuple((c.code, c.label.zh, c.label.en) for c in choices)
    return Column(
        field.name,
        label.zh if label else field.name,
        label.en if label else field.name,
        kind,
        doc="answer",
        answer_labels=answer_labels,
    )


def _definition(session: Session, filters: ExportFilters) -> FormDefinition | None:
    if not filters.form_id or filters.form_version is None:
        return None
    raw = session.get(FormVersion, (filters.form_id, filters.form_version))
    return load_definition(raw.definition) if raw is not None else None


def _flat(
    fields: tuple[Field, ...], taken: set[str], definition: FormDefinition
) -> tuple[Column, ...]:
    return tuple(
        _answer_column(f, definition)
        for f in fields
        if f.type not in _SKIPPED and f.name not in taken
    )


def visit_columns(session: Session, filters: ExportFilters) -> tuple[Column, ...]:
    definition = _definition(session, filters)
    if definition is None:
        return (*META, ANSWERS)
    return (*META, *_flat(definition.fields, {c.name for c in META}, definition))


def repeat_columns(session: Session, filters: ExportFilters) -> tuple[Column, ...]:
    definition = _definition(session, filters)
    if definition is None:
        return (*REPEAT_META, REPEAT_ANSWERS)
    taken = {c.name for c in REPEAT_META}
    columns: dict[str, Column] = {}
    for f in definition.fields:
        if f.type is FieldType.REPEAT:
            for column in _flat(f.fields, taken, definition):
                columns.setdefault(column.name, column)
    return (*REPEAT_META, *columns.values())


def submissions_query(ctx: QueryContext, status: SubmissionStatus, *extra: Any) -> Select[Any]:
    """Submissions of `status` in the caller's scope and filters, with the columns every
    submission dataset shares (and `extra`); visits and quarantine both read through it."""
    statement = (
        select(
            Submission.instance_id.label("instance_id"),
            Submission.form_id.label("form_id"),
            Submission.form_version.label("form_version"),
            Submission.village_code.label("village_code"),
            User.username.label("collector"),
            Submission.device_id.label("device_id"),
            Submission.collected_at.label("collected_at"),
            Submission.received_at.label("received_at"),
            *extra,
            Submission.payload.label("payload"),
        )
        .outerjoin(User, User.id == Submission.user_id)
        .where(
            Submission.status == status,
            region_condition(ctx, Submission.village_code),
            since(ctx, Submission.received_at),
        )
    )
    if ctx.filters.form_id:
        statement = statement.where(Submission.form_id == ctx.filters.form_id)
    if ctx.filters.form_version is not None:
        statement = statement.where(Submission.form_version == ctx.filters.form_version)
    return statement


def _query(ctx: QueryContext) -> Select[Any]:
    return submissions_query(ctx, SubmissionStatus.ACCEPTED)


Tree = dict[str, Any]


def hidden_answers(definition: FormDefinition) -> Tree:
    """Answers bound to sensitive register fields that are not text (health, disability): name →
    True, or a repeat's name → its subtree. Identity numbers and phones are protected in the
    stored payload itself and need no entry here."""
    entity_types = {entity.name: entity.type for entity in definition.entities}

    def visit(fields: tuple[Field, ...]) -> Tree:
        tree: Tree = {}
        for f in fields:
            if f.fields:
                subtree = visit(f.fields)
                if subtree:
                    tree[f.name] = subtree
            if f.binding is None:
                continue
            entity, name = f.binding
            spec = find_register_field(entity_types.get(entity, ""), name)
            if spec is not None and spec.sensitive and spec.kind != "text":
                tree[f.name] = True
        return tree

    return visit(definition.fields)


def _hidden_tree(row: Any, context: Any) -> Tree:
    memo: dict[Any, Tree] = context.memo
    key = ("hidden", row.form_id, row.form_version)
    if key not in memo:
        raw = context.session.get(FormVersion, (row.form_id, row.form_version))
        memo[key] = hidden_answers(load_definition(raw.definition)) if raw is not None else {}
    return memo[key]


def _hide(answers: Mapping[str, Any], tree: Tree) -> dict[str, Any]:
    out = dict(answers)
    for name, rule in tree.items():
        value = out.get(name)
        if rule is True and value is not None:
            out[name] = HIDDEN
        elif isinstance(rule, dict) and isinstance(value, list):
            out[name] = [_hide(v, rule) if isinstance(v, dict) else v for v in value]
    return out


def _answers(row: Any, context: Any) -> dict[str, Any]:
    shown = shown_payload(context.codec, row.payload, row.instance_id, reveal=context.reveal)
    # The stored payload is the submission as sent; its answers are under `data`.
    document = shown.payload if isinstance(shown.payload, dict) else {}
    answers = document.get("data")
    if not isinstance(answers, dict):
        answers = {}
    return answers if context.reveal else _hide(answers, _hidden_tree(row, context))


def _is_repeat(value: Any) -> bool:
    return isinstance(value, list) and (not value or any(isinstance(i, dict) for i in value))


def _explode_visit(row: Any, context: Any) -> Iterator[Mapping[str, Any]]:
    answers = _answers(row, context)
    # Repeats (lists of items) go to visit_repeats; a select_multiple answer (a list of codes)
    # stays.
    flat = {k: v for k, v in answers.items() if not _is_repeat(v)}
    yield {
        **flat,
        "instance_id": str(row.instance_id),
        "form_id": row.form_id,
        "form_version": row.form_version,
        "household_id": answers.get("household_id"),
        "village_code": row.village_code,
        "collector": row.collector,
        "device_id": str(row.device_id),
        "collected_at": row.collected_at,
        "received_at": row.received_at,
        "answers": flat,
    }


def _explode_repeats(row: Any, context: Any) -> Iterator[Mapping[str, Any]]:
    instance_id = str(row.instance_id)
    for name, value in _answers(row, context).items():
        if not isinstance(value, list):
            continue
        for position, item in enumerate(value, start=1):
            if not isinstance(item, dict):
                continue
            yield {
                **item,
                "key": f"{instance_id}/{name}[{position}]",
                "parent_key": instance_id,
                "repeat": name,
                "position": position,
                "form_id": row.form_id,
                "form_version": row.form_version,
                "village_code": row.village_code,
                "answers": item,
            }


_FILTERS = frozenset({"region", "form_id", "form_version", "changed_since"})

VISITS = register(
    Dataset(
        name="visits",
        zh="走访记录",
        en="Visits",
        columns=(*META, ANSWERS),
        query=_query,
        key="instance_id",
        key_expr=Submission.instance_id,
        filters=_FILTERS,
        columns_for=visit_columns,
        explode=_explode_visit,
        doc="One row per accepted submission. `changed_since` filters on the time received.",
    )
)

VISIT_REPEATS = register(
    Dataset(
        name="visit_repeats",
        zh="走访重复组",
        en="Visit repeats",
        columns=(*REPEAT_META, REPEAT_ANSWERS),
        query=_query,
        key="key",
        key_expr=Submission.instance_id,
        filters=_FILTERS,
        columns_for=repeat_columns,
        explode=_explode_repeats,
        doc="One row per item of a repeat (e.g. the members of a household visit).",
    )
)
