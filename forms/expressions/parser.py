"""The parser of the expression language: tokens to a syntax tree, by recursive descent with
XPath's precedence (or < and < equality < ordering < additive < multiplicative < unary minus).

Never evaluates anything. Every failure is an ExpressionSyntaxError carrying a position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forms.expressions.errors import ExpressionSyntaxError
from forms.expressions.functions import FUNCTION_SPECS
from forms.expressions.limits import MAX_NESTING_DEPTH
from forms.expressions.nodes import (
    Call,
    Chain,
    ChoiceProperty,
    Current,
    Literal,
    Negation,
    Node,
    Reference,
    iter_choice_properties,
    iter_references,
)
from forms.expressions.patterns import UnsafePatternError, compile_safe_pattern
from forms.expressions.tokens import Token, TokenKind, tokenize

_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"or"}),
    frozenset({"and"}),
    frozenset({"=", "!="}),
    frozenset({"<", "<=", ">", ">="}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "div", "mod"}),
)
_WORD_OPERATORS = frozenset({"or", "and", "div", "mod"})


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its source text and its syntax tree.

    Two expressions are equal when their sources are equal.
    """

    source: str
    root: Node = field(compare=False, repr=False)

    @property
    def references(self) -> tuple[str, ...]:
        """The field names referenced with `${...}`, in order of first appearance."""
        names = [ref.name for ref, _ in iter_references(self.root)]
        return tuple(dict.fromkeys(names))

    @property
    def choice_properties(self) -> tuple[str, ...]:
        """The bare choice-column names used (choice filters only)."""
        return tuple(dict.fromkeys(p.name for p in iter_choice_properties(self.root)))


def parse_expression(
    source: str, *, allow_current: bool = False, allow_choice_properties: bool = False
) -> Expression:
    """Parse `source` into an Expression.

    `allow_current` permits `.` (constraints); `allow_choice_properties` permits bare names that
    stand for a column of the choice being filtered (choice filters). Function names and their
    argument counts are checked here, and `regex()` needs a string literal pattern that passes
    `compile_safe_pattern`. Raises ExpressionSyntaxError, always with a position, for anything
    else: bad syntax, unknown functions, limits exceeded (length, nesting depth, literal size).
    """
    if not isinstance(source, str):
        raise ExpressionSyntaxError("an expression must be a string", 0)
    parser = _Parser(tokenize(source), allow_current, allow_choice_properties)
    root = parser.parse()
    return Expression(source=source, root=root)


class _Parser:
    def __init__(
        self, tokens: list[Token], allow_current: bool, allow_choice_properties: bool
    ) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.allow_current = allow_current
        self.allow_choice_properties = allow_choice_properties

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.END:
            self.index += 1
        return token

    def parse(self) -> Node:
        if self.token.kind is TokenKind.END:
            raise ExpressionSyntaxError("empty expression", 0)
        node = self.level(0)
        if not self.at_end():
            raise ExpressionSyntaxError(f"unexpected {self.describe(self.token)}", self.position)
        return node

    def at_end(self) -> bool:
        return self.tokens[self.index].kind is TokenKind.END

    @property
    def position(self) -> int:
        return self.token.position

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            raise ExpressionSyntaxError(
                f"expression nested deeper than {MAX_NESTING_DEPTH} levels", position
            )

    def operator_at(self, level: int) -> str | None:
        token = self.token
        if token.kind is TokenKind.OPERATOR and token.text in _LEVELS[level]:
            return token.text
        if token.kind is TokenKind.NAME and token.text in _LEVELS[level]:
            return token.text
        return None

    def level(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        start = self.position
        first = self.level(level + 1)
        rest: list[tuple[str, Node]] = []
        while (operator := self.operator_at(level)) is not None:
            self.advance()
            rest.append((operator, self.level(level + 1)))
        if not rest:
            return first
        return Chain(first=first, rest=tuple(rest), position=start)

    def unary(self) -> Node:
        token = self.token
        if token.kind is TokenKind.OPERATOR and token.text == "-":
            self.advance()
            self.enter(token.position)
            operand = self.unary()
            self.depth -= 1
            return Negation(operand=operand, position=token.position)
        return self.primary()

    def primary(self) -> Node:
        token = self.advance()
        if token.kind is TokenKind.NUMBER:
            text = token.text
            value: int | float = float(text) if "." in text else int(text)
            return Literal(value=value, position=token.position)
        if token.kind is TokenKind.STRING:
            return Literal(value=token.text, position=token.position)
        if token.kind is TokenKind.REFERENCE:
            return Reference(name=token.text, position=token.position)
        if token.kind is TokenKind.CURRENT:
            if not self.allow_current:
                raise ExpressionSyntaxError(
                    "'.' (the current answer) is only allowed in a constraint", token.position
                )
            return Current(position=token.position)
        if token.kind is TokenKind.LPAREN:
            self.enter(token.position)
            node = self.level(0)
            self.expect(TokenKind.RPAREN, "')'")
            self.depth -= 1
            return node
        if token.kind is TokenKind.FUNCTION:
            return self.call(token)
        if token.kind is TokenKind.NAME and token.text not in _WORD_OPERATORS:
            if not self.allow_choice_properties:
                raise ExpressionSyntaxError(
                    f"unknown name {token.text!r} (write ${{{token.text}}} to use a field)",
                    token.position,
                )
            return ChoiceProperty(name=token.text, position=token.position)
        raise ExpressionSyntaxError(f"unexpected {self.describe(token)}", token.position)

    def call(self, name_token: Token) -> Node:
        name = name_token.text
        spec = FUNCTION_SPECS.get(name)
        if spec is None:
            raise ExpressionSyntaxError(f"unknown function {name}()", name_token.position)
        self.enter(name_token.position)
        self.expect(TokenKind.LPAREN, "'('")
        arguments: list[Node] = []
        if self.token.kind is not TokenKind.RPAREN:
            arguments.append(self.level(0))
            while self.token.kind is TokenKind.COMMA:
                self.advance()
                arguments.append(self.level(0))
        self.expect(TokenKind.RPAREN, "')' or ','")
        self.depth -= 1
        count = len(arguments)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            expected = (
                str(spec.min_args)
                if spec.min_args == spec.max_args
                else f"at least {spec.min_args}"
                if spec.max_args is None
                else f"{spec.min_args} to {spec.max_args}"
            )
            raise ExpressionSyntaxError(
                f"{name}() takes {expected} argument(s), got {count}", name_token.position
            )
        if name == "regex":
            self.check_pattern(arguments[1], name_token.position)
        if name == "count" and not isinstance(arguments[0], Reference):
            raise ExpressionSyntaxError(
                "count() takes a ${reference} to a repeat or a field", name_token.position
            )
        return Call(name=name, arguments=tuple(arguments), position=name_token.position)

    def check_pattern(self, argument: Node, position: int) -> None:
        if not (isinstance(argument, Literal) and isinstance(argument.value, str)):
            raise ExpressionSyntaxError(
                "regex() needs its pattern as a string literal", argument.position
            )
        try:
            compile_safe_pattern(argument.value)
        except UnsafePatternError as err:
            raise ExpressionSyntaxError(f"regex(): {err}", argument.position) from None

    def expect(self, kind: TokenKind, what: str) -> Token:
        if self.token.kind is not kind:
            raise ExpressionSyntaxError(
                f"expected {what}, found {self.describe(self.token)}", self.position
            )
        return self.advance()

    @staticmethod
    def describe(token: Token) -> str:
        if token.kind is TokenKind.END:
            return "end of expression"
        return f"{token.text!r}"
