"""Reviewing conflicts: listing and reading them within the caller's regions, with both values and
where each came from, and resolving one by a new server write that tablets pull like any other.

Sensitive values (identity numbers, phones) are stored in conflict rows as `{"masked", "cipher"}`
— never in clear — and shown masked unless the caller may reveal them and asks to; every reveal is
audited. A resolution is stamped by the server clock after it has observed every clock involved,
so it is later than both conflicting writes and than the field's current value: it wins the merge.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, String, func, select
from sqlalchemy.orm import Session, aliased

from forms.register import ENTITIES, MONEY_LIMIT, MONEY_SCALE, RegisterField, find_register_field
from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.conflicts.models import Conflict, ConflictStatus
from server.db import utcnow
from server.errors import Conflict as ConflictError
from server.errors import Forbidden, NotFound, ValidationFailed
from server.households.models import Household
from server.regions.codes import RegionLevel, code_range, is_valid_code, level_of
from server.regions.models import Region
from server.sensitive import SensitiveCodec, mask, protected_for_review
from server.submissions.models import Submission
from server.sync.apply import TABLES, apply_server_write
from server.users.models import Role, User
from sync_protocol.clock import ClockFormatError, Hlc, HybridClock
from sync_protocol.errors import ItemErrorCode

REVIEW_ROLES = (Role.SUPERVISOR, Role.ADMIN)
# Sensitive text: stored protected in the register and in conflict rows, shown masked.
SENSITIVE_TEXT = frozenset(
    (entity, name)
    for entity, spec in ENTITIES.items()
    for name, field in spec.fields.items()
    if field.sensitive and field.kind == "text"
)
_ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Money columns are NUMERIC(14, 2).
_STATUSES = {status.value: status for status in ConflictStatus}


# --- what the service returns ------------------------------------------------------------------


@dataclass(frozen=True)
class ConflictSide:
    value: Any
    clock: str
    instance_id: uuid.UUID | None
    device_id: uuid.UUID | None
    user: str | None
    collected_at: datetime | None
    received_at: datetime | None


@dataclass(frozen=True)
class Resolution:
    value: Any
    clock: str | None
    resolved_by: str | None
    resolved_at: datetime


@dataclass(frozen=True)
class ConflictView:
    id: uuid.UUID
    entity: str
    entity_id: uuid.UUID
    field: str
    village_code: str
    status: str
    created_at: datetime
    sensitive: bool
    winner: ConflictSide
    loser: ConflictSide
    resolution: Resolution | None


@dataclass(frozen=True)
class ConflictPage:
    conflicts: list[ConflictView]
    total: int
    limit: int
    offset: int
    revealed: bool


@dataclass(frozen=True)
class ResolvedConflict(ConflictView):
    entity_rev: int = 0


@dataclass(frozen=True)
class ConflictFilters:
    status: str | None = None
    region: str | None = None
    entity: str | None = None
    entity_id: uuid.UUID | None = None
    field: str | None = None
    limit: int = 50
    offset: int = 0


# --- storing sensitive values --------------------------------------------------------------------


def stored_conflict_value(codec: SensitiveCodec, entity: str, field: str, value: Any) -> Any:
    """How a conflict row keeps a value (see `protected_for_review`)."""
    kind = field if (entity, field) in SENSITIVE_TEXT else None
    return protected_for_review(codec, kind, value)


def _shown(codec: SensitiveCodec, entity: str, field: str, stored: Any, *, reveal: bool) -> Any:
    """A stored conflict value as the caller may see it."""
    if (entity, field) not in SENSITIVE_TEXT or stored is None:
        return stored
    if isinstance(stored, dict):
        cipher = stored.get("cipher")
        if reveal and isinstance(cipher, str) and cipher:
            return codec.reveal(field, cipher)
        return stored.get("masked")
    # A bare string (only ever the masked form): masking it again changes nothing, and would
    # keep a clear value from showing if one were ever stored by mistake.
    return str(stored) if reveal else mask(field, str(stored))


def _clear_value(codec: SensitiveCodec, conflict: Conflict, stored: Any, side: str) -> Any:
    """The real value a `choose` refers to (sensitive ones decrypted), or a 422."""
    if (conflict.entity_type, conflict.field) not in SENSITIVE_TEXT or stored is None:
        return stored
    cipher = stored.get("cipher") if isinstance(stored, dict) else None
    if not isinstance(cipher, str) or not cipher:
        raise ValidationFailed(
            "the chosen value is only kept masked",
            [
                {
                    "path": "choose",
                    "code": ItemErrorCode.INVALID_VALUE.value,
                    "message": f"The {side} value of {conflict.field} is kept masked only; "
                    "send the full value as value instead.",
                }
            ],
        )
    return codec.reveal(conflict.field, cipher)


# --- reading -------------------------------------------------------------------------------------


def _conflict_query() -> Select[Any]:
    """Conflicts with the origin of both values and the resolver's name: one statement."""
    winner, loser = aliased(Submission), aliased(Submission)
    winner_user, loser_user, resolver = aliased(User), aliased(User), aliased(User)
    return (
        select(
            Conflict,
            winner.device_id,
            winner_user.username,
            winner.collected_at,
            winner.received_at,
            loser.device_id,
            loser_user.username,
            loser.collected_at,
            loser.received_at,
            resolver.username,
        )
        .outerjoin(winner, winner.instance_id == Conflict.winner_submission_id)
        .outerjoin(winner_user, winner_user.id == winner.user_id)
        .outerjoin(loser, loser.instance_id == Conflict.loser_submission_id)
        .outerjoin(loser_user, loser_user.id == loser.user_id)
        .outerjoin(resolver, resolver.id == Conflict.resolved_by_id)
    )


