"""The size limits that keep expressions cheap to parse and evaluate, whoever wrote them.

Changing a limit changes which definitions load: raise them only with a reason, never remove them.
"""

from __future__ import annotations

MAX_EXPRESSION_LENGTH = 2_000
"""Characters in one expression's source."""

MAX_NESTING_DEPTH = 32
"""Parentheses, function calls and unary minus nested inside one another."""

MAX_NUMBER_LITERAL_LENGTH = 24
"""Characters of one number literal (digits and the decimal point)."""

MAX_STRING_LENGTH = 10_000
"""Characters of any string an expression produces or matches a pattern against."""

MAX_INTEGER = 10**30
"""Largest integer magnitude a computation may produce."""

MAX_FLOAT = 1e300
"""Largest decimal magnitude a computation may produce."""

MAX_PATTERN_LENGTH = 200
"""Characters of one regular expression (in `regex()` and in a field's `pattern`)."""
