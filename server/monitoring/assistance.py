"""Help for monitored households (帮扶): responsible helpers (帮扶责任人) and assistance measures
(帮扶措施), read by anyone whose regions cover the household and changed by supervisors and admins.

Every change is audited, kept as a help event (the household timeline reads them through
`help_events`) and marks the household in the change log without changing any field, so that the
household's tablets pull it again with its current help (`help_for_pull`). Helpers' phones are
stored protected like members' phones and shown masked unless revealed (audited).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from forms.register import MonitoringStatus
from server.audit import service as audit
from server.auth.actor import Actor
from server.changes.models import Change
from server.config import Settings
from server.db import among, utcnow
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.households.models import Household
from server.monitoring.help_models import (
    NAME_LENGTH,
    AssistanceMeasure,
    HelpEvent,
    HouseholdHelper,
    MeasureStatus,
    MeasureType,
)
from server.sensitive import SensitiveCodec
from server.sync.feed import transaction_marker
from server.users.models import Role, User
from sync_protocol.clock import HybridClock

CHANGE_ROLES = (Role.SUPERVISOR, Role.ADMIN)
# New helpers and measures only for households being helped; existing ones can still be
# changed afterwards (an outcome recorded after the exit, a helper ended).
HELPABLE = (MonitoringStatus.MONITORED, MonitoringStatus.EXIT_REVIEW)
# Dates of the work are the calendar days of China Standard Time.
LOCAL_TIME = timezone(timedelta(hours=8))
_TYPES = {kind.value: kind for kind in MeasureType}
_STATUSES = {status.value: status for status in MeasureStatus}


def local_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(LOCAL_TIME).date()


# --- reading -----------------------------------------------------------------------------------


def _household(session: Session, actor: Actor, household_id: uuid.UUID) -> Household:
    household = session.get(Household, household_id)
    if household is None or household.merged_into_id is not None:
        raise NotFound("no such household", details={"id": str(household_id)})
    actor.ensure_covers(household.village_code, "this household")
    return household


def household_help(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    household_id: uuid.UUID,
    *,
    reveal: bool = False,
) -> dict[str, Any]:
    """A household's helpers (current and former) and measures, as the caller may see them."""
    household = _household(session, actor, household_id)
    if reveal and actor.role.value not in settings.reveal_roles:
        raise Forbidden("your role may not reveal identity numbers or phones")
    helpers = _helper_rows(session, [household_id], current_only=False)
    measures = _measure_rows(session, [household_id])
    if reveal:
        audit.record(
            session,
            "reveal_sensitive",
            user_id=actor.user_id,
            object_type="household_help",
            object_id=str(household_id),
            region_code=household.village_code,
            address=actor.address,
            details={"fields": ["helper_phone"], "helpers": len(helpers)},
        )
    return {
        "household_id": household_id,
        "monitoring_status": household.monitoring_status.value,
        "helpers": [
            _helper_view(h, username, codec if reveal else None) for h, username in helpers
        ],
        "measures": [_measure_view(m) for m in measures],
        "revealed": reveal,
    }


def _helper_rows(
    session: Session, household_ids: list[uuid.UUID], *, current_only: bool
) -> list[tuple[HouseholdHelper, str | None]]:
    query = (
        select(HouseholdHelper, User.username)
        .outerjoin(User, User.id == HouseholdHelper.user_id)
        .where(among(session, HouseholdHelper.household_id, household_ids))
        .order_by(HouseholdHelper.assigned_on, HouseholdHelper.created_at, HouseholdHelper.id)
    )
    if current_only:
        query = query.where(HouseholdHelper.ended_on.is_(None))
    return [(row[0], row[1]) for row in session.execute(query)]


def _measure_rows(session: Session, household_ids: list[uuid.UUID]) -> list[AssistanceMeasure]:
    return list(
        session.scalars(
            select(AssistanceMeasure)
            .where(among(session, AssistanceMeasure.household_id, household_ids))
            .order_by(
                AssistanceMeasure.start_date, AssistanceMeasure.created_at, AssistanceMeasure.id
            )
        )
    )


