"""Register rows as pulled entities, built from plain Core rows of just the wire columns.

A first sync sends thousands of entities and every incremental pull sends a few; turning each row
into its protocol dictionary was most of a pull's own time. Here the work per column is decided
once, from the column's type, not per value: enumerations are selected as their stored codes (no
enum member is built), and only dates, money and ids need converting. The result is exactly what
`server.households.fields` gives for the same row (tested on both databases); sensitive text goes
out masked, as a pull always sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Enum, Numeric, String, TypeDecorator, Uuid, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from forms.register import HOUSEHOLD, MEMBER, EntitySpec
from server.households.fields import money
from server.households.models import Household, Member
from server.households.versions import stored_clocks

Convert = Callable[[Any], Any]


def _money(value: Decimal | None) -> int | float | None:
    return None if value is None else money(value)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _text_id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _wire(column: Any) -> tuple[ColumnElement[Any], Convert | None]:
    """What to select for `column` and how its value becomes JSON (None: as it comes)."""
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, Enum):
        return type_coerce(column, String()).label(column.key), None
    if isinstance(kind, Numeric):
        return column, _money
    if isinstance(kind, Date | DateTime):
        return column, _iso
    if isinstance(kind, Uuid):
        return column, _text_id
    return column, None


@dataclass(frozen=True)
class WireShape:
    """The columns to select for one entity type and how a row of them becomes an entity."""

    entity: str
    columns: tuple[ColumnElement[Any], ...]
    fields: tuple[tuple[str, int, Convert | None], ...]  # name, position in the row, conversion

    def entity_of(self, row: Sequence[Any]) -> dict[str, Any]:
        """The pulled entity for a row selected with `columns` (in that order)."""
        fields = {
            name: row[i] if convert is None else convert(row[i]) for name, i, convert in self.fields
        }
        fields.update(row[_EXTRA])
        return {
            "entity": self.entity,
            "id": str(row[_ID]),
            "rev": row[_REV],
            "deleted": row[_DELETED],
            "fields": fields,
            "clocks": stored_clocks(row[_VERSIONS]),
        }


_ID, _REV, _DELETED, _VERSIONS, _EXTRA = range(5)


def _shape(model: type[Household] | type[Member], spec: EntitySpec) -> WireShape:
    table = model.__table__
    names = ["id", "rev", "deleted", "versions", "extra"]
    field_columns: list[tuple[str, str]] = []  # field name, column name
    for name, field in spec.fields.items():
        if not (field.sensitive and field.kind == "text"):
            field_columns.append((name, name))
    for name, field in spec.fields.items():
        if field.sensitive and field.kind == "text":
            field_columns.append((name, f"{name}_masked"))  # a pull never reveals
    selected: list[ColumnElement[Any]] = []
    positions: dict[str, int] = {}
    converts: dict[str, Convert | None] = {}
    for column_name in [*names, *(c for _, c in field_columns)]:
        if column_name in positions:
            continue
        wanted, convert = _wire(table.columns[column_name])
        positions[column_name] = len(selected)
        converts[column_name] = convert
        selected.append(wanted)
    fields = tuple((name, positions[c], converts[c]) for name, c in field_columns)
    return WireShape(spec.name, tuple(selected), fields)


HOUSEHOLD_WIRE = _shape(Household, HOUSEHOLD)
MEMBER_WIRE = _shape(Member, MEMBER)
