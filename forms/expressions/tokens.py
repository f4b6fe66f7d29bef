"""The tokenizer of the expression language: source text to a list of tokens with positions.

Never evaluates anything and never raises anything but ExpressionSyntaxError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from forms.expressions.errors import ExpressionSyntaxError
from forms.expressions.limits import MAX_EXPRESSION_LENGTH, MAX_NUMBER_LITERAL_LENGTH


class TokenKind(StrEnum):
    NUMBER = "number"
    STRING = "string"
    REFERENCE = "reference"
    CURRENT = "current"
    NAME = "name"
    FUNCTION = "function"
    OPERATOR = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    position: int


FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z_][A-Za-z0-9_]*)*")
_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"\$\{([^}]{0,100})\}")
_SPACES = re.compile(r"\s+")
_WORD_OPERATORS = frozenset({"and", "or", "div", "mod"})
_OPERATORS = ("!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/")


def tokenize(source: str) -> list[Token]:
    """Split `source` into tokens, ending with an END token.

    Raises ExpressionSyntaxError (with the position) on characters that start no token, on
    unterminated strings, on malformed `${...}` references, on number literals longer than
    MAX_NUMBER_LITERAL_LENGTH and on sources longer than MAX_EXPRESSION_LENGTH.
    """
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionSyntaxError(
            f"expression longer than {MAX_EXPRESSION_LENGTH} characters", MAX_EXPRESSION_LENGTH
        )
    tokens: list[Token] = []
    i = 0
    n = len(source)
    while i < n:
        c = source[i]
        space = _SPACES.match(source, i)
        if space:
            i = space.end()
            continue
        if c.isdigit() or (c == "." and i + 1 < n and source[i + 1].isdigit()):
            number = _NUMBER.match(source, i)
            if number is None:  # pragma: no cover - guarded by the condition above
                raise ExpressionSyntaxError("malformed number", i)
            text = number.group(0)
            if len(text) > MAX_NUMBER_LITERAL_LENGTH:
                raise ExpressionSyntaxError(
                    f"number literal longer than {MAX_NUMBER_LITERAL_LENGTH} characters", i
                )
            if not text.isascii():
                raise ExpressionSyntaxError("numbers must use ASCII digits", i)
            tokens.append(Token(TokenKind.NUMBER, text, i))
            i = number.end()
            continue
        if c in "'\"":
            end = source.find(c, i + 1)
            if end < 0:
                raise ExpressionSyntaxError("unterminated string", i)
            tokens.append(Token(TokenKind.STRING, source[i + 1 : end], i))
            i = end + 1
            continue
        if c == "$":
            ref = _REFERENCE.match(source, i)
            if ref is None or not FIELD_NAME.fullmatch(ref.group(1)):
                raise ExpressionSyntaxError("a reference must look like ${field_name}", i)
            tokens.append(Token(TokenKind.REFERENCE, ref.group(1), i))
            i = ref.end()
            continue
        if c == ".":
            tokens.append(Token(TokenKind.CURRENT, ".", i))
            i += 1
            continue
        if c.isascii() and (c.isalpha() or c == "_"):
            i = _append_name(source, i, tokens)
            continue
        if c == "(":
            tokens.append(Token(TokenKind.LPAREN, c, i))
            i += 1
            continue
        if c == ")":
            tokens.append(Token(TokenKind.RPAREN, c, i))
            i += 1
            continue
        if c == ",":
            tokens.append(Token(TokenKind.COMMA, c, i))
            i += 1
            continue
        operator = next((op for op in _OPERATORS if source.startswith(op, i)), None)
        if operator is not None:
            tokens.append(Token(TokenKind.OPERATOR, operator, i))
            i += len(operator)
            continue
        raise ExpressionSyntaxError(f"unexpected character {c!r}", i)
    tokens.append(Token(TokenKind.END, "", n))
    return tokens


def _append_name(source: str, i: int, tokens: list[Token]) -> int:
    # Hyphens belong to a name only in function names such as count-selected(...): elsewhere
    # `a-b` is a subtraction.
    name = _NAME.match(source, i)
    assert name is not None  # the caller checked the first character
    after = _SPACES.match(source, name.end())
    next_index = after.end() if after else name.end()
    is_word_operator = name.group(0) in _WORD_OPERATORS
    if not is_word_operator and next_index < len(source) and source[next_index] == "(":
        tokens.append(Token(TokenKind.FUNCTION, name.group(0), i))
        return name.end()
    simple = _SIMPLE_NAME.match(source, i)
    assert simple is not None
    tokens.append(Token(TokenKind.NAME, simple.group(0), i))
    return simple.end()
