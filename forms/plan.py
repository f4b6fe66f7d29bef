"""What checking a submission needs from its definition, derived once and kept with it.

For each scope (the top level, each repeat): its fields by name, the ones validation visits in
order, and for each field its expressions compiled, its bounds parsed, the choice codes it
accepts, its messages and whether it is an entity id; where each `${name}` written in the scope
points. For each entity: the repeats that lead to its instances, its id field and the fields bound
to it.

Static: reads the definition alone, never answers. `plan_for` builds a definition's plan on first
use and keeps it in `definition.memo`, so every submission read against the definition shares it.
Building never fails on a definition whose attributes have their declared types, even one built
by hand without `load_definition`'s checks: what cannot work (a missing repeat or id field, an
expression tree that does not compile) is left to fail where it did before (see `EntityPlan`,
`compile_expression`), so callers see the same errors at the same points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from forms.answer_types import Reader, parse_iso_date, parse_rfc3339, parse_time, reader_for
from forms.definition import (
    CHOICE_TYPES,
    TEXT_TYPES,
    Entity,
    Field,
    FieldType,
    FormDefinition,
    Text,
)
from forms.expressions import (
    Condition,
    Expression,
    Program,
    Value,
    compile_condition,
    compile_expression,
)
from forms.expressions.patterns import UnsafePatternError, compile_safe_pattern
from forms.scopes import AmbiguousReference, resolve_reference

Scope = tuple[str, ...]

_MEMO_KEY = "submission_plan"
_UNCHECKED = frozenset({FieldType.NOTE, FieldType.CALCULATED})
_BOUNDED = frozenset(
    {FieldType.INTEGER, FieldType.DECIMAL, FieldType.DATE, FieldType.DATETIME, FieldType.TIME}
)


def plan_for(definition: FormDefinition) -> SubmissionPlan:
    """The plan of `definition`, built on first use and then kept with the definition."""
    plan: SubmissionPlan | None = definition.memo.get(_MEMO_KEY)
    if plan is None:
        # Two threads may both build it; the plans are equal and either one may be kept.
        plan = definition.memo[_MEMO_KEY] = SubmissionPlan(definition)
    return plan


@dataclass(frozen=True, slots=True, eq=False)
class Limits:
    """The limits of a field's answered, well-formed value: `low`/`high` (parsed bounds of a
    number, date or datetime field, None when absent or unreadable), lengths and pattern of a text
    field, and the messages they report."""

    low: Any
    high: Any
    below_message: str
    above_message: str
    min_length: int | None
    max_length: int | None
    matches: Callable[[str], bool] | None
    """Whether a text has the field's `pattern` (an unsafe pattern matches nothing)."""
    step: Decimal | None = None
    """A number field's `step`, exactly as written: answers must be `origin` plus a whole
    multiple of it."""
    origin: Decimal = Decimal(0)
    """Where the step grid starts: the field's `min`, else 0."""
    step_message: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Choices:
    """The choices a select or rank field accepts: the codes of its list or, when it has a choice
    `filter`, those the filter keeps, judging each choice by its `columns` (`name` is the code).
    `every` (rank fields): the answer must hold every accepted code."""

    codes: frozenset[str]
    filter: Condition | None
    columns: tuple[tuple[str, Mapping[str, Value]], ...]
    every: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class FieldPlan:
    """One field as submissions are checked against it.

    `relevant`, `calculation` (calculated fields only), `required_when` (a required expression,
    not for id fields) and `constraint` are compiled (the conditions give their truth); `reader`
    reads an answered raw value as the field's type (None: the type holds no answer).
    `required` is what a plain `required: true` or being an entity id field says. `children` is
    the scope of a repeat's instances.
    """

    field: Field
    name: str
    path: Scope
    type: FieldType
    relevant: Condition | None
    calculation: Program | None
    reader: Reader | None
    is_id: bool
    required: bool
    required_when: Condition | None
    limits: Limits | None
    choices: Choices | None
    constraint: Condition | None
    constraint_message: str
    children: ScopePlan | None
    count: Program | None = None
    """A repeat's compiled `count` (how many instances it must have), or None."""


@dataclass(frozen=True, slots=True, eq=False)
class OneValue:
    """A `${name}` that stands for one value: `field`'s, in the enclosing instance at `depth`
    (0 is the top level) of the chain the expression is evaluated in."""

    depth: int
    field: FieldPlan