def _helper_view(
    helper: HouseholdHelper, username: str | None, reveal_with: SensitiveCodec | None
) -> dict[str, Any]:
    phone = helper.phone_masked
    if reveal_with is not None and helper.phone_cipher:
        phone = reveal_with.reveal("phone", helper.phone_cipher)
    return {
        "id": helper.id,
        "household_id": helper.household_id,
        "user": username,
        "name": helper.name,
        "phone": phone,
        "note": helper.note,
        "assigned_on": helper.assigned_on,
        "ended_on": helper.ended_on,
        "created_at": helper.created_at,
    }


def _measure_view(measure: AssistanceMeasure) -> dict[str, Any]:
    return {
        "id": measure.id,
        "household_id": measure.household_id,
        "type": measure.measure_type.value,
        "type_label": {"zh": measure.measure_type.zh, "en": measure.measure_type.en},
        "description": measure.description,
        "start_date": measure.start_date,
        "end_date": measure.end_date,
        "amount": measure.amount,
        "status": measure.status.value,
        "outcome": measure.outcome,
        "created_at": measure.created_at,
        "updated_at": measure.updated_at,
    }


# --- changing ----------------------------------------------------------------------------------


def _for_change(session: Session, actor: Actor, household_id: uuid.UUID) -> Household:
    actor.ensure_role(*CHANGE_ROLES)
    return _household(session, actor, household_id)


def _ensure_helpable(household: Household) -> None:
    if household.monitoring_status not in HELPABLE:
        raise Conflict(
            "help is given to monitored households; this one is not",
            details={
                "household_id": str(household.id),
                "monitoring_status": household.monitoring_status.value,
                "allowed": [status.value for status in HELPABLE],
            },
        )


def _wire(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, MeasureType | MeasureStatus):
        return value.value
    return value


def _record(
    session: Session,
    actor: Actor,
    clock: HybridClock,
    household: Household,
    action: str,
    object_type: str,
    object_id: uuid.UUID,
    details: Mapping[str, Any],
) -> None:
    """The bookkeeping of every change: a help event, an audit entry, and a change-log row with
    no fields for the household, so the next pull of its tablets sends it with its help."""
    plain = {name: _wire(value) for name, value in details.items()}
    session.add(
        HelpEvent(
            household_id=household.id,
            user_id=actor.user_id,
            action=action,
            object_id=object_id,
            details=plain,
        )
    )
    audit.record(
        session,
        action,
        user_id=actor.user_id,
        object_type=object_type,
        object_id=str(object_id),
        region_code=household.village_code,
        address=actor.address,
        details={"household_id": str(household.id), **plain},
    )
    session.execute(
        insert(Change).values(
            entity_type="household",
            entity_id=household.id,
            fields={},
            clock=str(clock.now()),
            rev=household.rev,
            village_code=household.village_code,
            user_id=actor.user_id,
            txid=transaction_marker(session),
        )
    )
    session.flush()


def _invalid(path: str, message: str, code: str = "invalid_value") -> ValidationFailed:
    return ValidationFailed(
        "request is well-formed but invalid", [{"path": path, "code": code, "message": message}]
    )


def _clean_phone(phone: str) -> str:
    return phone.replace(" ", "").replace("-", "")


