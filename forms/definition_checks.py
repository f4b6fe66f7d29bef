"""The meaning checks of a form definition after its shape was read: names, types and their
attributes, choice lists, entities and bindings, expression references, dependency cycles.

Reports problems as ValidationIssues with JSON paths (`fields[2].fields[0].bind`); never raises on
a bad definition and never consults the register (see `compatibility` for that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from forms.answer_types import parse_iso_date, parse_rfc3339, parse_time
from forms.definition import (
    CHOICE_TYPES,
    NUMERIC_TYPES,
    TEXT_TYPES,
    VALUE_TYPES,
    Field,
    FieldType,
    FormDefinition,
)
from forms.expressions import Expression
from forms.expressions.nodes import iter_references
from forms.expressions.patterns import UnsafePatternError, compile_safe_pattern
from forms.issues import IssueCode, ValidationIssue
from forms.scopes import AmbiguousReference, resolve_reference

MAX_REPEAT_DEPTH = 4


@dataclass(frozen=True)
class PlacedField:
    """A field with where it is: its JSON path in the definition and its scope (repeat path)."""

    json_path: str
    scope: tuple[str, ...]
    field: Field

    @property
    def name_path(self) -> str:
        return ".".join((*self.scope, self.field.name))


def indexed_fields(
    fields: tuple[Field, ...], prefix: str = "fields"
) -> Iterator[tuple[str, Field]]:
    """Every field with its JSON path (`fields[3].fields[0]`), depth first, in order."""
    for placed in placed_fields(fields, prefix, ()):
        yield placed.json_path, placed.field


def placed_fields(
    fields: tuple[Field, ...], prefix: str = "fields", scope: tuple[str, ...] = ()
) -> Iterator[PlacedField]:
    """Every field with its JSON path and scope, depth first, in order."""
    for index, f in enumerate(fields):
        path = f"{prefix}[{index}]"
        yield PlacedField(path, scope, f)
        if f.type is FieldType.REPEAT:
            yield from placed_fields(f.fields, f"{path}.fields", (*scope, f.name))


def check_definition(definition: FormDefinition) -> list[ValidationIssue]:
    """Every meaning problem of `definition` (empty when there is none). See docs/forms.md."""
    checker = _Checker(definition)
    checker.run()
    return checker.issues


class _Checker:
    def __init__(self, definition: FormDefinition) -> None:
        self.definition = definition
        self.issues: list[ValidationIssue] = []
        self.placed = list(placed_fields(definition.fields))

    def report(self, path: str, code: IssueCode, message: str) -> None:
        self.issues.append(ValidationIssue(path, code, message))

    def run(self) -> None:
        self.names()
        self.choice_lists()
        for placed in self.placed:
            self.attributes(placed)
        self.entities()
        self.bindings()
        self.expressions()
        self.cycles()

    def names(self) -> None:
        seen: dict[tuple[str, ...], set[str]] = {}
        for placed in self.placed:
            names = seen.setdefault(placed.scope, set())
            if placed.field.name in names:
                self.report(
                    f"{placed.json_path}.name",
                    IssueCode.DUPLICATE_NAME,
                    f"{placed.name_path}: another field of this scope has the same name",
                )
            names.add(placed.field.name)
            if len(placed.scope) > MAX_REPEAT_DEPTH:
                self.report(
                    placed.json_path,
                    IssueCode.INVALID_DEFINITION,
                    f"repeats may be nested at most {MAX_REPEAT_DEPTH} deep",
                )

    def choice_lists(self) -> None:
        for name, choices in self.definition.choice_lists.items():
            counts = Counter(choice.code for choice in choices)  # linear: lists run to 10,000s
            for duplicate in sorted(code for code, n in counts.items() if n > 1):
                self.report(
                    f"choice_lists.{name}",
                    IssueCode.DUPLICATE_NAME,
                    f"choice code {duplicate!r} appears more than once",
                )

    def attributes(self, placed: PlacedField) -> None:
        f, path, name = placed.field, placed.json_path, placed.name_path

        def refuse(key: str, present: object, allowed: str) -> None:
            if present is not None and present is not False and present != ():
                self.report(
                    f"{path}.{key}",
                    IssueCode.INVALID_DEFINITION,
                    f"{name}: '{key}' is only allowed on {allowed}",
                )

        numeric_or_dates = {
            FieldType.INTEGER,
            FieldType.DECIMAL,
            FieldType.DATE,
            FieldType.DATETIME,
            FieldType.TIME,
        }
        if f.type not in numeric_or_dates:
            refuse("min", f.minimum, "numbers, dates and times")
            refuse("max", f.maximum, "numbers, dates and times")
        else:
            self.bounds(placed)
        if f.type not in NUMERIC_TYPES:
            refuse("step", f.step, "integer and decimal fields")
        elif f.step is not None and f.type is FieldType.INTEGER and f.step != int(f.step):
            self.report(
                f"{path}.step",
                IssueCode.INVALID_DEFINITION,
                f"{name}: the step of an integer field must be a whole number",
            )
        if f.type not in TEXT_TYPES:
            refuse("min_length", f.min_length, "text and barcode")
            refuse("max_length", f.max_length, "text and barcode")
            refuse("pattern", f.pattern, "text and barcode")
        if f.min_length is not None and f.max_length is not None and f.min_length > f.max_length:
            self.report(f"{path}.min_length", IssueCode.INVALID_DEFINITION, "above max_length")
        if f.pattern is not None:
            try:
                compile_safe_pattern(f.pattern)
            except UnsafePatternError as err:
                self.report(f"{path}.pattern", IssueCode.INVALID_PATTERN, f"{name}: {err}")
        if f.type in CHOICE_TYPES:
            self.select(placed)
        else:
            refuse("choices", f.choices, "select_one, select_multiple and rank")
            refuse("choice_filter", f.choice_filter, "select_one, select_multiple and rank")
            refuse("choices_file", f.choices_file, "select_one, select_multiple and rank")
        if f.type is FieldType.CALCULATED:
            if f.calculation is None:
                self.report(
                    f"{path}.calculation",
                    IssueCode.INVALID_DEFINITION,
                    f"{name}: a calculated field needs a calculation",
                )
            if f.value_type is not None and f.value_type not in VALUE_TYPES:
                self.report(
                    f"{path}.value_type",
                    IssueCode.INVALID_DEFINITION,
                    f"{name}: value_type must be one of "
                    + ", ".join(sorted(t.value for t in VALUE_TYPES)),
                )
        else:
            refuse("calculation", f.calculation, "calculated fields")
            refuse("value_type", f.value_type, "calculated fields")
        if f.type is not FieldType.ATTACHMENT:
            refuse("media", f.media, "attachments")
        if f.type is FieldType.REPEAT:
            if not f.fields:
                self.report(
                    f"{path}.fields", IssueCode.INVALID_DEFINITION, f"{name}: a repeat needs fields"
                )
            if f.min_count is not None and f.max_count is not None and f.min_count > f.max_count:
                self.report(f"{path}.min_count", IssueCode.INVALID_DEFINITION, "above max_count")
            refuse("bind", f.bind, "questions")
            refuse("constraint", f.constraint, "questions")
        else:
            refuse("fields", f.fields, "repeats")
            refuse("min_count", f.min_count, "repeats")
            refuse("max_count", f.max_count, "repeats")
            refuse("count", f.count, "repeats")
        if f.type in (FieldType.NOTE, FieldType.CALCULATED):
            refuse("required", f.required, "questions")
            refuse("constraint", f.constraint, "questions")
        if f.type is FieldType.NOTE:
            refuse("bind", f.bind, "questions")
        if f.constraint_message is not None and f.constraint is None:
            self.report(
                f"{path}.constraint_message",
                IssueCode.INVALID_DEFINITION,
                f"{name}: constraint_message without a constraint",
            )

    def bounds(self, placed: PlacedField) -> None:
        f = placed.field
        parsed: dict[str, object] = {}
        for key, bound in (("min", f.minimum), ("max", f.maximum)):
            if bound is None:
                continue
            if f.type in (FieldType.INTEGER, FieldType.DECIMAL):
                value: object = bound if not isinstance(bound, str) else None
                expected = "a number"
            elif f.type is FieldType.DATE:
                value = parse_iso_date(bound)
                expected = "a date YYYY-MM-DD"
            elif f.type is FieldType.TIME:
                value = parse_time(bound)
                expected = "a time HH:MM or HH:MM:SS"
            else:
                value = parse_rfc3339(bound)
                expected = "an RFC 3339 date-time with offset"
            if value is None:
                self.report(
                    f"{placed.json_path}.{key}",
                    IssueCode.INVALID_DEFINITION,
                    f"{placed.name_path}: {key} must be {expected}",
                )
            else:
                parsed[key] = value
        if len(parsed) == 2 and parsed["min"] > parsed["max"]:  # type: ignore[operator]
            self.report(
                f"{placed.json_path}.min",
                IssueCode.INVALID_DEFINITION,
                f"{placed.name_path}: min is above max",
            )

    def select(self, placed: PlacedField) -> None:
        f = placed.field
        if f.choices is None:
            self.report(
                f"{placed.json_path}.choices",
                IssueCode.INVALID_DEFINITION,
                f"{placed.name_path}: a select needs choices",
            )
            return
        if isinstance(f.choices, str):
            if f.choices not in self.definition.choice_lists:
                self.report(
                    f"{placed.json_path}.choices",
                    IssueCode.UNKNOWN_CHOICE_LIST,
                    f"{placed.name_path}: no choice list named {f.choices!r}",
                )
                return
        else:
            codes = [choice.code for choice in f.choices]
            for duplicate in sorted({code for code in codes if codes.count(code) > 1}):
                self.report(
                    f"{placed.json_path}.choices",
                    IssueCode.DUPLICATE_NAME,
                    f"{placed.name_path}: choice code {duplicate!r} appears more than once",
                )
        if f.choice_filter is not None:
            columns = {"name"}
            for choice in self.definition.choices_for(f):
                columns.update(choice.attributes)
            for column in f.choice_filter.choice_properties:
                if column not in columns:
                    self.report(
                        f"{placed.json_path}.choice_filter",
                        IssueCode.UNKNOWN_REFERENCE,
                        f"{placed.name_path}: the choices have no column {column!r}",
                    )

    def entities(self) -> None:
        by_name = {}
        for index, entity in enumerate(self.definition.entities):
            path = f"entities[{index}]"
            if entity.name in by_name:
                self.report(
                    f"{path}.name", IssueCode.DUPLICATE_NAME, f"entity {entity.name!r} twice"
                )
            by_name[entity.name] = entity
            scope = entity.scope
            if scope:
                repeat = self.definition.find_field(scope)
                if repeat is None or repeat.type is not FieldType.REPEAT:
                    self.report(
                        f"{path}.repeat",
                        IssueCode.INVALID_ENTITY,
                        f"{entity.name}: no repeat at {entity.repeat!r}",
                    )
                    continue
            id_field = self.definition.fields_in(scope).get(entity.id_field)
            if id_field is None:
                where = f"repeat {entity.repeat!r}" if scope else "the top level"
                self.report(
                    f"{path}.id_field",
                    IssueCode.INVALID_ENTITY,
                    f"{entity.name}: no field {entity.id_field!r} in {where}",
                )
            elif id_field.type is not FieldType.TEXT:
                self.report(
                    f"{path}.id_field",
                    IssueCode.INVALID_ENTITY,
                    f"{entity.name}: the id field must be a text field (it holds a UUID)",
                )
        for index, entity in enumerate(self.definition.entities):
            path = f"entities[{index}]"
            if entity.type == "household" and entity.parent is not None:
                self.report(
                    f"{path}.parent", IssueCode.INVALID_ENTITY, "a household has no parent entity"
                )
            if entity.type == "member":
                parent = by_name.get(entity.parent) if entity.parent else None
                if parent is None or parent.type != "household":
                    self.report(
                        f"{path}.parent",
                        IssueCode.INVALID_ENTITY,
                        f"{entity.name}: a member entity needs a household entity as parent",
                    )
                elif entity.scope[: len(parent.scope)] != parent.scope:
                    self.report(
                        f"{path}.parent",
                        IssueCode.INVALID_ENTITY,
                        f"{entity.name}: the parent must be at the top level or in an "
                        "enclosing repeat",
                    )

    def bindings(self) -> None:
        entities = {entity.name: entity for entity in self.definition.entities}
        seen: set[tuple[str, str]] = set()
        for placed in self.placed:
            binding = placed.field.binding
            if binding is None:
                continue
            path = f"{placed.json_path}.bind"
            entity = entities.get(binding[0])
            if entity is None:
                self.report(
                    path,
                    IssueCode.UNKNOWN_ENTITY,
                    f"{placed.name_path}: no entity named {binding[0]!r}",
                )
                continue
            if entity.scope != placed.scope:
                inside = f"repeat {entity.repeat!r}" if entity.scope else "the top level"
                self.report(
                    path,
                    IssueCode.BINDING_SCOPE,
                    f"{placed.name_path}: entity {entity.name!r} lives in {inside}; only fields "
                    "there can be bound to it",
                )
            if binding in seen:
                self.report(
                    path,
                    IssueCode.DUPLICATE_BINDING,
                    f"{placed.name_path}: {placed.field.bind} is bound by another field too",
                )
            seen.add(binding)

    def expressions(self) -> None:
        for placed in self.placed:
            for key, expression in _expressions_of(placed.field):
                self.references(placed, key, expression)

    def references(self, placed: PlacedField, key: str, expression: Expression) -> None:
        path = f"{placed.json_path}.{key}"
        for reference, aggregated in iter_references(expression.root):
            where = f"{placed.name_path}: ${{{reference.name}}} (at character {reference.position})"
            try:
                resolved = resolve_reference(self.definition, placed.scope, reference.name)
            except AmbiguousReference:
                self.report(
                    path,
                    IssueCode.UNKNOWN_REFERENCE,
                    f"{where} is ambiguous: several repeats have a field of that name",
                )
                continue
            if resolved is None:
                self.report(path, IssueCode.UNKNOWN_REFERENCE, f"{where}: no such field")
            elif resolved.is_many and not aggregated:
                self.report(
                    path,
                    IssueCode.INVALID_EXPRESSION,
                    f"{where} stands for many values: use it inside count() or sum()",
                )

    def cycles(self) -> None:
        # Values depend on relevance and calculations of the fields they reference.
        graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        json_paths: dict[tuple[str, ...], str] = {}
        for placed in self.placed:
            node = (*placed.scope, placed.field.name)
            json_paths[node] = placed.json_path
            edges = graph.setdefault(node, set())
            for expression in (placed.field.relevant, placed.field.calculation):
                if expression is None:
                    continue
                for name in expression.references:
                    try:
                        resolved = resolve_reference(self.definition, placed.scope, name)
                    except AmbiguousReference:
                        continue
                    if resolved is not None:
                        edges.add(resolved.target)
            if placed.scope:  # a field depends on its repeat's relevance
                edges.add(placed.scope)
        for node in _nodes_on_cycles(graph):
            self.report(
                json_paths[node],
                IssueCode.DEPENDENCY_CYCLE,
                f"{'.'.join(node)}: its relevance or calculation depends on itself",
            )


def _expressions_of(f: Field) -> list[tuple[str, Expression]]:
    candidates: list[tuple[str, Expression | bool | None]] = [
        ("required", f.required),
        ("relevant", f.relevant),
        ("constraint", f.constraint),
        ("choice_filter", f.choice_filter),
        ("calculation", f.calculation),
        ("count", f.count),
    ]
    return [(key, e) for key, e in candidates if isinstance(e, Expression)]


def _nodes_on_cycles(
    graph: dict[tuple[str, ...], set[tuple[str, ...]]],
) -> list[tuple[str, ...]]:
    """Nodes that can reach themselves, in graph order (iterative DFS, no recursion limit)."""
    on_cycle: list[tuple[str, ...]] = []
    for start in graph:
        seen: set[tuple[str, ...]] = set()
        stack = list(graph.get(start, ()))
        while stack:
            node = stack.pop()
            if node == start:
                on_cycle.append(start)
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend(graph.get(node, ()))
    return on_cycle
