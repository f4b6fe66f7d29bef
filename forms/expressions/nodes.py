"""The syntax tree of a parsed expression: small frozen dataclasses, one per construct.

Pure data: nodes never evaluate themselves and never refer back to a form definition.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Literal:
    """A number or string written in the source."""

    value: int | float | str
    position: int


@dataclass(frozen=True)
class Reference:
    """`${name}`: the value of another field."""

    name: str
    position: int


@dataclass(frozen=True)
class Current:
    """`.`: the value of the field whose constraint is being checked."""

    position: int


@dataclass(frozen=True)
class ChoiceProperty:
    """A bare name inside a choice filter: a column of the choice being filtered."""

    name: str
    position: int


@dataclass(frozen=True)
class Negation:
    """Unary minus."""

    operand: Node
    position: int


@dataclass(frozen=True)
class Chain:
    """Operands joined by operators of one precedence level, applied left to right.

    Kept flat (not as nested binary nodes) so that `a + b + c + …` does not deepen the tree.
    """

    first: Node
    rest: tuple[tuple[str, Node], ...]
    position: int


@dataclass(frozen=True)
class Call:
    """A function call such as `selected(${f}, 'a')`."""

    name: str
    arguments: tuple[Node, ...]
    position: int


Node = Literal | Reference | Current | ChoiceProperty | Negation | Chain | Call


def iter_references(node: Node, *, aggregated: bool = False) -> list[tuple[Reference, bool]]:
    """Every `${...}` in `node`, in source order, each with whether it is the direct argument of an
    aggregate function (`count`, `sum`), where a reference may stand for many values."""
    found: list[tuple[Reference, bool]] = []
    stack: list[tuple[Node, bool]] = [(node, aggregated)]
    while stack:
        current, is_aggregated = stack.pop()
        if isinstance(current, Reference):
            found.append((current, is_aggregated))
        elif isinstance(current, Negation):
            stack.append((current.operand, False))
        elif isinstance(current, Chain):
            stack.extend((operand, False) for _, operand in reversed(current.rest))
            stack.append((current.first, False))
        elif isinstance(current, Call):
            takes_many = current.name in AGGREGATE_FUNCTIONS
            stack.extend((argument, takes_many) for argument in reversed(current.arguments))
    return found


def iter_choice_properties(node: Node) -> list[ChoiceProperty]:
    """Every bare choice-column name in `node`, in source order."""
    found: list[ChoiceProperty] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ChoiceProperty):
            found.append(current)
        elif isinstance(current, Negation):
            stack.append(current.operand)
        elif isinstance(current, Chain):
            stack.extend(operand for _, operand in reversed(current.rest))
            stack.append(current.first)
        elif isinstance(current, Call):
            stack.extend(reversed(current.arguments))
    return found


AGGREGATE_FUNCTIONS = frozenset({"count", "sum"})
