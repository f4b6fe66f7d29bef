"""Whether a definition's bindings fit the household register: the fields exist, the answer types
match the register kinds, choice codes are the register's, and server-owned fields stay untouched.

Reads only `forms.register`; never the stored register or the database.
"""

from __future__ import annotations

from forms.definition import Field, FieldType, FormDefinition
from forms.definition_checks import placed_fields
from forms.issues import IssueCode, ValidationIssue
from forms.register import FieldKind, RegisterField, find_register_field

ACCEPTED_KINDS: dict[FieldType, frozenset[str]] = {
    FieldType.TEXT: frozenset({"text"}),
    FieldType.BARCODE: frozenset({"text"}),
    FieldType.INTEGER: frozenset({"integer", "decimal"}),
    FieldType.DECIMAL: frozenset({"decimal"}),
    FieldType.BOOLEAN: frozenset({"boolean"}),
    FieldType.DATE: frozenset({"date"}),
    FieldType.SELECT_ONE: frozenset({"select_one"}),
    FieldType.SELECT_MULTIPLE: frozenset({"select_multiple"}),
}
"""Which register kinds each answer type may be bound to (a whole number fits a decimal field;
a decimal never fits an integer field; a scanned barcode is text). Time, geotrace, geoshape, rank
and attachments (every media) bind to nothing: the register has no such columns."""

DERIVED_FIELDS: dict[str, frozenset[str]] = {"member": frozenset({"household_id"})}
"""Register fields a binding step fills by itself (a member's household is its parent entity)."""


def check_register_compatibility(definition: FormDefinition) -> list[ValidationIssue]:
    """Every binding of `definition` that does not fit the register; empty when all fit.

    Codes: `unknown_register_field`; `field_read_only` (server-owned fields such as
    `monitoring_status`, and fields derived by binding such as a member's `household_id`);
    `incompatible_type` (see ACCEPTED_KINDS; calculated fields use their `value_type`; notes,
    repeats, geopoints, geotraces, geoshapes, ranks, times, attachments and date-times bind to
    nothing; also a declared `max_length`,
    `min` or `max` beyond what the register column holds); `invalid_choice` (a select's
    codes must all be codes of the register field's enumeration). Paths are `fields[…].bind`.
    """
    entities = {entity.name: entity for entity in definition.entities}
    issues: list[ValidationIssue] = []
    for placed in placed_fields(definition.fields):
        f = placed.field
        binding = f.binding
        if binding is None or binding[0] not in entities:
            continue  # unknown entities are reported by load_definition
        entity_type = entities[binding[0]].type
        path = f"{placed.json_path}.bind"
        label = f"{placed.name_path} → {f.bind}"
        register_field = find_register_field(entity_type, binding[1])
        if register_field is None:
            issues.append(
                ValidationIssue(
                    path,
                    IssueCode.UNKNOWN_REGISTER_FIELD,
                    f"{label}: the {entity_type} register has no field {binding[1]!r}",
                )
            )
            continue
        if register_field.server_owned:
            issues.append(
                ValidationIssue(
                    path,
                    IssueCode.FIELD_READ_ONLY,
                    f"{label}: owned by the review workflow, a form may not write it",
                )
            )
            continue
        if binding[1] in DERIVED_FIELDS.get(entity_type, frozenset()):
            issues.append(
                ValidationIssue(
                    path,
                    IssueCode.FIELD_READ_ONLY,
                    f"{label}: filled from the parent entity, a form may not write it",
                )
            )
            continue
        if not _kind_fits(f, register_field.kind):
            issues.append(
                ValidationIssue(
                    path,
                    IssueCode.INCOMPATIBLE_TYPE,
                    f"{label}: a {f.result_type.value} answer cannot fill a "
                    f"{register_field.kind} register field",
                )
            )
            continue
        too_wide = _wider_than_column(f, register_field)
        if too_wide:
            issues.append(
                ValidationIssue(path, IssueCode.INCOMPATIBLE_TYPE, f"{label}: {too_wide}")
            )
            continue
        if register_field.choices is not None and f.result_type in ACCEPTED_KINDS and f.choices:
            extra = [
                choice.code
                for choice in definition.choices_for(f)
                if choice.code not in register_field.choices.codes()
            ]
            if extra:
                issues.append(
                    ValidationIssue(
                        path,
                        IssueCode.INVALID_CHOICE,
                        f"{label}: codes not in the register's list: {', '.join(extra)}",
                    )
                )
    return issues


def _kind_fits(f: Field, kind: FieldKind) -> bool:
    if f.type is FieldType.CALCULATED and f.value_type is None:
        return False
    return kind in ACCEPTED_KINDS.get(f.result_type, frozenset())


def _wider_than_column(f: Field, register_field: RegisterField) -> str | None:
    """Why the bounds `f` declares let through values its register column cannot hold, or None.
    (Undeclared bounds are fine: the answer is then checked against the column on arrival.)"""
    column_length = register_field.max_length
    if column_length is not None and f.max_length is not None and f.max_length > column_length:
        return f"max_length {f.max_length} is longer than the register's {column_length} characters"
    limit = register_field.limit
    if limit is not None:
        for key, bound in (("min", f.minimum), ("max", f.maximum)):
            is_number = isinstance(bound, int | float) and not isinstance(bound, bool)
            if is_number and not -limit <= bound <= limit:  # type: ignore[operator]
                return f"{key} {bound} is beyond the register's limit of ±{limit}"
    return None