def _view(codec: SensitiveCodec, row: Sequence[Any], *, reveal: bool) -> ConflictView:
    conflict: Conflict = row[0]
    entity, field = conflict.entity_type, conflict.field

    def side(value: Any, clock: str, instance_id: uuid.UUID | None, offset: int) -> ConflictSide:
        device_id, user, collected_at, received_at = row[offset : offset + 4]
        return ConflictSide(
            value=_shown(codec, entity, field, value, reveal=reveal),
            clock=clock,
            instance_id=instance_id,
            device_id=device_id,
            user=user,
            collected_at=collected_at,
            received_at=received_at,
        )

    resolution = None
    if conflict.resolved_at is not None:
        resolution = Resolution(
            value=_shown(codec, entity, field, conflict.resolution_value, reveal=reveal),
            clock=conflict.resolution_clock,
            resolved_by=row[9],
            resolved_at=conflict.resolved_at,
        )
    return ConflictView(
        id=conflict.id,
        entity=entity,
        entity_id=conflict.entity_id,
        field=field,
        village_code=conflict.village_code,
        status=conflict.status.value,
        created_at=conflict.created_at,
        sensitive=(entity, field) in SENSITIVE_TEXT,
        winner=side(conflict.winner_value, conflict.winner_clock, conflict.winner_submission_id, 1),
        loser=side(conflict.loser_value, conflict.loser_clock, conflict.loser_submission_id, 5),
        resolution=resolution,
    )


def _ensure_may_reveal(actor: Actor, settings: Settings) -> None:
    if actor.role.value not in settings.reveal_roles:
        raise Forbidden("your role may not reveal identity numbers or phones")


def _audit_reveals(session: Session, actor: Actor, views: Sequence[ConflictView]) -> None:
    for view in views:
        values = (view.winner.value, view.loser.value)
        if view.sensitive and any(value is not None for value in values):
            audit.record(
                session,
                "reveal_sensitive",
                user_id=actor.user_id,
                object_type="conflict",
                object_id=str(view.id),
                region_code=view.village_code,
                address=actor.address,
                details={"fields": [view.field], "entity": view.entity, "id": str(view.entity_id)},
            )


