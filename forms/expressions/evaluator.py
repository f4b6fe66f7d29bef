"""The evaluator of the expression language: a syntax tree and an environment to a value.

Reads answers only through the Environment it is given. Never raises anything but
ExpressionError (EvaluationError), whatever the tree or the answers contain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import eq, ge, gt, le, lt, ne
from typing import Any, Protocol

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


Program = Callable[[Environment], Value]
"""An expression compiled into a function of the environment it is evaluated in."""

Condition = Callable[[Environment], bool]
"""An expression compiled into its truth in the environment it is evaluated in."""


def evaluate(expression: Expression, environment: Environment) -> Value:
    """Evaluate `expression` in `environment` and return its value (None is null).

    Raises EvaluationError (never anything else) when a value is misused, e.g. a node-set
    outside `count()`/`sum()`, or a result exceeds the limits.
    """
    try:
        program = _program(expression)
    except _DEFENSIVE as err:
        raise _cannot_evaluate(err) from None
    return program(environment)


def evaluate_boolean(expression: Expression, environment: Environment) -> bool:
    """`evaluate` followed by XPath truth (null, false, 0 and '' are false)."""
    return to_boolean(evaluate(expression, environment))


def compile_expression(expression: Expression) -> Program:
    """`expression` as a Program, for callers that evaluate it many times: `program(env)` gives
    what `evaluate(expression, env)` gives and raises what it raises, without looking the
    compiled form up on every call. Never raises itself."""
    try:
        return _program(expression)
    except Exception:  # a hand-built tree that does not compile fails where evaluate fails
        return lambda environment: evaluate(expression, environment)


def compile_condition(expression: Expression) -> Condition:
    """`expression` as a Condition: `condition(env)` is `evaluate_boolean(expression, env)`, as
    `compile_expression` is `evaluate`. Never raises itself."""
    try:
        return _condition(expression)
    except Exception:  # as in compile_expression
        return lambda environment: evaluate_boolean(expression, environment)


_DEFENSIVE = (ArithmeticError, ValueError, TypeError, RecursionError)


def _cannot_evaluate(err: Exception) -> EvaluationError:
    # Defensive: the value rules are meant to make these errors impossible.
    return EvaluationError(f"cannot evaluate: {type(err).__name__}")


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
def _program(expression: Expression) -> Program:
    # Keyed by the expression, i.e. its source (equal sources parse to equal trees). Bounded:
    # drafts come and go in a long-running server.
    step = _value_step(expression.root)

    def program(environment: Environment) -> Value:
        try:
            return step(environment)
        except ExpressionError:
            raise
        except _DEFENSIVE as err:
            raise _cannot_evaluate(err) from None

    return program


@lru_cache(maxsize=4096)
def _condition(expression: Expression) -> Condition:
    # As _program, with XPath truth applied to the result, which comparisons, `and`, `or` and
    # the boolean functions already give.
    step = _value_step(expression.root)
    if _is_boolean(expression.root):
        boolean_step: Callable[[Environment], Any] = step
    else:

        def boolean_step(environment: Environment) -> bool:
            return to_boolean(step(environment))

    def condition(environment: Environment) -> bool:
        try:
            return boolean_step(environment)  # type: ignore[no-any-return]
        except ExpressionError:
            raise
        except _DEFENSIVE as err:
            raise _cannot_evaluate(err) from None

    return condition


def _is_boolean(node: Node) -> bool:
    """Whether the value of `node` is always a bool, its own XPath truth."""
    if isinstance(node, Chain):
        return bool(node.rest) and node.rest[-1][0] in _BOOLEAN_OPERATORS
    return isinstance(node, Call) and node.name in _BOOLEAN_FUNCTIONS


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
    position = node.position
    if isinstance(node, Reference):
        # The commonest node of all, so its lookup and its check are one step.
        name = node.name

        def reference(environment: Environment) -> Value:
            result = environment.value_of(name)
            if isinstance(result, NodeSet):
                raise EvaluationError(_MANY_VALUES, position)
            return result

        return reference
    step = _name_step(node)

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
    if len(node.rest) == 1:
        # Most chains are one operator between two operands: one step, no loop.
        ((operator, operand),) = node.rest
        return _binary(node.first, operator, operand)
    first = _value_step(node.first)
    links = tuple(_link(operator, _value_step(operand)) for operator, operand in node.rest)

    def chain(environment: Environment) -> Value:
        result = first(environment)
        for link in links:
            result = link(result, environment)
        return result

    return chain


def _binary(left_node: Node, operator: str, right_node: Node) -> ValueStep:
    """`left operator right`, as a chain of one link applies it."""
    left, right = _value_step(left_node), _value_step(right_node)
    if operator in ("or", "and"):
        if _is_boolean(left_node) and _is_boolean(right_node):  # no XPath truth to work out
            if operator == "or":
                return lambda environment: left(environment) or right(environment)
            return lambda environment: left(environment) and right(environment)
        if operator == "or":
            return lambda environment: (
                to_boolean(left(environment)) or to_boolean(right(environment))
            )
        return lambda environment: to_boolean(left(environment)) and to_boolean(right(environment))
    if operator in _COMPARISONS:
        return _comparison(left, operator, right, right_node)
    return lambda environment: arithmetic(operator, left(environment), right(environment))


def _comparison(left: ValueStep, operator: str, right: ValueStep, right_node: Node) -> ValueStep:
    direct, direct_types = _DIRECT_COMPARISONS[operator]
    if isinstance(right_node, Literal):
        # `${x} >= 6`, `${x} = 'yes'`: the constant is not looked up, and its type is known.
        constant = right_node.value
        constant_type = type(constant)
        if constant_type not in direct_types:
            return lambda environment: compare(operator, left(environment), constant)

        def with_constant(environment: Environment) -> Value:
            value = left(environment)
            if type(value) is constant_type:
                return direct(value, constant)  # type: ignore[no-any-return]
            return compare(operator, value, constant)

        return with_constant

    def comparison(environment: Environment) -> Value:
        a, b = left(environment), right(environment)
        kind = type(a)
        if kind is type(b) and kind in direct_types:
            return direct(a, b)  # type: ignore[no-any-return]
        return compare(operator, a, b)

    return comparison


def _link(operator: str, operand: ValueStep) -> Callable[[Value, Environment], Value]:
    """How one link of a longer chain combines the result so far with its operand."""
    if operator == "or":
        return lambda result, environment: to_boolean(result) or to_boolean(operand(environment))
    if operator == "and":
        return lambda result, environment: to_boolean(result) and to_boolean(operand(environment))
    if operator in _COMPARISONS:
        return lambda result, environment: compare(operator, result, operand(environment))
    return lambda result, environment: arithmetic(operator, result, operand(environment))


_COMPARISONS = frozenset(("=", "!=", "<", "<=", ">", ">="))
_BOOLEAN_OPERATORS = _COMPARISONS | {"and", "or"}
_BOOLEAN_FUNCTIONS = frozenset(("true", "false", "not", "selected", "regex"))

# Two operands of exactly the same one of these types compare as Python compares them: that is
# what `compare` comes to for them (numbers as numbers, dates as dates, and for equality text as
# text), without its dispatch. Booleans, datetimes, selections, nulls, mixed types and text
# ordering (numeric when both read as numbers) always go through `compare`.
_ORDERED = frozenset({int, float, date})
_DIRECT_COMPARISONS: dict[str, tuple[Callable[[Any, Any], Any], frozenset[type]]] = {
    "=": (eq, _ORDERED | {str}),
    "!=": (ne, _ORDERED | {str}),
    "<": (lt, _ORDERED),
    "<=": (le, _ORDERED),
    ">": (gt, _ORDERED),
    ">=": (ge, _ORDERED),
}


def _call(node: Call) -> ValueStep:
    name = node.name
    if name == "if":
        return _if(node)
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
    if len(arguments) == 1:
        (only,) = arguments
        return lambda environment: function([only(environment)])
    if len(arguments) == 2:
        one, two = arguments
        return lambda environment: function([one(environment), two(environment)])
    return lambda environment: function([argument(environment) for argument in arguments])


def _if(node: Call) -> ValueStep:
    condition_node, true_node, false_node = node.arguments
    condition = _value_step(condition_node)
    when_true, when_false = _value_step(true_node), _value_step(false_node)
    if isinstance(true_node, Literal) and isinstance(false_node, Literal):
        # `if(..., 1, 0)`: both results are constants.
        yes, no = true_node.value, false_node.value
        if _is_boolean(condition_node):
            return lambda environment: yes if condition(environment) else no
        return lambda environment: yes if to_boolean(condition(environment)) else no
    return lambda environment: (
        when_true(environment) if to_boolean(condition(environment)) else when_false(environment)
    )