def assign_helper(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    clock: HybridClock,
    household_id: uuid.UUID,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """Make a user (`user`) or a named person (`name`, `phone`) responsible for a monitored
    household. 409 if the household is not monitored, 422 for an unknown or disabled user."""
    household = _for_change(session, actor, household_id)
    _ensure_helpable(household)
    user: User | None = None
    if "user" in body:
        user = session.scalars(select(User).where(User.username == body["user"])).first()
        if user is None or not user.is_active:
            raise _invalid("user", "no active fieldsync user has this username", "unknown_user")
    name = body.get("name") or (user.display_name if user and user.display_name else None)
    helper = HouseholdHelper(
        household_id=household.id,
        user_id=None if user is None else user.id,
        name=(name or (user.username if user else ""))[:NAME_LENGTH],
        note=body.get("note"),
        assigned_on=body.get("assigned_on") or local_today(),
        created_by_id=actor.user_id,
    )
    _set_phone(codec, helper, body.get("phone"))
    session.add(helper)
    session.flush()
    _record(
        session,
        actor,
        clock,
        household,
        "helper_assigned",
        "household_helper",
        helper.id,
        {
            "name": helper.name,
            "user": None if user is None else user.username,
            "phone": helper.phone_masked,
            "assigned_on": helper.assigned_on,
        },
    )
    return _helper_view(helper, None if user is None else user.username, None)


def _set_phone(codec: SensitiveCodec, helper: HouseholdHelper, phone: str | None) -> None:
    if phone is None:
        helper.phone_hash = helper.phone_masked = helper.phone_cipher = None
        return
    protected = codec.protect("phone", _clean_phone(phone))
    helper.phone_hash, helper.phone_masked = protected.hash, protected.masked
    helper.phone_cipher = protected.cipher


def _helper_for_change(
    session: Session, actor: Actor, helper_id: uuid.UUID
) -> tuple[HouseholdHelper, Household, str | None]:
    actor.ensure_role(*CHANGE_ROLES)
    helper = session.get(HouseholdHelper, helper_id, with_for_update=True)
    if helper is None:
        raise NotFound("no such helper", details={"id": str(helper_id)})
    household = _household(session, actor, helper.household_id)
    username = None
    if helper.user_id is not None:
        username = session.scalars(select(User.username).where(User.id == helper.user_id)).first()
    return helper, household, username


def update_helper(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    clock: HybridClock,
    helper_id: uuid.UUID,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """Change a helper's name, phone or note. A named person (not a user) keeps a phone."""
    helper, household, username = _helper_for_change(session, actor, helper_id)
    if "phone" in body and body["phone"] is None and helper.user_id is None:
        raise _invalid("phone", "a helper who is not a fieldsync user needs a phone number")
    changed: dict[str, Any] = {}
    if "name" in body and body["name"] != helper.name:
        helper.name = changed["name"] = body["name"]
    if "note" in body and body["note"] != helper.note:
        helper.note = changed["note"] = body["note"]
    if "phone" in body:
        before = helper.phone_hash
        _set_phone(codec, helper, body["phone"])
        if helper.phone_hash != before:
            changed["phone"] = helper.phone_masked
    if changed:
        _record(
            session,
            actor,
            clock,
            household,
            "helper_updated",
            "household_helper",
            helper.id,
            changed,
        )
    return _helper_view(helper, username, None)


def end_helper(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    clock: HybridClock,
    helper_id: uuid.UUID,
    ended_on: date | None,
) -> dict[str, Any]:
    """The helper stops being responsible (kept on record). 409 if already ended; 422 for an end
    before the assignment."""
    helper, household, username = _helper_for_change(session, actor, helper_id)
    if helper.ended_on is not None:
        raise Conflict(
            "this helper has already ended",
            details={"id": str(helper.id), "ended_on": helper.ended_on.isoformat()},
        )
    day = ended_on or local_today()
    if day < helper.assigned_on:
        raise _invalid("ended_on", "must not be before the helper was assigned", "out_of_range")
    helper.ended_on = day
    _record(
        session,
        actor,
        clock,
        household,
        "helper_ended",
        "household_helper",
        helper.id,
        {"name": helper.name, "ended_on": day},
    )
    return _helper_view(helper, username, None)


def add_measure(
    session: Session,
    actor: Actor,
    clock: HybridClock,
    household_id: uuid.UUID,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """Record an assistance measure for a monitored household (409 if it is not monitored)."""
    household = _for_change(session, actor, household_id)
    _ensure_helpable(household)
    measure = AssistanceMeasure(
        household_id=household.id,
        measure_type=_TYPES[body["type"]],
        description=body.get("description"),
        start_date=body["start_date"],
        end_date=body.get("end_date"),
        amount=body.get("amount"),
        status=_STATUSES[body.get("status", MeasureStatus.IN_PROGRESS.value)],
        outcome=body.get("outcome"),
        created_by_id=actor.user_id,
        updated_by_id=actor.user_id,
    )
    session.add(measure)
    session.flush()
    _record(
        session,
        actor,
        clock,
        household,
        "measure_added",
        "assistance_measure",
        measure.id,
        {
            "type": measure.measure_type,
            "description": measure.description,
            "start_date": measure.start_date,
            "end_date": measure.end_date,
            "amount": measure.amount,
            "status": measure.status,
            "outcome": measure.outcome,
        },
    )
    return _measure_view(measure)


_MEASURE_FIELDS = {
    "type": "measure_type",
    "description": "description",
    "start_date": "start_date",
    "end_date": "end_date",
    "amount": "amount",
    "status": "status",
    "outcome": "outcome",
}


def update_measure(
    session: Session,
    actor: Actor,
    clock: HybridClock,
    measure_id: uuid.UUID,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """Change a measure (its status and outcome as it goes on). 422 if the end date would come
    before the start date; nothing is changed then."""
    actor.ensure_role(*CHANGE_ROLES)
    measure = session.get(AssistanceMeasure, measure_id, with_for_update=True)
    if measure is None:
        raise NotFound("no such measure", details={"id": str(measure_id)})
    household = _household(session, actor, measure.household_id)
    values = {attr: getattr(measure, attr) for attr in _MEASURE_FIELDS.values()}
    for name, attr in _MEASURE_FIELDS.items():
        if name in body:
            values[attr] = body[name]
    values["measure_type"] = _TYPES[values["measure_type"]]
    values["status"] = _STATUSES[values["status"]]
    if values["end_date"] is not None and values["end_date"] < values["start_date"]:
        raise _invalid("end_date", "must not be before start_date", "out_of_range")
    changed = {
        name: values[attr]
        for name, attr in _MEASURE_FIELDS.items()
        if values[attr] != getattr(measure, attr)
    }
    if changed:
        for name, value in changed.items():
            setattr(measure, _MEASURE_FIELDS[name], value)
        measure.updated_by_id = actor.user_id
        measure.updated_at = utcnow()
        _record(
            session,
            actor,
            clock,
            household,
            "measure_updated",
            "assistance_measure",
            measure.id,
            changed,
        )
    return _measure_view(measure)


# --- for sync and the timeline -----------------------------------------------------------------


def help_for_pull(session: Session, household_ids: Iterable[uuid.UUID]) -> list[dict[str, Any]]:
    """The current help of these households as the pull sends it: helpers still responsible and
    every measure, phones masked; households without help are left out."""
    ids = list(household_ids)
    if not ids:
        return []
    by_household: dict[uuid.UUID, dict[str, Any]] = {}

    def entry(household_id: uuid.UUID) -> dict[str, Any]:
        return by_household.setdefault(
            household_id, {"household_id": str(household_id), "helpers": [], "measures": []}
        )

    for helper, username in _helper_rows(session, ids, current_only=True):
        entry(helper.household_id)["helpers"].append(
            {
                "id": str(helper.id),
                "user": username,
                "name": helper.name,
                "phone": helper.phone_masked,
                "note": helper.note,
                "assigned_on": helper.assigned_on.isoformat(),
            }
        )
    for measure in _measure_rows(session, ids):
        entry(measure.household_id)["measures"].append(
            {
                "id": str(measure.id),
                "type": measure.measure_type.value,
                "description": measure.description,
                "start_date": measure.start_date.isoformat(),
                "end_date": None if measure.end_date is None else measure.end_date.isoformat(),
                "amount": None if measure.amount is None else float(measure.amount),
                "status": measure.status.value,
                "outcome": measure.outcome,
            }
        )
    return [by_household[h] for h in ids if h in by_household]