def list_conflicts(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    filters: ConflictFilters,
    *,
    reveal: bool = False,
) -> ConflictPage:
    """The conflicts in the caller's regions matching `filters`, newest first, one page.

    `filters.region` narrows the caller's regions and must itself be covered (403). Sensitive
    values are masked unless `reveal` (403 for roles not in `REVEAL_ROLES`; audited)."""
    actor.ensure_role(*REVIEW_ROLES)
    if reveal:
        _ensure_may_reveal(actor, settings)
    conditions = [actor.region_filter(Conflict.village_code)]
    if filters.region is not None:
        if not is_valid_code(filters.region):
            raise ValidationFailed(
                "not a division code",
                [
                    {
                        "path": "region",
                        "code": ItemErrorCode.INVALID_VALUE.value,
                        "message": f"{filters.region} is not a valid 12-digit division code.",
                    }
                ],
            )
        actor.ensure_covers(filters.region, "this region")
        low, high = code_range(filters.region)
        conditions.append(Conflict.village_code.between(low, high))
    if filters.status is not None:
        conditions.append(Conflict.status == _STATUSES[filters.status])
    if filters.entity is not None:
        conditions.append(Conflict.entity_type == filters.entity)
    if filters.entity_id is not None:
        conditions.append(Conflict.entity_id == filters.entity_id)
    if filters.field is not None:
        conditions.append(Conflict.field == filters.field)
    total = session.scalar(select(func.count()).select_from(Conflict).where(*conditions)) or 0
    rows = session.execute(
        _conflict_query()
        .where(*conditions)
        .order_by(Conflict.created_at.desc(), Conflict.id.desc())
        .limit(filters.limit)
        .offset(filters.offset)
    ).all()
    views = [_view(codec, row, reveal=reveal) for row in rows]
    if reveal:
        _audit_reveals(session, actor, views)
    return ConflictPage(
        conflicts=views,
        total=total,
        limit=filters.limit,
        offset=filters.offset,
        revealed=reveal,
    )


def get_conflict(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    conflict_id: uuid.UUID,
    *,
    reveal: bool = False,
) -> ConflictView:
    """One conflict: 404 if unknown, 403 outside the caller's regions; masking as in the list."""
    actor.ensure_role(*REVIEW_ROLES)
    if reveal:
        _ensure_may_reveal(actor, settings)
    row = session.execute(_conflict_query().where(Conflict.id == conflict_id)).first()
    if row is None:
        raise NotFound("no such conflict", details={"id": str(conflict_id)})
    actor.ensure_covers(row[0].village_code, "this conflict")
    view = _view(codec, row, reveal=reveal)
    if reveal:
        _audit_reveals(session, actor, [view])
    return view


# --- resolving -----------------------------------------------------------------------------------


def resolve_conflict(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    clock: HybridClock,
    conflict_id: uuid.UUID,
    *,
    choose: str | None = None,
    value: Any = None,
) -> ResolvedConflict:
    """Settle a conflict: keep the `choose`n side (`"winner"`/`"loser"`) or, without `choose`,
    `value` (None clears the field), as a new server write stamped later than every clock
    involved; the register field changes, the change log grows, tablets pull it.

    404 unknown, 403 outside the caller's regions, 409 already resolved (concurrent resolutions
    are serialised by a row lock: the second one sees the first), 422 for a value the register
    field cannot hold, with `{path, code, message}` details."""
    actor.ensure_role(*REVIEW_ROLES)
    conflict = session.scalars(
        select(Conflict).where(Conflict.id == conflict_id).with_for_update()
    ).one_or_none()
    if conflict is None:
        raise NotFound("no such conflict", details={"id": str(conflict_id)})
    actor.ensure_covers(conflict.village_code, "this conflict")
    if conflict.status is ConflictStatus.RESOLVED:
        raise ConflictError(
            "this conflict is already resolved",
            details={
                "id": str(conflict.id),
                "resolved_at": conflict.resolved_at.isoformat() if conflict.resolved_at else None,
            },
        )
    field_spec = find_register_field(conflict.entity_type, conflict.field)
    path = "value"
    if choose is not None:
        path = "choose"
        stored = conflict.winner_value if choose == "winner" else conflict.loser_value
        value = _clear_value(codec, conflict, stored, choose)
    chosen = _register_value(session, actor, conflict.entity_type, field_spec, value, path)
    # The resolution must be later than both writes it settles; apply_server_write makes it later
    # than the field's current value too, under the household lock.
    _observe(clock, [conflict.winner_clock, conflict.loser_clock])
    written = apply_server_write(
        session,
        actor,
        conflict.entity_type,
        conflict.entity_id,
        conflict.field,
        chosen,
        clock=clock,
        codec=codec,
    )
    rev, stamp = written.rev, written.clock
    conflict.status = ConflictStatus.RESOLVED
    conflict.resolved_at = utcnow()
    conflict.resolved_by_id = actor.user_id
    conflict.resolution_value = stored_conflict_value(
        codec, conflict.entity_type, conflict.field, chosen
    )
    conflict.resolution_clock = str(stamp)
    audit.record(
        session,
        "resolve_conflict",
        user_id=actor.user_id,
        object_type="conflict",
        object_id=str(conflict.id),
        region_code=conflict.village_code,
        address=actor.address,
        details={
            "entity": conflict.entity_type,
            "id": str(conflict.entity_id),
            "field": conflict.field,
            "choice": choose or "value",
            "clock": str(stamp),
            "rev": rev,
        },
    )
    session.flush()
    row = session.execute(_conflict_query().where(Conflict.id == conflict.id)).one()
    view = _view(codec, row, reveal=False)
    return ResolvedConflict(**vars(view), entity_rev=rev)


