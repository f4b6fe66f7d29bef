"""The evaluator of the expression language: a syntax tree and an environment to a value.

Reads answers only through the Environment it is given. Never raises anything but
ExpressionError (EvaluationError), whatever the tree or the answers contain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Protocol

from forms.expressions.errors import EvaluationError, ExpressionError
from forms.expressions.functions import PURE_FUNCTIONS, age_at, count_of, regex_matches, sum_of
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
from forms.expressions.parser import Expression
from forms.expressions.values import (
    NodeSet,
    Value,
    arithmetic,
    checked_number,
    compare,
    to_boolean,
    to_number,
)


class Environment(Protocol):
    """What an expression can see: answers by name, the current answer, choice columns, clocks."""

    @property
    def today(self) -> date: ...

    @property
    def now(self) -> datetime: ...

    def value_of(self, name: str) -> Value | NodeSet:
        """The value of field `name` as seen from where the expression is evaluated."""
        ...

    def current_value(self) -> Value:
        """The value `.` stands for."""
        ...

    def choice_property(self, name: str) -> Value:
        """Column `name` of the choice being filtered (`name` itself is the choice code)."""
        ...


@dataclass
class MappingEnvironment:
    """A flat environment over a mapping of names to values, for tools and tests.

    A list or tuple value is seen as a node-set; unknown names are null.
    """

    values: Mapping[str, object] = field(default_factory=dict)
    current: Value = None
    choice: Mapping[str, Value] = field(default_factory=dict)
    today: date = field(default_factory=date.today)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def value_of(self, name: str) -> Value | NodeSet:
        value = self.values.get(name)
        if isinstance(value, list):
            return NodeSet(tuple(value))
        return value  # type: ignore[return-value]

    def current_value(self) -> Value:
        return self.current

    def choice_property(self, name: str) -> Value:
        return self.choice.get(name)


def evaluate(expression: Expression, environment: Environment) -> Value:
    """Evaluate `expression` in `environment` and return its value (None is null).

    Raises EvaluationError (never anything else) when a value is misused, e.g. a node-set
    outside `count()`/`sum()`, or a result exceeds the limits.
    """
    try:
        return _program(expression)(environment)
    except ExpressionError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as err:
        # Defensive: the value rules are meant to make these impossible.
        raise EvaluationError(f"cannot evaluate: {type(err).__name__}") from None


def evaluate_boolean(expression: Expression, environment: Environment) -> bool:
    """`evaluate` followed by XPath truth (null, false, 0 and '' are false)."""
    return to_boolean(evaluate(expression, environment))


# --- the tree, turned once into nested closures -------------------------------------------------
#
# Every node becomes a function of the environment, built once per expression. A definition's
# expressions run thousands of times per batch of submissions, and walking the tree each time (a
# chain of isinstance tests per node) cost more than the value rules themselves. The closures
# apply the same rules in the same order, with the same short-circuits; nothing is generated as
# Python source.

Step = Callable[[Environment], Value | NodeSet]
ValueStep = Callable[[Environment], Value]

_MANY_VALUES = (
    "a repeat, or a field inside a repeat seen from outside it, holds many values: "
    "use count() or sum()"
)


@lru_cache(maxsize=4096)
def _program(expression: Expression) -> ValueStep:
    # Keyed by the expression, i.e. its source (equal sources parse to equal trees). Bounded:
    # drafts come and go in a long-running server.
    return _value_step(expression.root)


def _value_step(node: Node) -> ValueStep:
    """The step of `node` where one value is needed: a node-set there is an error. Only names
    (`${x}`, `.`, choice columns) can stand for a node-set; every other node gives one value."""
    if isinstance(node, Literal):
        literal = node.value
        return lambda _: literal
    if isinstance(node, Negation):
        return _negation(node)
    if isinstance(node, Chain):
        return _chain(node)
    if isinstance(node, Call):
        return _call(node)
    step, position = _name_step(node), node.position

    def single(environment: Environment) -> Value:
        result = step(environment)
        if isinstance(result, NodeSet):
            raise EvaluationError(_MANY_VALUES, position)
        return result

    return single


def _step(node: Node) -> Step:
    """The step of `node` where a node-set is welcome (the argument of `count()`/`sum()`)."""
    if isinstance(node, Reference | Current | ChoiceProperty):
        return _name_step(node)
    return _value_step(node)


def _name_step(node: Reference | Current | ChoiceProperty) -> Step:
    if isinstance(node, Reference):
        name = node.name
        return lambda environment: environment.value_of(name)
    if isinstance(node, ChoiceProperty):
        column = node.name
        return lambda environment: environment.choice_property(column)
    return lambda environment: environment.current_value()


def _negation(node: Negation) -> ValueStep:
    operand = _value_step(node.operand)

    def negate(environment: Environment) -> Value:
        number = to_number(operand(environment))
        return None if number is None else checked_number(-number)

    return negate


def _chain(node: Chain) -> ValueStep:
    first = _value_step(node.first)
    rest = tuple((operator, _value_step(operand)) for operator, operand in node.rest)

    def chain(environment: Environment) -> Value:
        result = first(environment)
        for operator, operand in rest:
            if operator == "or":
                result = to_boolean(result) or to_boolean(operand(environment))
            elif operator == "and":
                result = to_boolean(result) and to_boolean(operand(environment))
            elif operator in _COMPARISONS:
                result = compare(operator, result, operand(environment))
            else:
                result = arithmetic(operator, result, operand(environment))
        return result

    return chain


_COMPARISONS = frozenset(("=", "!=", "<", "<=", ">", ">="))


def _call(node: Call) -> ValueStep:
    name = node.name
    if name == "if":
        condition, when_true, when_false = (_value_step(a) for a in node.arguments)
        return lambda environment: (
            when_true(environment)
            if to_boolean(condition(environment))
            else when_false(environment)
        )
    if name in AGGREGATE_FUNCTIONS:
        many = _step(node.arguments[0])
        aggregate = count_of if name == "count" else sum_of
        return lambda environment: aggregate(many(environment))
    if name == "today":
        return lambda environment: environment.today
    if name == "now":
        return lambda environment: environment.now
    if name == "age":
        born = _value_step(node.arguments[0])
        return lambda environment: age_at(born(environment), environment.today)
    if name == "regex":
        pattern = node.arguments[1]
        assert isinstance(pattern, Literal) and isinstance(pattern.value, str)
        text, source = _value_step(node.arguments[0]), pattern.value
        return lambda environment: regex_matches(text(environment), source)
    function = PURE_FUNCTIONS[name]
    arguments = tuple(_value_step(argument) for argument in node.arguments)
    return lambda environment: function([argument(environment) for argument in arguments])
