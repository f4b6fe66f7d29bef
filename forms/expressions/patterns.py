"""Regular expressions that are safe to run on answers: bounded in length and free of the nested
repetition that makes backtracking explode.

Used by `regex()` in expressions and by a field's `pattern`. Never compiles a pattern that has not
passed `compile_safe_pattern`.
"""

from __future__ import annotations

import re

from forms.expressions.limits import MAX_PATTERN_LENGTH


class UnsafePatternError(ValueError):
    """The pattern is too long, invalid, or has a shape that can backtrack exponentially."""


_BOUNDED_REPEAT = re.compile(r"\{\d*(,\d*)?\}")


def compile_safe_pattern(pattern: str) -> re.Pattern[str]:
    """Compile `pattern` after checking it is safe to run on untrusted text.

    Refused (UnsafePatternError): more than MAX_PATTERN_LENGTH characters; backreferences; a
    repeated group (`(...)*`, `(...)+`, `(...){n,m}`) that itself contains a repetition or an
    alternation, which are the shapes behind catastrophic backtracking; anything `re` rejects.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePatternError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    _check_shape(pattern)
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as err:
        raise UnsafePatternError(f"invalid pattern: {err}") from None


def _check_shape(pattern: str) -> None:
    # Each open group records whether it contains a repetition or an alternation ("risky").
    stack: list[bool] = [False]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and pattern[i + 1] in "123456789":
                raise UnsafePatternError("backreferences are not allowed")
            i += 2
            continue
        if c == "[":
            i = _skip_class(pattern, i)
            continue
        if c == "(":
            if pattern.startswith("(?P=", i):
                raise UnsafePatternError("backreferences are not allowed")
            stack.append(False)
            i += 1
            if i < n and pattern[i] == "?":
                i += 1  # group flags such as ?: ?= ?! ?P<name> are not repetitions
            continue
        if c == ")":
            inner_risky = stack.pop() if len(stack) > 1 else False
            i += 1
            repeated_len = _repetition_length(pattern, i)
            is_optional_only = pattern[i : i + repeated_len] in ("?", "??")
            if repeated_len and inner_risky and not is_optional_only:
                raise UnsafePatternError(
                    "a repeated group may not contain another repetition or an alternation"
                )
            stack[-1] = stack[-1] or inner_risky or bool(repeated_len)
            i += repeated_len
            continue
        if c == "|":
            stack[-1] = True
            i += 1
            continue
        length = _repetition_length(pattern, i)
        if length:
            stack[-1] = True
            i += length
            continue
        i += 1


def _repetition_length(pattern: str, i: int) -> int:
    """Length of the repetition operator (with its lazy/possessive suffix) starting at `i`."""
    if i >= len(pattern):
        return 0
    c = pattern[i]
    if c in "*+?":
        length = 1
    elif c == "{":
        m = _BOUNDED_REPEAT.match(pattern, i)
        if m is None or m.group(0) == "{}":
            return 0
        length = len(m.group(0))
    else:
        return 0
    if i + length < len(pattern) and pattern[i + length] in "?+":
        length += 1
    return length


def _skip_class(pattern: str, i: int) -> int:
    """Index just after the character class opened at `i`."""
    n = len(pattern)
    j = i + 1
    if j < n and pattern[j] == "^":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1
