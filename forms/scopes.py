"""How a `${name}` in an expression finds its field: in the expression's own repeat instance
first, then in each enclosing scope outward, and finally (as many values) inside other repeats.

Static: works on the definition alone, never on answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from forms.definition import FieldType, FormDefinition


@dataclass(frozen=True)
class ResolvedReference:
    """Where a reference points: the field's full path, and whether it stands for many values
    (a repeat itself, or a field of a repeat that does not enclose the expression)."""

    target: tuple[str, ...]
    is_many: bool


class AmbiguousReference(LookupError):
    """The name is in no enclosing scope and in more than one other repeat."""


def resolve_reference(
    definition: FormDefinition, scope: tuple[str, ...], name: str
) -> ResolvedReference | None:
    """Resolve `${name}` written in a field of `scope`; None if no field has that name.

    Raises AmbiguousReference when the name only exists in several non-enclosing repeats.
    """
    for depth in range(len(scope), -1, -1):
        enclosing = scope[:depth]
        found = definition.fields_in(enclosing).get(name)
        if found is not None:
            return ResolvedReference(
                target=(*enclosing, name), is_many=found.type is FieldType.REPEAT
            )
    candidates = [path for path, f in definition.iter_fields() if f.name == name]
    if not candidates:
        return None
    if len(candidates) > 1:
        raise AmbiguousReference(name)
    return ResolvedReference(target=candidates[0], is_many=True)
