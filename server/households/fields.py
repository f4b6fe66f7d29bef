"""Register rows as the canonical field dictionaries of the protocol (`forms.register` names).

Sensitive fields come out masked unless the caller asked to reveal and is allowed to — the caller
records that reveal in the audit log. Money is sent as a JSON number, dates as ISO strings.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any

from forms.register import HOUSEHOLD, MEMBER, EntitySpec
from server.households.models import Household, Member
from server.sensitive import SensitiveCodec


def money(value: Decimal) -> int | float:
    """Money as a JSON number: whole amounts as integers."""
    return int(value) if value == value.to_integral_value() else float(value)


def to_json_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _plain_fields(spec: EntitySpec, row: Household | Member) -> dict[str, Any]:
    return {
        name: to_json_value(getattr(row, name))
        for name, field in spec.fields.items()
        if not (field.sensitive and field.kind == "text")
    }


def household_fields(row: Household) -> dict[str, Any]:
    fields = _plain_fields(HOUSEHOLD, row)
    fields.update(row.extra)
    return fields


def member_fields(
    row: Member, *, codec: SensitiveCodec | None = None, reveal: bool = False
) -> dict[str, Any]:
    """The member's fields; identity number and phone masked unless `reveal` (needs `codec`)."""
    fields = _plain_fields(MEMBER, row)
    for name in ("id_number", "phone"):
        # The ciphertext is read only to reveal: a row may hold just the masked columns.
        cipher = getattr(row, f"{name}_cipher") if reveal and codec is not None else None
        if cipher:
            assert codec is not None
            fields[name] = codec.reveal(name, cipher)
        else:
            fields[name] = getattr(row, f"{name}_masked")
    fields.update(row.extra)
    return fields


def set_field(row: Household | Member, name: str, value: Any, codec: SensitiveCodec) -> None:
    """Store one canonical (JSON) field value into its column(s) of an ORM row."""
    entity = "household" if isinstance(row, Household) else "member"
    for column, column_value in column_values(entity, name, value, codec, extra=row.extra).items():
        setattr(row, column, column_value)


def column_values(
    entity: str, name: str, value: Any, codec: SensitiveCodec, *, extra: dict[str, Any]
) -> dict[str, Any]:
    """The column values that store canonical field `name` = `value` (JSON form).

    The inverse of `household_fields` / `member_fields`: enums by code, money as Decimal, dates
    parsed from ISO strings, sensitive text protected (hash, mask, ciphertext); names the register
    does not know go into `extra` (a new dict built from `extra`, which is not modified)."""
    spec = HOUSEHOLD if entity == "household" else MEMBER
    field = spec.fields.get(name)
    if field is None:
        return {"extra": {**extra, name: value}}
    if field.sensitive and field.kind == "text":
        if value in (None, ""):
            return dict.fromkeys((f"{name}_hash", f"{name}_masked", f"{name}_cipher"))
        protected = codec.protect(name, str(value))
        return {
            f"{name}_hash": protected.hash,
            f"{name}_masked": protected.masked,
            f"{name}_cipher": protected.cipher,
        }
    return {name: _column_value(field.kind, field.choices, name, value)}


def _column_value(kind: str, choices: Any, name: str, value: Any) -> Any:
    if value is None:
        return [] if kind == "select_multiple" else None
    if kind == "select_one" and choices is not None:
        return choices(value)
    if kind == "select_multiple":
        return sorted(str(v) for v in value)
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if name in {"head_member_id", "household_id"}:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    return value
