"""The evaluator of the expression language: a syntax tree and an environment to a value.

Reads answers only through the Environment it is given. Never raises anything but
ExpressionError (EvaluationError), whatever the tree or the answers contain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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
        return _Evaluator(environment).value(expression.root)
    except ExpressionError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as err:
        # Defensive: the value rules are meant to make these impossible.
        raise EvaluationError(f"cannot evaluate: {type(err).__name__}") from None


def evaluate_boolean(expression: Expression, environment: Environment) -> bool:
    """`evaluate` followed by XPath truth (null, false, 0 and '' are false)."""
    return to_boolean(evaluate(expression, environment))


class _Evaluator:
    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def value(self, node: Node) -> Value:
        result = self.value_or_nodeset(node)
        if isinstance(result, NodeSet):
            raise EvaluationError(
                "a repeat, or a field inside a repeat seen from outside it, holds many values: "
                "use count() or sum()",
                node.position,
            )
        return result

    def value_or_nodeset(self, node: Node) -> Value | NodeSet:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Reference):
            return self.environment.value_of(node.name)
        if isinstance(node, Current):
            return self.environment.current_value()
        if isinstance(node, ChoiceProperty):
            return self.environment.choice_property(node.name)
        if isinstance(node, Negation):
            number = to_number(self.value(node.operand))
            return None if number is None else checked_number(-number)
        if isinstance(node, Chain):
            return self.chain(node)
        return self.call(node)

    def chain(self, node: Chain) -> Value:
        result = self.value(node.first)
        for operator, operand in node.rest:
            if operator == "or":
                result = to_boolean(result) or to_boolean(self.value(operand))
            elif operator == "and":
                result = to_boolean(result) and to_boolean(self.value(operand))
            elif operator in ("=", "!=", "<", "<=", ">", ">="):
                result = compare(operator, result, self.value(operand))
            else:
                result = arithmetic(operator, result, self.value(operand))
        return result

    def call(self, node: Call) -> Value:
        name = node.name
        if name == "if":
            condition, when_true, when_false = node.arguments
            return self.value(when_true if to_boolean(self.value(condition)) else when_false)
        if name in AGGREGATE_FUNCTIONS:
            argument = self.value_or_nodeset(node.arguments[0])
            return count_of(argument) if name == "count" else sum_of(argument)
        if name == "today":
            return self.environment.today
        if name == "now":
            return self.environment.now
        if name == "age":
            return age_at(self.value(node.arguments[0]), self.environment.today)
        if name == "regex":
            pattern = node.arguments[1]
            assert isinstance(pattern, Literal) and isinstance(pattern.value, str)
            return regex_matches(self.value(node.arguments[0]), pattern.value)
        arguments = [self.value(argument) for argument in node.arguments]
        return PURE_FUNCTIONS[name](arguments)
