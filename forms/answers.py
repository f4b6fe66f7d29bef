"""A submission's answers as expressions see them: typed values, relevance and calculated values,
scoped by repeat instance, computed lazily and remembered.

Reads the answers it is given and nothing else (the clock comes in as `today`/`now`). Evaluation
problems make a value null or a field not relevant; they never escape as exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from forms.answer_types import ParsedAnswer, parse_answer
from forms.definition import Field, FieldType, FormDefinition
from forms.expressions import (
    Expression,
    ExpressionError,
    NodeSet,
    Value,
    evaluate,
    evaluate_boolean,
)
from forms.expressions.values import to_boolean, to_date, to_number, to_string
from forms.scopes import AmbiguousReference, ResolvedReference, resolve_reference

T = TypeVar("T")


@dataclass(frozen=True)
class Frame:
    """One object of answers: the top level (`data`) or one repeat instance (`data.members[2]`)."""

    scope: tuple[str, ...]
    instance: Mapping[str, object]
    path: str


FrameChain = tuple[Frame, ...]
"""The frames from the top level down to the current instance, one per scope depth."""


class SubmissionContext:
    """Answers of one submission, read against one definition.

    `relevant` and `value` answer for a field in a given chain of frames; values of fields that
    are not relevant are null, as in ODK.
    """

    def __init__(
        self,
        definition: FormDefinition,
        data: Mapping[str, object],
        *,
        today: date,
        now: datetime,
    ) -> None:
        self.definition = definition
        self.root: FrameChain = (Frame((), data, "data"),)
        self.today = today
        self.now = now
        self._values: dict[tuple[int, str], Value] = {}
        self._parsed: dict[tuple[int, str], ParsedAnswer] = {}
        self._relevance: dict[tuple[int, str], bool] = {}
        self._busy: set[tuple[int, str, str]] = set()
        self._environments: dict[int, _Environment] = {}
        self._references: dict[tuple[tuple[str, ...], str], ResolvedReference | None] = (
            definition.memo.setdefault("resolved_references", {})
        )

    def relevant(self, chain: FrameChain, f: Field) -> bool:
        """Whether `f` is relevant in the instance at the end of `chain` (false on errors)."""
        relevant = f.relevant
        if relevant is None:
            return True
        key = (id(chain[-1].instance), f.name)
        if key not in self._relevance:
            self._relevance[key] = self._guarded(
                chain, f, "relevant", lambda: evaluate_boolean(relevant, self.env(chain)), False
            )
        return self._relevance[key]

    def value(self, chain: FrameChain, f: Field) -> Value:
        """The typed value of `f` in the instance at the end of `chain`; null when unanswered,
        invalid or not relevant; for a calculation, its computed value."""
        key = (id(chain[-1].instance), f.name)
        if key in self._values:
            return self._values[key]
        result: Value = None
        if self.relevant(chain, f):
            if f.type is FieldType.CALCULATED and f.calculation is not None:
                calculation = f.calculation
                result = self._guarded(
                    chain, f, "calculation", lambda: self._calculate(chain, f, calculation), None
                )
            else:
                result = self.parsed(chain, f).value
        self._values[key] = result
        return result

    def parsed(self, chain: FrameChain, f: Field) -> ParsedAnswer:
        """The answer to `f` in the instance at the end of `chain`, read as its type (with the
        problem, if any), whatever its relevance."""
        key = (id(chain[-1].instance), f.name)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = self._parsed[key] = parse_answer(f.type, chain[-1].instance.get(f.name))
        return parsed

    def evaluate_in(
        self,
        chain: FrameChain,
        expression: Expression,
        *,
        current: Value = None,
        choice: Mapping[str, Value] | None = None,
    ) -> Value:
        """Evaluate `expression` in the instance at the end of `chain` (ExpressionError if it
        fails)."""
        return evaluate(expression, self.env(chain, current=current, choice=choice))

    def instances(self, chain: FrameChain, repeat: Field) -> list[Frame]:
        """The instances (objects) of `repeat` in the instance at the end of `chain`; none when
        the repeat is not relevant or not a list. Items that are not objects are skipped."""
        if not self.relevant(chain, repeat):
            return []
        raw = chain[-1].instance.get(repeat.name)
        if not isinstance(raw, list):
            return []
        scope = (*chain[-1].scope, repeat.name)
        prefix = f"{chain[-1].path}.{repeat.name}"
        return [
            Frame(scope, item, f"{prefix}[{index}]")
            for index, item in enumerate(raw)
            if isinstance(item, dict)
        ]

    def env(
        self,
        chain: FrameChain,
        *,
        current: Value = None,
        choice: Mapping[str, Value] | None = None,
    ) -> _Environment:
        if current is not None or choice:
            return _Environment(self, chain, current, choice or {})
        # The plain environment of an instance is the same every time: kept, not rebuilt.
        key = id(chain[-1].instance)
        environment = self._environments.get(key)
        if environment is None:
            environment = self._environments[key] = _Environment(self, chain, None, {})
        return environment

    def resolve(self, scope: tuple[str, ...], name: str) -> ResolvedReference | None:
        # Static: remembered with the definition, for every submission read against it.
        key = (scope, name)
        if key not in self._references:
            try:
                self._references[key] = resolve_reference(self.definition, scope, name)
            except AmbiguousReference:
                self._references[key] = None
        return self._references[key]

    def _calculate(self, chain: FrameChain, f: Field, calculation: Expression) -> Value:
        return coerce_to(f.value_type, evaluate(calculation, self.env(chain)))

    def _guarded(
        self, chain: FrameChain, f: Field, what: str, compute: Callable[[], T], fallback: T
    ) -> T:
        # Definitions are checked for cycles when loaded; this guard only keeps a hand-built
        # definition from recursing forever.
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


def coerce_to(value_type: FieldType | None, value: Value) -> Value:
    """A calculated value converted to its declared `value_type` (null when it does not fit)."""
    if value is None or value_type is None:
        return value
    if value_type is FieldType.TEXT:
        return to_string(value) or None
    if value_type is FieldType.BOOLEAN:
        return to_boolean(value)
    if value_type is FieldType.DATE:
        return to_date(value)
    number = to_number(value)
    if value_type is FieldType.INTEGER:
        return int(number) if number is not None and number == int(number) else None
    return number


class _Environment:
    def __init__(
        self,
        context: SubmissionContext,
        chain: FrameChain,
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
        chains: list[FrameChain] = [self.chain[: common + 1]]
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