@dataclass(frozen=True, slots=True, eq=False)
class ManyValues:
    """A `${name}` that stands for many values: starting from the enclosing instance at `common`
    depth, the instances of each repeat of `steps` in turn, then `field`'s value in each (or, when
    `field` is itself a repeat, one `True` per instance of it)."""

    common: int
    steps: tuple[FieldPlan, ...]
    field: FieldPlan


Reference = OneValue | ManyValues | None
"""Where a `${name}` points; None when it points nowhere (unknown or ambiguous): it is null."""


class References(dict[str, Reference]):
    """Where each `${name}` written in one scope points, resolved on first use and kept."""

    __slots__ = ("_resolve",)

    def __init__(self, resolve: Callable[[str], Reference]) -> None:
        super().__init__()
        self._resolve = resolve

    def __missing__(self, name: str) -> Reference:
        found = self[name] = self._resolve(name)
        return found


@dataclass(frozen=True, slots=True, eq=False)
class ScopePlan:
    """The top level (`scope` is `()`) or the instances of one repeat: `fields` by name as the
    definition lists them in the scope, `checked` the ones validation visits (not notes or
    calculations), in order, and `references` for the expressions evaluated in the scope."""

    scope: Scope
    fields: dict[str, FieldPlan]
    checked: tuple[FieldPlan, ...]
    references: References


@dataclass(frozen=True, slots=True, eq=False)
class EntityPlan:
    """How an entity's instances are found and bound: through the repeats of `steps` from the top
    level, their `id_field`, and the `bound` fields with their register field.

    A definition built by hand (unchecked) may name a repeat or id field that does not exist:
    `missing_step` is the first such repeat (the steps stop before it) and `id_field` is None;
    binding then fails with KeyError when it reaches them, as it always did.
    """

    entity: Entity
    steps: tuple[FieldPlan, ...]
    missing_step: str | None
    id_field: FieldPlan | None
    bound: tuple[tuple[FieldPlan, str], ...]


class SubmissionPlan:
    """Everything static about checking submissions against one definition (see the module)."""

    def __init__(self, definition: FormDefinition) -> None:
        self.definition = definition
        self._id_fields = {(entity.scope, entity.id_field) for entity in definition.entities}
        self._scopes: dict[Scope, ScopePlan] = {}
        # Deepest scopes first, so that a repeat's field plan can point to its instances' scope.
        for scope in sorted(definition.scopes, key=len, reverse=True):
            self._scopes[scope] = self._scope_plan(scope)
        self.root = self.scope(())
        self.entities = tuple(self._entity_plan(entity) for entity in definition.entities)
        self.entities_by_name = {plan.entity.name: plan for plan in self.entities}

    def scope(self, scope: Scope) -> ScopePlan:
        """The plan of `scope`; a scope the definition does not have has no fields."""
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = self._scope_plan(scope)
        return found

    def _scope_plan(self, scope: Scope) -> ScopePlan:
        fields = {
            name: self._field_plan(scope, f) for name, f in self.definition.fields_in(scope).items()
        }
        checked = tuple(plan for plan in fields.values() if plan.type not in _UNCHECKED)
        return ScopePlan(
            scope, fields, checked, References(lambda name: self._resolve(scope, name))
        )

    def _field_plan(self, scope: Scope, f: Field) -> FieldPlan:
        is_id = (scope, f.name) in self._id_fields
        required_when = None
        if not is_id and isinstance(f.required, Expression):
            required_when = compile_condition(f.required)
        path = (*scope, f.name)
        return FieldPlan(
            field=f,
            name=f.name,
            path=path,
            type=f.type,
            relevant=_condition(f.relevant),
            calculation=(
                compile_expression(f.calculation)
                if f.type is FieldType.CALCULATED and f.calculation is not None
                else None
            ),
            reader=reader_for(f.type, f.media),
            is_id=is_id,
            required=is_id or f.required is True,
            required_when=required_when,
            limits=_limits(f),
            choices=self._choices(f),
            constraint=_condition(f.constraint),
            constraint_message=(
                str(f.constraint_message)
                if isinstance(f.constraint_message, Text)
                else f"constraint not met: {f.constraint.source}"
                if f.constraint is not None
                else ""
            ),
            children=self._scopes.get(path) if f.type is FieldType.REPEAT else None,
            count=(
                compile_expression(f.count)
                if f.type is FieldType.REPEAT and f.count is not None
                else None
            ),
        )

    def _choices(self, f: Field) -> Choices | None:
        if f.type not in CHOICE_TYPES:
            return None
        choices = self.definition.choices_for(f)
        codes = frozenset(choice.code for choice in choices)
        every = f.type is FieldType.RANK
        if f.choice_filter is None:
            return Choices(codes, None, (), every)
        columns = tuple(
            (choice.code, MappingProxyType({**choice.attributes, "name": choice.code}))
            for choice in choices
        )
        return Choices(codes, compile_condition(f.choice_filter), columns, every)

    def _resolve(self, scope: Scope, name: str) -> Reference:
        try:
            resolved = resolve_reference(self.definition, scope, name)
        except AmbiguousReference:
            return None
        if resolved is None:
            return None
        target_scope, target_name = resolved.target[:-1], resolved.target[-1]
        target = self.scope(target_scope).fields[target_name]
        if not resolved.is_many:
            return OneValue(len(target_scope), target)
        common = 0
        while common < min(len(scope), len(target_scope)) and (
            scope[common] == target_scope[common]
        ):
            common += 1
        steps = tuple(
            self.scope(target_scope[:depth]).fields[target_scope[depth]]
            for depth in range(common, len(target_scope))
        )
        return ManyValues(common, steps, target)

    def _entity_plan(self, entity: Entity) -> EntityPlan:
        scope = entity.scope
        steps: list[FieldPlan] = []
        missing_step = None
        for depth, step in enumerate(scope):
            found = self.scope(scope[:depth]).fields.get(step)
            if found is None:
                missing_step = step
                break
            steps.append(found)
        fields = self.scope(scope).fields
        bound = tuple(
            (plan, binding[1])
            for plan in fields.values()
            if (binding := plan.field.binding) is not None and binding[0] == entity.name
        )
        return EntityPlan(entity, tuple(steps), missing_step, fields.get(entity.id_field), bound)


