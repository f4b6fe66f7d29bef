"""The one exception family of the expression language: syntax errors found while parsing (always
with a character position) and errors found while evaluating.

Nothing in `forms.expressions` may let any other exception escape to its callers.
"""

from __future__ import annotations


class ExpressionError(Exception):
    """Base class of every error the expression language raises.

    `position` is the 0-based character offset in the expression source where the problem was
    found, or None when the problem is not tied to one place.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        where = f" (at character {position})" if position is not None else ""
        super().__init__(f"{message}{where}")


class ExpressionSyntaxError(ExpressionError):
    """The source text is not a valid expression, uses an unknown name, or exceeds a limit."""

    position: int

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message, position)


class EvaluationError(ExpressionError):
    """A valid expression could not be evaluated (a type misuse, a result out of bounds)."""
