"""What changed between two versions of a form: fields added, removed and changed (with which
aspects), by field path (`members.name`), plus form-level changes.

Compares definitions only; never decides whether a change is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forms.definition import Field, FormDefinition


@dataclass(frozen=True)
class FieldChange:
    """A field present in both versions whose `aspects` (sorted keys such as `type`, `label`,
    `choices`, `bind`, `relevant`) differ."""

    path: str
    aspects: tuple[str, ...]


@dataclass(frozen=True)
class FormDiff:
    """Field paths added and removed, fields changed, and form-level aspects changed (`title`,
    `entities`)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[FieldChange, ...] = ()
    form: tuple[str, ...] = field(default=())

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.form)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [{"path": c.path, "aspects": list(c.aspects)} for c in self.changed],
            "form": list(self.form),
        }


def diff_definitions(old: FormDefinition, new: FormDefinition) -> FormDiff:
    """The differences from `old` to `new`.

    Fields are matched by path (a renamed field is one removal and one addition). A select's
    `choices` count as changed when the resolved choices (codes, labels, columns) differ, even
    if both name the same list. The version number is ignored.
    """
    old_fields = {".".join(path): f for path, f in old.iter_fields()}
    new_fields = {".".join(path): f for path, f in new.iter_fields()}
    changed = []
    for path in old_fields.keys() & new_fields.keys():
        aspects = _changed_aspects(old, old_fields[path], new, new_fields[path])
        if aspects:
            changed.append(FieldChange(path, aspects))
    form_aspects = [
        name
        for name, before, after in (
            ("title", old.title, new.title),
            ("entities", old.entities, new.entities),
            ("form_id", old.form_id, new.form_id),
        )
        if before != after
    ]
    return FormDiff(
        added=tuple(p for p in new_fields if p not in old_fields),
        removed=tuple(p for p in old_fields if p not in new_fields),
        changed=tuple(sorted(changed, key=lambda c: c.path)),
        form=tuple(form_aspects),
    )


def _changed_aspects(
    old: FormDefinition, before: Field, new: FormDefinition, after: Field
) -> tuple[str, ...]:
    a, b = before.to_dict(), after.to_dict()
    aspects = {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}
    aspects.discard("fields")  # children are compared by their own paths
    aspects.discard("choices")  # compared by content below: a renamed list is no change
    if old.choices_for(before) != new.choices_for(after):
        aspects.add("choices")
    return tuple(sorted(aspects))