def entered_value(entity: str, field: str, text: str) -> Any:
    """A value typed into a form for the register field `entity.field`, as the JSON value
    `resolve_conflict` takes: a number for numbers, true/false for a yes/no field, a list for a
    multiple choice (codes separated by commas), None for nothing (clears the field). Text that
    is not of the field's kind is passed on as it is, for `resolve_conflict` to refuse (422)."""
    text = text.strip()
    spec = find_register_field(entity, field)
    if not text:
        return None
    if spec is None:
        return text
    if spec.kind == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if spec.kind == "decimal":
        try:
            number = Decimal(text)
        except InvalidOperation:
            return text
        if not number.is_finite():
            return text
        return int(number) if number == number.to_integral_value() else float(number)
    if spec.kind == "boolean":
        lowered = text.lower()
        if lowered in {"true", "yes", "1", "是"}:
            return True
        if lowered in {"false", "no", "0", "否"}:
            return False
        return text
    if spec.kind == "select_multiple":
        return [code.strip() for code in re.split(r"[,，、\s]+", text) if code.strip()]
    return text


def _observe(clock: HybridClock, stamps: Sequence[str | None]) -> None:
    """Advance `clock` past every well-formed stamp in `stamps`."""
    for text in stamps:
        try:
            clock.observe(Hlc.parse(text or ""))
        except ClockFormatError:
            continue


# --- checking a value against its register field -------------------------------------------------


def _register_value(
    session: Session,
    actor: Actor,
    entity: str,
    field: RegisterField | None,
    value: Any,
    path: str,
) -> Any:
    """`value` normalised for its register field, or a 422 naming what is wrong.

    Names the register does not know (form extension properties) take any JSON value."""
    if field is None:
        return value
    problem = _problem(session, actor, entity, field, value)
    if problem is not None:
        code, message = problem
        raise ValidationFailed(
            f"the value does not suit {entity}.{field.name}",
            [{"path": path, "code": code.value, "message": message}],
        )
    return _normalised(field, value)


def _problem(
    session: Session, actor: Actor, entity: str, field: RegisterField, value: Any
) -> tuple[ItemErrorCode, str] | None:
    if field.server_owned:
        return ItemErrorCode.FIELD_READ_ONLY, f"{field.name} is decided by the review workflow."
    column = _column_for(entity, field)
    if value is None:
        if column is not None and not column.nullable and field.kind != "select_multiple":
            return ItemErrorCode.REQUIRED, f"{field.name} may not be empty."
        return None
    kind = field.kind
    if kind == "text":
        return _text_problem(session, actor, entity, field, column, value)
    if kind == "boolean":
        return None if isinstance(value, bool) else (ItemErrorCode.INVALID_TYPE, "Not a boolean.")
    if kind == "integer":
        if type(value) is not int:
            return ItemErrorCode.INVALID_TYPE, "Not an integer."
        return None
    if kind == "decimal":
        return _decimal_problem(value)
    if kind == "date":
        if not isinstance(value, str) or not _ISO_DATE_RE.fullmatch(value):
            return ItemErrorCode.INVALID_TYPE, "Not a date of the form YYYY-MM-DD."
        try:
            date.fromisoformat(value)
        except ValueError:
            return ItemErrorCode.INVALID_VALUE, f"{value} is not a calendar date."
        return None
    codes = field.choices.codes() if field.choices is not None else None
    if kind == "select_one":
        if not isinstance(value, str):
            return ItemErrorCode.INVALID_TYPE, "Not a choice code."
        if codes is not None and value not in codes:
            return ItemErrorCode.INVALID_VALUE, f"Must be one of: {', '.join(codes)}."
        return None
    # select_multiple, the last kind there is
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return ItemErrorCode.INVALID_TYPE, "Not a list of choice codes."
    unknown = sorted({item for item in value if codes is not None and item not in codes})
    if unknown:
        return ItemErrorCode.INVALID_VALUE, f"Unknown choices: {', '.join(unknown)}."
    return None


