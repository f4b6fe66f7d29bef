"""The value model of the expression language and its conversion, comparison and arithmetic rules.

Values are None (null: missing, unanswered or not relevant), bool, int, float, str, date, datetime
and tuples of choice codes. Nothing here raises anything but EvaluationError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from forms.expressions.errors import EvaluationError
from forms.expressions.limits import MAX_FLOAT, MAX_INTEGER

Value = None | bool | int | float | str | date | datetime | tuple[str, ...]


@dataclass(frozen=True)
class NodeSet:
    """Many values at once: a field of a repeat seen from outside it, or a repeat's instances.

    Only `count()` and `sum()` accept a node-set.
    """

    values: tuple[Value, ...]


_NUMERIC_TEXT = re.compile(r"\s*(-?)(\d{1,30})(?:\.(\d{0,30}))?\s*")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def checked_number(value: int | float) -> int | float:
    """`value` if it is within the limits, else EvaluationError."""
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_FLOAT:
            raise EvaluationError("number out of range")
    elif abs(value) > MAX_INTEGER:
        raise EvaluationError("number out of range")
    return value


def to_number(value: Value) -> int | float | None:
    """A number, or None for null and anything that does not read as a number.

    Booleans count as 1 and 0; strings must be plain decimal numerals (`-12`, `3.5`).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        match = _NUMERIC_TEXT.fullmatch(value)
        if match is None:
            return None
        sign, whole, fraction = match.groups()
        if fraction:
            return float(f"{sign}{whole}.{fraction}")
        return int(f"{sign}{whole}")
    return None


def to_boolean(value: Value) -> bool:
    """XPath truth: null, false, 0, '' and an empty selection are false; everything else true."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | tuple):
        return len(value) > 0
    return True


def to_string(value: Value) -> str:
    """Text form: '' for null, 'true'/'false', numbers without a useless `.0`, ISO dates, and a
    selection as space-separated codes (as ODK does)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, tuple):
        return " ".join(value)
    return value


def to_date(value: Value) -> date | None:
    """A date from a date, a datetime (its date part) or `YYYY-MM-DD` text; else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def compare(operator: str, left: Value, right: Value) -> bool:
    """Apply a comparison operator (`= != < <= > >=`) under the null rules.

    - With a null operand, `=` and `!=` treat null as '' when the other side is null or a string
      (so `${x} = ''` asks "is x empty?"); every other comparison with null is false.
    - A boolean on either side: both sides as booleans.
    - A number on either side: both as numbers; false if the other side is not numeric.
    - A date on either side: both as dates; false if the other side is not a date.
    - Two strings: `=`/`!=` compare text; ordering compares as numbers when both are numeric,
      otherwise as text.
    """
    if left is None or right is None:
        other = right if left is None else left
        if operator in ("=", "!=") and (other is None or isinstance(other, str)):
            return _order(operator, "", other or "")
        return False
    if isinstance(left, tuple):
        left = to_string(left)
    if isinstance(right, tuple):
        right = to_string(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return _order(operator, int(to_boolean(left)), int(to_boolean(right)))
    if isinstance(left, int | float) or isinstance(right, int | float):
        a, b = to_number(left), to_number(right)
        if a is None or b is None:
            return False
        return _order(operator, a, b)
    if isinstance(left, date) or isinstance(right, date):
        left_date, right_date = to_date(left), to_date(right)
        if left_date is None or right_date is None:
            return False
        if isinstance(left, datetime) and isinstance(right, datetime):
            return _order(operator, left, right)
        return _order(operator, left_date, right_date)
    if operator in ("=", "!="):
        return _order(operator, left, right)
    a, b = to_number(left), to_number(right)
    if a is not None and b is not None:
        return _order(operator, a, b)
    return _order(operator, left, right)


def _order(operator: str, a: object, b: object) -> bool:
    # Operands always have the same comparable type here.
    if operator == "=":
        return a == b
    if operator == "!=":
        return a != b
    if operator == "<":
        return bool(a < b)  # type: ignore[operator]
    if operator == "<=":
        return bool(a <= b)  # type: ignore[operator]
    if operator == ">":
        return bool(a > b)  # type: ignore[operator]
    if operator == ">=":
        return bool(a >= b)  # type: ignore[operator]
    raise EvaluationError(f"unknown comparison {operator!r}")


def arithmetic(operator: str, left: Value, right: Value) -> Value:
    """Apply `+ - * div mod` (also `/`); null or non-numeric operands give null.

    Dates: `date - date` is a number of days, `date ± days` a date. Division or modulo by zero
    gives null. `div` of two integers is an integer when exact, else a decimal. `mod` keeps the
    sign of the dividend (XPath). Results out of range raise EvaluationError.
    """
    is_date_arithmetic, date_result = _date_arithmetic(operator, left, right)
    if is_date_arithmetic:
        return date_result
    a, b = to_number(left), to_number(right)
    if a is None or b is None:
        return None
    if operator == "+":
        return checked_number(a + b)
    if operator == "-":
        return checked_number(a - b)
    if operator == "*":
        return checked_number(a * b)
    if operator in ("div", "/"):
        if b == 0:
            return None
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return checked_number(a // b)
        return checked_number(a / b)
    if operator == "mod":
        if b == 0:
            return None
        if isinstance(a, int) and isinstance(b, int):
            remainder = abs(a) % abs(b)
            return -remainder if a < 0 else remainder
        return checked_number(math.fmod(a, b))
    raise EvaluationError(f"unknown operator {operator!r}")


def _date_arithmetic(operator: str, left: Value, right: Value) -> tuple[bool, Value]:
    """(whether dates are involved, the result if so)."""
    left_date = left if isinstance(left, date) and not isinstance(left, datetime) else None
    right_date = right if isinstance(right, date) and not isinstance(right, datetime) else None
    if left_date is None and right_date is None:
        return False, None
    if left_date is not None and right_date is not None:
        return True, (left_date - right_date).days if operator == "-" else None
    if operator == "+" and left_date is None:
        return _date_arithmetic("+", right, left)
    if operator not in ("+", "-") or left_date is None:
        return True, None
    days = to_number(right)
    if days is None or days != int(days) or abs(days) > 3_000_000:
        return True, None
    try:
        return True, left_date + timedelta(days=int(days) if operator == "+" else -int(days))
    except OverflowError:
        return True, None
