"""The functions an expression may call, with their arity and their behaviour on values.

Every function is total over the value model: bad input gives null (None), never an exception
other than EvaluationError. `if` is evaluated lazily by the evaluator and has no entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from forms.expressions.errors import EvaluationError
from forms.expressions.limits import MAX_STRING_LENGTH
from forms.expressions.patterns import UnsafePatternError, compile_safe_pattern
from forms.expressions.values import (
    NodeSet,
    Value,
    checked_number,
    to_boolean,
    to_date,
    to_number,
    to_string,
)


@dataclass(frozen=True)
class FunctionSpec:
    """How many arguments a function takes (`max_args` None = any number)."""

    min_args: int
    max_args: int | None


FUNCTION_SPECS: dict[str, FunctionSpec] = {
    "true": FunctionSpec(0, 0),
    "false": FunctionSpec(0, 0),
    "not": FunctionSpec(1, 1),
    "if": FunctionSpec(3, 3),
    "selected": FunctionSpec(2, 2),
    "count-selected": FunctionSpec(1, 1),
    "count": FunctionSpec(1, 1),
    "sum": FunctionSpec(1, 1),
    "string-length": FunctionSpec(1, 1),
    "today": FunctionSpec(0, 0),
    "now": FunctionSpec(0, 0),
    "date": FunctionSpec(1, 1),
    "age": FunctionSpec(1, 1),
    "coalesce": FunctionSpec(2, None),
    "regex": FunctionSpec(2, 2),
    "int": FunctionSpec(1, 1),
    "number": FunctionSpec(1, 1),
    "round": FunctionSpec(1, 2),
    "concat": FunctionSpec(1, None),
}


def _selected_codes(value: Value) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, str):
        return tuple(value.split())
    return ()


def _selected(args: list[Value]) -> Value:
    return to_string(args[1]) in _selected_codes(args[0])


def _count_selected(args: list[Value]) -> Value:
    return len(_selected_codes(args[0]))


def _string_length(args: list[Value]) -> Value:
    return len(to_string(args[0]))


def _date(args: list[Value]) -> Value:
    value = args[0]
    if isinstance(value, int) and not isinstance(value, bool):
        # ODK: a number is a count of days since 1970-01-01.
        try:
            return date(1970, 1, 1) + timedelta(days=value)
        except (OverflowError, ValueError):
            return None
    return to_date(value)


def _coalesce(args: list[Value]) -> Value:
    return next((a for a in args if a is not None and a != ""), None)


def _int(args: list[Value]) -> Value:
    number = to_number(args[0])
    return None if number is None else int(number)


def _number(args: list[Value]) -> Value:
    return to_number(args[0])


def _round(args: list[Value]) -> Value:
    number = to_number(args[0])
    digits_value = to_number(args[1]) if len(args) > 1 else 0
    if number is None or digits_value is None:
        return None
    digits = int(digits_value)
    if not -15 <= digits <= 15:
        raise EvaluationError("round() takes between -15 and 15 digits")
    try:
        rounded = Decimal(str(number)).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return checked_number(int(rounded) if digits <= 0 else float(rounded))


def _concat(args: list[Value]) -> Value:
    total = 0
    parts: list[str] = []
    for arg in args:
        text = to_string(arg)
        total += len(text)
        if total > MAX_STRING_LENGTH:
            raise EvaluationError(f"concat() result longer than {MAX_STRING_LENGTH} characters")
        parts.append(text)
    return "".join(parts)


def regex_matches(value: Value, pattern: str) -> bool:
    """`regex(value, pattern)`: whether the pattern matches somewhere in the value's text.

    Null and empty values never match; patterns are compiled only through
    `compile_safe_pattern`, and text longer than MAX_STRING_LENGTH is refused.
    """
    text = to_string(value)
    if not text:
        return False
    if len(text) > MAX_STRING_LENGTH:
        raise EvaluationError(f"regex() on text longer than {MAX_STRING_LENGTH} characters")
    try:
        compiled = compile_safe_pattern(pattern)
    except UnsafePatternError as err:
        raise EvaluationError(str(err)) from None
    return compiled.search(text) is not None


def _not(args: list[Value]) -> Value:
    return not to_boolean(args[0])


PURE_FUNCTIONS: dict[str, Callable[[list[Value]], Value]] = {
    "true": lambda _: True,
    "false": lambda _: False,
    "not": _not,
    "selected": _selected,
    "count-selected": _count_selected,
    "string-length": _string_length,
    "date": _date,
    "coalesce": _coalesce,
    "int": _int,
    "number": _number,
    "round": _round,
    "concat": _concat,
}


def sum_of(values: NodeSet | Value) -> Value:
    """`sum(...)`: the total of the numeric values, nulls and non-numbers skipped; 0 if none."""
    items = values.values if isinstance(values, NodeSet) else (values,)
    total: int | float = 0
    for item in items:
        number = to_number(item)
        if number is not None:
            total = checked_number(total + number)
    return total


def count_of(values: NodeSet | Value) -> Value:
    """`count(...)`: how many repeat instances, or how many answered values."""
    if isinstance(values, NodeSet):
        return sum(1 for v in values.values if v is not None and v != "")
    return 0 if values is None or values == "" else 1


def age_at(value: Value, today: date) -> Value:
    """`age(birth_date)`: whole years completed at `today`; null for a non-date or a future date."""
    born = to_date(value)
    if born is None or born > today:
        return None
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years