def _column_for(entity: str, field: RegisterField) -> Any:
    table = TABLES[entity]
    name = f"{field.name}_masked" if (entity, field.name) in SENSITIVE_TEXT else field.name
    return table.c.get(name)


def _text_problem(
    session: Session,
    actor: Actor,
    entity: str,
    field: RegisterField,
    column: Any,
    value: Any,
) -> tuple[ItemErrorCode, str] | None:
    if not isinstance(value, str):
        return ItemErrorCode.INVALID_TYPE, "Not a string."
    if "\x00" in value or _SURROGATE_RE.search(value):
        return ItemErrorCode.INVALID_VALUE, "Text must not contain NUL or unpaired surrogates."
    length = column.type.length if column is not None and isinstance(column.type, String) else None
    if length is not None and len(value) > length:
        return ItemErrorCode.OUT_OF_RANGE, f"At most {length} characters."
    if field.name == "village_code":
        return _village_problem(session, actor, value)
    if field.name in {"household_id", "head_member_id"}:
        if not _UUID_RE.fullmatch(value):
            return ItemErrorCode.INVALID_UUID, "Not a valid UUID (8-4-4-4-12 hex digits)."
        if field.name == "household_id":
            return _household_problem(session, actor, uuid.UUID(value))
    return None


def _village_problem(session: Session, actor: Actor, code: str) -> tuple[ItemErrorCode, str] | None:
    if not is_valid_code(code) or not code.isascii() or level_of(code) is not RegionLevel.VILLAGE:
        return ItemErrorCode.INVALID_VALUE, f"{code} is not a 12-digit village code."
    if session.get(Region, code) is None:
        return ItemErrorCode.INVALID_VALUE, f"There is no village {code}."
    # Moving a household: the new village must be the reviewer's too.
    actor.ensure_covers(code, "the chosen village")
    return None


def _household_problem(
    session: Session, actor: Actor, household_id: uuid.UUID
) -> tuple[ItemErrorCode, str] | None:
    village = session.scalar(select(Household.village_code).where(Household.id == household_id))
    if village is None:
        return ItemErrorCode.INVALID_VALUE, f"There is no household {household_id}."
    actor.ensure_covers(village, "the chosen household")
    return None


def _decimal_problem(value: Any) -> tuple[ItemErrorCode, str] | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ItemErrorCode.INVALID_TYPE, "Not a number."
    if isinstance(value, float) and not math.isfinite(value):
        return ItemErrorCode.INVALID_VALUE, "Not a finite number."
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return ItemErrorCode.INVALID_VALUE, "Not a number."
    # The register's own bound, the one submissions are held to (forms/register.py).
    if abs(number) > MONEY_LIMIT:
        return ItemErrorCode.OUT_OF_RANGE, f"At most {MONEY_LIMIT:,} in size."
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_SCALE:
        return ItemErrorCode.INVALID_VALUE, f"At most {MONEY_SCALE} decimal places."
    return None


def _normalised(field: RegisterField, value: Any) -> Any:
    if value is None:
        return [] if field.kind == "select_multiple" else None
    if field.kind == "select_multiple":
        return sorted(set(value))
    if field.name in {"household_id", "head_member_id"}:
        return str(uuid.UUID(value))
    return value