def _condition(expression: Expression | None) -> Condition | None:
    return None if expression is None else compile_condition(expression)


def _limits(f: Field) -> Limits | None:
    """The limits to check, or None when the field has none (so checking them always passes)."""
    if f.type in _BOUNDED:
        low, high = _bound(f.type, f.minimum), _bound(f.type, f.maximum)
        step = _exact(f.step) if f.type in (FieldType.INTEGER, FieldType.DECIMAL) else None
        if low is None and high is None and step is None:
            return None
        origin = _exact(f.minimum) if step is not None else None
        return Limits(
            low,
            high,
            f"must be at least {f.minimum}",
            f"must be at most {f.maximum}",
            None,
            None,
            None,
            step,
            origin if origin is not None else Decimal(0),
            (
                f"must be {f.minimum} plus a whole multiple of {f.step}"
                if origin is not None and origin != 0
                else f"must be a whole multiple of {f.step}"
            ),
        )
    if f.type in TEXT_TYPES and (
        f.min_length is not None or f.max_length is not None or f.pattern is not None
    ):
        return Limits(
            None,
            None,
            "",
            "",
            f.min_length,
            f.max_length,
            None if f.pattern is None else _pattern_matcher(f.pattern),
        )
    return None


def _bound(field_type: FieldType, bound: object) -> object:
    """A `min`/`max` as the values it is compared with: dates and datetimes parsed (None when
    unreadable, i.e. no bound), numbers as written."""
    if bound is None:
        return None
    if field_type is FieldType.DATE:
        return parse_iso_date(bound)
    if field_type is FieldType.DATETIME:
        return parse_rfc3339(bound)
    if field_type is FieldType.TIME:
        return parse_time(bound)
    return bound


def _exact(number: object) -> Decimal | None:
    """A JSON number as the decimal it was written as (`0.1` is exactly 1/10), or None."""
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    # repr of a float is the shortest text that reads back as it: the number as written.
    return Decimal(number) if isinstance(number, int) else Decimal(repr(number))


def _pattern_matcher(pattern: str) -> Callable[[str], bool]:
    # Compiled once here rather than for every answer; the same pattern gives the same verdicts.
    try:
        compiled = compile_safe_pattern(pattern)
    except UnsafePatternError:
        return lambda _: False
    return lambda text: compiled.fullmatch(text) is not None
