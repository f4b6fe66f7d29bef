"""The submission checker as it was first written, kept as the oracle the fast one is compared with.

A direct reading of the rules, with no plan and no shortcut: chains of frames, memo dicts keyed by
`(id(instance), name)`, references resolved on every use, bounds and choice lists worked out on
every call, and expressions walked node by node (not compiled). `tests/forms/
test_form_check_equivalence.py` checks that `forms.validation`, `forms.bindings` and
`forms.submission` give exactly what this gives — issues, updates and errors — for every input
it generates. Change this only together with the rules themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import TypeVar

from forms.answer_types import (
    AnswerProblem,
    is_unanswered,
    is_valid_uuid,
    parse_answer,
    parse_iso_date,
    parse_rfc3339,
    parse_time,
)
from forms.answers import coerce_to
from forms.bindings import BindingError, EntityUpdate, JsonValue, to_json_value
from forms.definition import Choice, Entity, Field, FieldType, FormDefinition, Text
from forms.expressions import (
    Environment,
    EvaluationError,
    Expression,
    ExpressionError,
    NodeSet,
    Value,
)
from forms.expressions.functions import (
    PURE_FUNCTIONS,
    age_at,
    count_of,
    regex_matches,
    sum_of,
)
from forms.expressions.nodes import (
    AGGREGATE_FUNCTIONS,
    Call,
    Chain,
    ChoiceProperty,
    Current,
    Literal,
    Negation,
    Node,
    Reference,
)
from forms.expressions.patterns import UnsafePatternError, compile_safe_pattern
from forms.expressions.values import arithmetic, checked_number, compare, to_boolean, to_number
from forms.issues import IssueCode, ValidationIssue
from forms.register import EntityType
from forms.scopes import AmbiguousReference, ResolvedReference, resolve_reference

T = TypeVar("T")


def validate(
    definition: FormDefinition,
    data: object,
    *,
    today: date,
    now: datetime,
    strict_relevance: bool = False,
) -> list[ValidationIssue]:
    """What `validate_submission` gives."""
    if not isinstance(data, dict):
        return [ValidationIssue("data", IssueCode.INVALID_TYPE, "answers must be a JSON object")]
    validator = _Validator(_Context(definition, data, today, now), strict_relevance)
    validator.instance(validator.context.root)
    return validator.issues


def updates(
    definition: FormDefinition, data: dict[str, object], *, today: date, now: datetime
) -> list[EntityUpdate]:
    """What `derive_register_updates` gives."""
    context = _Context(definition, data, today, now)
    by_name = {entity.name: entity for entity in definition.entities}
    found: list[EntityUpdate] = []
    for entity in definition.entities:
        for chain in _chains_for(context, entity.scope):
            update = _update_for(context, entity, chain, by_name)
            if update is not None:
                found.append(update)
    return found


# --- expressions, walked node by node ----------------------------------------------------------

_MANY_VALUES = (
    "a repeat, or a field inside a repeat seen from outside it, holds many values: "
    "use count() or sum()"
)


def evaluate(expression: Expression, environment: Environment) -> Value:
    """What `forms.expressions.evaluate` gives, by walking the tree."""
    try:
        return _value(expression.root, environment)
    except ExpressionError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as err:
        raise EvaluationError(f"cannot evaluate: {type(err).__name__}") from None


def _value(node: Node, environment: Environment) -> Value:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Negation):
        number = to_number(_value(node.operand, environment))
        return None if number is None else checked_number(-number)
    if isinstance(node, Chain):
        result = _value(node.first, environment)
        for operator, operand in node.rest:
            if operator == "or":
                result = to_boolean(result) or to_boolean(_value(operand, environment))
            elif operator == "and":
                result = to_boolean(result) and to_boolean(_value(operand, environment))
            elif operator in ("=", "!=", "<", "<=", ">", ">="):
                result = compare(operator, result, _value(operand, environment))
            else:
                result = arithmetic(operator, result, _value(operand, environment))
        return result
    if isinstance(node, Call):
        return _call(node, environment)
    named = _name(node, environment)
    if isinstance(named, NodeSet):
        raise EvaluationError(_MANY_VALUES, node.position)
    return named


def _name(node: Reference | Current | ChoiceProperty, environment: Environment) -> Value | NodeSet:
    if isinstance(node, Reference):
        return environment.value_of(node.name)
    if isinstance(node, ChoiceProperty):
        return environment.choice_property(node.name)
    return environment.current_value()


def _call(node: Call, environment: Environment) -> Value:
    name, arguments = node.name, node.arguments
    if name == "if":
        condition, when_true, when_false = arguments
        if to_boolean(_value(condition, environment)):
            return _value(when_true, environment)
        return _value(when_false, environment)
    if name in AGGREGATE_FUNCTIONS:
        argument = arguments[0]
        many = (
            _name(argument, environment)
            if isinstance(argument, Reference | Current | ChoiceProperty)
            else _value(argument, environment)
        )
        return count_of(many) if name == "count" else sum_of(many)
    if name == "today":
        return environment.today
    if name == "now":
        return environment.now
    if name == "age":
        return age_at(_value(arguments[0], environment), environment.today)
    if name == "regex":
        pattern = arguments[1]
        assert isinstance(pattern, Literal) and isinstance(pattern.value, str)
        return regex_matches(_value(arguments[0], environment), pattern.value)
    return PURE_FUNCTIONS[name]([_value(argument, environment) for argument in arguments])


# --- answers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    scope: tuple[str, ...]
    instance: Mapping[str, object]
    path: str


_Chain = tuple[_Frame, ...]


class _Context:
    def __init__(
        self, definition: FormDefinition, data: Mapping[str, object], today: date, now: datetime
    ) -> None:
        self.definition = definition
        self.root: _Chain = (_Frame((), data, "data"),)
        self.today = today
        self.now = now
        self._values: dict[tuple[int, str], Value] = {}
        self._parsed: dict[tuple[int, str], Value | AnswerProblem] = {}
        self._relevance: dict[tuple[int, str], bool] = {}
        self._busy: set[tuple[int, str, str]] = set()
        self._environments: dict[int, _Environment] = {}

    def relevant(self, chain: _Chain, f: Field) -> bool:
        relevant = f.relevant
        if relevant is None:
            return True
        key = (id(chain[-1].instance), f.name)
        if key not in self._relevance:
            self._relevance[key] = self._guarded(
                chain,
                f,
                "relevant",
                lambda: to_boolean(evaluate(relevant, self.env(chain))),
                False,
            )
        return self._relevance[key]

    def value(self, chain: _Chain, f: Field) -> Value:
        key = (id(chain[-1].instance), f.name)
        if key in self._values:
            return self._values[key]
        result: Value = None
        if self.relevant(chain, f):
            if f.type is FieldType.CALCULATED and f.calculation is not None:
                calculation = f.calculation
                result = self._guarded(
                    chain,
                    f,
                    "calculation",
                    lambda: coerce_to(f.value_type, evaluate(calculation, self.env(chain))),
                    None,
                )
            else:
                parsed = self.parsed(chain, f)
                result = None if isinstance(parsed, AnswerProblem) else parsed
        self._values[key] = result
        return result

    def parsed(self, chain: _Chain, f: Field) -> Value | AnswerProblem:
        key = (id(chain[-1].instance), f.name)
        if key not in self._parsed:
            self._parsed[key] = parse_answer(f.type, chain[-1].instance.get(f.name), media=f.media)
        return self._parsed[key]

    def evaluate_in(
        self,
        chain: _Chain,
        expression: Expression,
        *,
        current: Value = None,
        choice: Mapping[str, Value] | None = None,
    ) -> Value:
        return evaluate(expression, self.env(chain, current=current, choice=choice))

    def instances(self, chain: _Chain, repeat: Field) -> list[_Frame]:
        if not self.relevant(chain, repeat):
            return []
        raw = chain[-1].instance.get(repeat.name)
        if not isinstance(raw, list):
            return []
        scope = (*chain[-1].scope, repeat.name)
        prefix = f"{chain[-1].path}.{repeat.name}"
        return [
            _Frame(scope, item, f"{prefix}[{index}]")
            for index, item in enumerate(raw)
            if isinstance(item, dict)
        ]

    def env(
        self,
        chain: _Chain,
        *,
        current: Value = None,
        choice: Mapping[str, Value] | None = None,
    ) -> _Environment:
        if current is not None or choice:
            return _Environment(self, chain, current, choice or {})
        key = id(chain[-1].instance)
        if key not in self._environments:
            self._environments[key] = _Environment(self, chain, None, {})
        return self._environments[key]

    def resolve(self, scope: tuple[str, ...], name: str) -> ResolvedReference | None:
        try:
            return resolve_reference(self.definition, scope, name)
        except AmbiguousReference:
            return None

    def _guarded(
        self, chain: _Chain, f: Field, what: str, compute: Callable[[], T], fallback: T
    ) -> T:
        key = (id(chain[-1].instance), f.name, what)
        if key in self._busy:
            return fallback
        self._busy.add(key)
        try:
            return compute()
        except ExpressionError:
            return fallback
        finally:
            self._busy.discard(key)


class _Environment:
    def __init__(
        self,
        context: _Context,
        chain: _Chain,
        current: Value,
        choice: Mapping[str, Value],
    ) -> None:
        self.context = context
        self.chain = chain
        self.current = current
        self.choice = choice

    @property
    def today(self) -> date:
        return self.context.today

    @property
    def now(self) -> datetime:
        return self.context.now

    def current_value(self) -> Value:
        return self.current

    def choice_property(self, name: str) -> Value:
        return self.choice.get(name)

    def value_of(self, name: str) -> Value | NodeSet:
        context = self.context
        scope = self.chain[-1].scope
        resolved = context.resolve(scope, name)
        if resolved is None:
            return None
        target_scope, target_name = resolved.target[:-1], resolved.target[-1]
        if not resolved.is_many:
            prefix = self.chain[: len(target_scope) + 1]
            return context.value(prefix, context.definition.fields_in(target_scope)[target_name])
        common = 0
        while common < min(len(scope), len(target_scope)) and (
            scope[common] == target_scope[common]
        ):
            common += 1
        chains: list[_Chain] = [self.chain[: common + 1]]
        for step in target_scope[common:]:
            chains = [
                (*chain, frame)
                for chain in chains
                for frame in context.instances(
                    chain, context.definition.fields_in(chain[-1].scope)[step]
                )
            ]
        values: list[Value] = []
        for chain in chains:
            target = context.definition.fields_in(target_scope)[target_name]
            if target.type is FieldType.REPEAT:
                values.extend(True for _ in context.instances(chain, target))
            else:
                values.append(context.value(chain, target))
        return NodeSet(tuple(values))


# --- validation --------------------------------------------------------------------------------


class _Validator:
    def __init__(self, context: _Context, strict_relevance: bool) -> None:
        self.definition = context.definition
        self.context = context
        self.strict_relevance = strict_relevance
        self.issues: list[ValidationIssue] = []
        self.id_fields = {(e.scope, e.id_field) for e in self.definition.entities}

    def report(self, path: str, code: IssueCode, message: str) -> None:
        self.issues.append(ValidationIssue(path, code, message))

    def instance(self, chain: _Chain) -> None:
        frame = chain[-1]
        fields = self.definition.fields_in(frame.scope)
        for key in frame.instance:
            if key not in fields:
                self.report(f"{frame.path}.{key}", IssueCode.UNKNOWN_FIELD, "no such field")
        for f in fields.values():
            self.field(chain, f)

    def field(self, chain: _Chain, f: Field) -> None:
        frame = chain[-1]
        path = f"{frame.path}.{f.name}"
        raw = frame.instance.get(f.name)
        if f.type in (FieldType.NOTE, FieldType.CALCULATED):
            return
        if not self.context.relevant(chain, f):
            if self.strict_relevance and not is_unanswered(raw):
                self.report(path, IssueCode.NOT_RELEVANT, "answer given to a non-relevant field")
            return
        if f.type is FieldType.REPEAT:
            self.repeat(chain, f, path, raw)
            return
        if is_unanswered(raw):
            if self.is_required(chain, f):
                self.report(path, IssueCode.REQUIRED, "an answer is required")
            return
        parsed = self.context.parsed(chain, f)
        if isinstance(parsed, AnswerProblem):
            self.report(path, parsed.code, parsed.message)
            return
        if (frame.scope, f.name) in self.id_fields and not is_valid_uuid(raw):
            self.report(path, IssueCode.INVALID_ID, "an entity id must be a UUID")
            return
        if f.type is FieldType.SELECT_MULTIPLE and parsed == () and self.is_required(chain, f):
            self.report(path, IssueCode.REQUIRED, "select at least one choice")
            return
        if self.limits(path, f, raw, parsed) and self.choices(chain, path, f, parsed):
            self.constraint(chain, path, f, parsed)

    def is_required(self, chain: _Chain, f: Field) -> bool:
        if (chain[-1].scope, f.name) in self.id_fields:
            return True
        if isinstance(f.required, bool):
            return f.required
        try:
            return to_boolean(self.context.evaluate_in(chain, f.required))
        except ExpressionError:
            return False

    def repeat(self, chain: _Chain, f: Field, path: str, raw: object) -> None:
        if raw is not None and not isinstance(raw, list):
            self.report(path, IssueCode.INVALID_TYPE, "a repeat must be a list of objects")
            return
        items = raw or []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.report(f"{path}[{index}]", IssueCode.INVALID_TYPE, "expected an object")
        count = len(items)
        minimum = f.min_count or 0
        if minimum == 0 and self.is_required(chain, f):
            minimum = 1
        too_few = count < minimum
        too_many = f.max_count is not None and count > f.max_count
        if too_few:
            self.report(path, IssueCode.TOO_FEW_REPEATS, f"at least {minimum} required")
        if too_many:
            self.report(path, IssueCode.TOO_MANY_REPEATS, f"at most {f.max_count} allowed")
        if f.count is not None and not (too_few or too_many):
            try:
                wanted = self.context.evaluate_in(chain, f.count)
            except ExpressionError:
                wanted = None
            number = None if isinstance(wanted, bool) else to_number(wanted)
            if number is not None and math.isfinite(number):
                expected = max(0, int(number))
                if count < expected:
                    self.report(
                        path, IssueCode.TOO_FEW_REPEATS, f"exactly {expected} required (its count)"
                    )
                if count > expected:
                    self.report(
                        path, IssueCode.TOO_MANY_REPEATS, f"exactly {expected} allowed (its count)"
                    )
        for frame in self.context.instances(chain, f):
            self.instance((*chain, frame))

    def limits(self, path: str, f: Field, raw: object, value: Value) -> bool:
        ok = True
        if f.type in (
            FieldType.INTEGER,
            FieldType.DECIMAL,
            FieldType.DATE,
            FieldType.DATETIME,
            FieldType.TIME,
        ):
            low, high = _bound(f.type, f.minimum), _bound(f.type, f.maximum)
            if low is not None and value < low:  # type: ignore[operator]
                self.report(path, IssueCode.BELOW_MIN, f"must be at least {f.minimum}")
                ok = False
            if high is not None and value > high:  # type: ignore[operator]
                self.report(path, IssueCode.ABOVE_MAX, f"must be at most {f.maximum}")
                ok = False
        if f.type in (FieldType.INTEGER, FieldType.DECIMAL) and f.step is not None:
            # Exactly, as fractions of the numbers' shortest decimal texts.
            origin = Fraction(repr(f.minimum)) if f.minimum is not None else Fraction(0)
            step = Fraction(repr(f.step))
            if ((Fraction(repr(value)) - origin) / step).denominator != 1:
                grid = f"{f.minimum} plus a whole multiple" if origin else "a whole multiple"
                self.report(path, IssueCode.OFF_STEP, f"must be {grid} of {f.step}")
                ok = False
        if f.type in (FieldType.TEXT, FieldType.BARCODE) and isinstance(raw, str):
            if f.min_length is not None and len(raw) < f.min_length:
                self.report(path, IssueCode.TOO_SHORT, f"at least {f.min_length} characters")
                ok = False
            if f.max_length is not None and len(raw) > f.max_length:
                self.report(path, IssueCode.TOO_LONG, f"at most {f.max_length} characters")
                ok = False
            if f.pattern is not None and not _matches(f.pattern, raw):
                self.report(path, IssueCode.PATTERN_MISMATCH, "does not have the expected form")
                ok = False
        return ok

    def choices(self, chain: _Chain, path: str, f: Field, value: Value) -> bool:
        if f.type not in (FieldType.SELECT_ONE, FieldType.SELECT_MULTIPLE, FieldType.RANK):
            return True
        allowed = {choice.code for choice in self.allowed_choices(chain, f)}
        selected = value if isinstance(value, tuple) else (value,)
        unknown = [code for code in selected if code not in allowed]
        if unknown:
            listed = ", ".join(repr(code) for code in unknown)
            self.report(path, IssueCode.INVALID_CHOICE, f"not a valid choice here: {listed}")
            return False
        if f.type is FieldType.RANK and set(selected) != allowed:
            missing = ", ".join(repr(code) for code in sorted(allowed - set(selected)))
            self.report(path, IssueCode.INVALID_RANK, f"rank every choice; missing {missing}")
            return False
        return True

    def allowed_choices(self, chain: _Chain, f: Field) -> list[Choice]:
        choices = list(self.definition.choices_for(f))
        if f.choice_filter is None:
            return choices
        allowed = []
        for choice in choices:
            columns: dict[str, Value] = {**choice.attributes, "name": choice.code}
            try:
                keep = to_boolean(self.context.evaluate_in(chain, f.choice_filter, choice=columns))
            except ExpressionError:
                keep = False
            if keep:
                allowed.append(choice)
        return allowed

    def constraint(self, chain: _Chain, path: str, f: Field, value: Value) -> None:
        if f.constraint is None:
            return
        try:
            ok = to_boolean(self.context.evaluate_in(chain, f.constraint, current=value))
        except ExpressionError:
            ok = False
        if not ok:
            message = (
                str(f.constraint_message)
                if isinstance(f.constraint_message, Text)
                else f"constraint not met: {f.constraint.source}"
            )
            self.report(path, IssueCode.CONSTRAINT_FAILED, message)


def _bound(field_type: FieldType, bound: object) -> object:
    if bound is None:
        return None
    if field_type is FieldType.DATE:
        return parse_iso_date(bound)
    if field_type is FieldType.DATETIME:
        return parse_rfc3339(bound)
    if field_type is FieldType.TIME:
        return parse_time(bound)
    return bound


def _matches(pattern: str, text: str) -> bool:
    try:
        return compile_safe_pattern(pattern).fullmatch(text) is not None
    except UnsafePatternError:
        return False


# --- binding -----------------------------------------------------------------------------------


def _chains_for(context: _Context, scope: tuple[str, ...]) -> list[_Chain]:
    chains: list[_Chain] = [context.root]
    for step in scope:
        chains = [
            (*chain, frame)
            for chain in chains
            for frame in context.instances(
                chain, context.definition.fields_in(chain[-1].scope)[step]
            )
        ]
    return chains


def _entity_id(context: _Context, entity: Entity, chain: _Chain) -> str | None:
    id_field = context.definition.fields_in(entity.scope)[entity.id_field]
    if not context.relevant(chain, id_field):
        return None
    raw = chain[-1].instance.get(entity.id_field)
    if not is_valid_uuid(raw):
        raise BindingError(f"{chain[-1].path}.{entity.id_field}: entity id must be a UUID")
    assert isinstance(raw, str)
    return raw.lower()


def _update_for(
    context: _Context, entity: Entity, chain: _Chain, entities: dict[str, Entity]
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
    for f in context.definition.fields_in(entity.scope).values():
        binding = f.binding
        if binding is None or binding[0] != entity.name:
            continue
        if not context.relevant(chain, f):
            continue
        if f.type is not FieldType.CALCULATED and is_unanswered(frame.instance.get(f.name)):
            continue
        value = context.value(chain, f)
        if value is None:
            continue
        if f.type is FieldType.DATETIME:
            raw = frame.instance.get(f.name)
            if isinstance(raw, str):
                values[binding[1]] = raw
            continue
        values[binding[1]] = to_json_value(value)
    return EntityUpdate(
        entity=entity.name,
        type=entity.type,
        id=entity_id,
        create=entity.create,
        parent=parent,
        fields=dict(sorted(values.items())),
        path=frame.path,
    )
