"""The binding step: from a validated submission to the register writes it asks for, one
EntityUpdate per entity instance, with normalised JSON values.

Pure: it decides what to write, never writes, merges or looks anything up in the register.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from forms.answer_types import is_valid_uuid
from forms.answers import Frame, SubmissionContext
from forms.definition import FieldType, FormDefinition
from forms.expressions import Value
from forms.plan import EntityPlan
from forms.register import EntityType

JsonValue = None | bool | int | float | str | list[str]


class BindingError(ValueError):
    """The answers cannot be bound: an entity id (or its parent's) is missing or not a UUID.

    `validate_submission` reports all of these first; seeing this error means the caller skipped
    validation.
    """


@dataclass(frozen=True)
class EntityUpdate:
    """What one submission says about one register entity.

    `entity` is the entity's name in the form (`hh`, `m`), `type` the register entity type, `id`
    its UUID, `create` whether the submission may create it, `parent` the `(type, id)` it belongs
    to (members: their household), `fields` register field → value, and `path` where in the
    answers it came from (`data`, `data.members[1]`).
    """

    entity: str
    type: EntityType
    id: str
    create: bool
    parent: tuple[EntityType, str] | None
    fields: dict[str, JsonValue] = field(default_factory=dict)
    path: str = "data"

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "type": self.type,
            "id": self.id,
            "create": self.create,
            "parent": list(self.parent) if self.parent else None,
            "fields": dict(self.fields),
            "path": self.path,
        }


def derive_register_updates(
    definition: FormDefinition,
    data: dict[str, object],
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> list[EntityUpdate]:
    """The register updates a valid submission asks for, in a deterministic order.

    Precondition: `validate_submission` found no issue (else BindingError may be raised).
    Order: entities in declaration order; for an entity in a repeat, one update per instance, in
    answer order. An entity is skipped when its id field is not relevant (or its repeat instance
    is). Only relevant, answered bound fields are written: missing, null and '' write nothing (a
    form cannot clear a register value); an empty selection `[]` writes `[]`. Calculated fields
    are recomputed. Values: dates as `YYYY-MM-DD`, date-times as given, numbers as int when
    whole else float, selections as sorted distinct code lists. A member's `household_id` is
    always its parent's id. `today`/`now` as for `validate_submission`.
    """
    with SubmissionContext(
        definition, data, today=today or date.today(), now=now or datetime.now(UTC)
    ) as context:
        return updates_in(context)


def updates_in(context: SubmissionContext) -> list[EntityUpdate]:
    """`derive_register_updates` on answers already read into a context."""
    binder = _Binder(context)
    updates: list[EntityUpdate] = []
    for entity in context.plan.entities:
        for frame in binder.frames_for(entity):
            update = binder.update_for(entity, frame)
            if update is not None:
                updates.append(update)
    return updates


class _Binder:
    def __init__(self, context: SubmissionContext) -> None:
        self.context = context
        # Entity ids found so far, by object of answers and entity: a household's id is read
        # again for each of its members.
        self.ids: dict[tuple[int, EntityPlan], str | None] = {}

    def frames_for(self, entity: EntityPlan) -> list[Frame]:
        context = self.context
        frames = [context.root]
        for step in entity.steps:
            frames = [child for frame in frames for child in context.instances(frame, step)]
        if entity.missing_step is not None and frames:
            raise KeyError(entity.missing_step)
        return frames

    def entity_id(self, entity: EntityPlan, frame: Frame) -> str | None:
        key = (id(frame.instance), entity)
        if key in self.ids:
            return self.ids[key]
        id_field = entity.id_field
        if id_field is None:
            raise KeyError(entity.entity.id_field)
        found: str | None = None
        if self.context.relevant(frame, id_field):
            raw = frame.instance.get(id_field.name)
            if not is_valid_uuid(raw):
                raise BindingError(f"{frame.path}.{id_field.name}: entity id must be a UUID")
            assert isinstance(raw, str)
            found = raw.lower()
        self.ids[key] = found
        return found

    def update_for(self, entity: EntityPlan, frame: Frame) -> EntityUpdate | None:
        entity_id = self.entity_id(entity, frame)
        if entity_id is None:
            return None
        declared = entity.entity
        parent: tuple[EntityType, str] | None = None
        values: dict[str, JsonValue] = {}
        if declared.parent is not None:
            parent_entity = self.context.plan.entities_by_name[declared.parent]
            parent_frame = frame.chain[: len(parent_entity.entity.scope) + 1][-1]
            parent_id = self.entity_id(parent_entity, parent_frame)
            if parent_id is None:
                raise BindingError(f"{frame.path}: the parent entity {declared.parent} has no id")
            parent = (parent_entity.entity.type, parent_id)
            if declared.type == "member":
                values["household_id"] = parent_id
        _write_bound(self.context, entity, frame, values)
        return EntityUpdate(
            entity=declared.name,
            type=declared.type,
            id=entity_id,
            create=declared.create,
            parent=parent,
            fields=dict(sorted(values.items())),
            path=frame.path,
        )


# Reading an enum member is a descriptor call in Python 3.11: the loop over bound fields compares
# with these constants instead.
_CALCULATED = FieldType.CALCULATED
_DATETIME = FieldType.DATETIME


def _write_bound(
    context: SubmissionContext, entity: EntityPlan, frame: Frame, values: dict[str, JsonValue]
) -> None:
    """Add the values of `entity`'s bound fields in `frame` to `values`: only relevant, answered
    fields (calculations: non-null results) write."""
    instance = frame.instance
    known = frame.values
    relevance = frame.relevance
    for f, register_field in entity.bound:
        if f.relevant is not None and not (relevance.get(f.name) or context.relevant(frame, f)):
            continue
        raw = instance.get(f.name)
        if f.type is not _CALCULATED and (raw is None or raw == ""):
            continue
        value = known[f.name] if f.name in known else context.value(frame, f)
        if value is None:
            continue
        if f.type is _DATETIME:
            # As given: the offset the tablet wrote is kept.
            if isinstance(raw, str):
                values[register_field] = raw
            continue
        values[register_field] = to_json_value(value)


def to_json_value(value: Value) -> JsonValue:
    """A typed value in its register form: ISO dates, whole floats as int, sorted selections."""
    kind = type(value)
    if kind is str or kind is bool or kind is int:  # the commonest, as they are
        return value  # type: ignore[return-value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return sorted(set(value))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
