"""The binding step: from a validated submission to the register writes it asks for, one
EntityUpdate per entity instance, with normalised JSON values.

Pure: it decides what to write, never writes, merges or looks anything up in the register.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from forms.answer_types import is_unanswered, is_valid_uuid
from forms.answers import Frame, FrameChain, SubmissionContext
from forms.definition import Entity, Field, FieldType, FormDefinition
from forms.expressions import Value
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
    context = SubmissionContext(
        definition, data, today=today or date.today(), now=now or datetime.now(UTC)
    )
    return updates_in(context)


def updates_in(context: SubmissionContext) -> list[EntityUpdate]:
    """`derive_register_updates` on answers already read into a context."""
    definition = context.definition
    by_name = {entity.name: entity for entity in definition.entities}
    updates: list[EntityUpdate] = []
    for entity in definition.entities:
        for chain in _chains_for(context, entity.scope):
            update = _update_for(context, entity, chain, by_name)
            if update is not None:
                updates.append(update)
    return updates


def _chains_for(context: SubmissionContext, scope: tuple[str, ...]) -> list[FrameChain]:
    chains: list[FrameChain] = [context.root]
    for step in scope:
        chains = [
            (*chain, frame)
            for chain in chains
            for frame in context.instances(
                chain, context.definition.fields_in(chain[-1].scope)[step]
            )
        ]
    return chains


def _entity_id(context: SubmissionContext, entity: Entity, chain: FrameChain) -> str | None:
    id_field = context.definition.fields_in(entity.scope)[entity.id_field]
    if not context.relevant(chain, id_field):
        return None
    raw = chain[-1].instance.get(entity.id_field)
    if not is_valid_uuid(raw):
        raise BindingError(f"{chain[-1].path}.{entity.id_field}: entity id must be a UUID")
    assert isinstance(raw, str)
    return raw.lower()


def _update_for(
    context: SubmissionContext,
    entity: Entity,
    chain: FrameChain,
    entities: dict[str, Entity],
) -> EntityUpdate | None:
    entity_id = _entity_id(context, entity, chain)
    if entity_id is None:
        return None
    parent: tuple[EntityType, str] | None = None
    values: dict[str, JsonValue] = {}
    if entity.parent is not None:
        parent_entity = entities[entity.parent]
        parent_id = _entity_id(context, parent_entity, chain[: len(parent_entity.scope) + 1])
        if parent_id is None:
            raise BindingError(f"{chain[-1].path}: the parent entity {entity.parent} has no id")
        parent = (parent_entity.type, parent_id)
        if entity.type == "member":
            values["household_id"] = parent_id
    frame = chain[-1]
    for f, register_field in _bound_fields(context.definition, entity):
        value = _bound_value(context, chain, frame, f)
        if value is not _NO_WRITE:
            values[register_field] = value  # type: ignore[assignment]
    return EntityUpdate(
        entity=entity.name,
        type=entity.type,
        id=entity_id,
        create=entity.create,
        parent=parent,
        fields=dict(sorted(values.items())),
        path=frame.path,
    )


def _bound_fields(definition: FormDefinition, entity: Entity) -> list[tuple[Field, str]]:
    """The fields of `entity`'s scope bound to it, each with its register field, in order
    (remembered with the definition)."""
    key = ("bound_fields", entity.name)
    bound: list[tuple[Field, str]] | None = definition.memo.get(key)
    if bound is None:
        bound = definition.memo[key] = [
            (f, binding[1])
            for f in definition.fields_in(entity.scope).values()
            if (binding := f.binding) is not None and binding[0] == entity.name
        ]
    return bound


_NO_WRITE = object()


def _bound_value(
    context: SubmissionContext, chain: FrameChain, frame: Frame, f: Field
) -> JsonValue | object:
    if not context.relevant(chain, f):
        return _NO_WRITE
    if f.type is not FieldType.CALCULATED and is_unanswered(frame.instance.get(f.name)):
        return _NO_WRITE
    value = context.value(chain, f)
    if value is None:
        return _NO_WRITE
    if f.type is FieldType.DATETIME:
        raw = frame.instance.get(f.name)
        return raw if isinstance(raw, str) else _NO_WRITE
    return to_json_value(value)


def to_json_value(value: Value) -> JsonValue:
    """A typed value in its register form: ISO dates, whole floats as int, sorted selections."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return sorted(set(value))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
