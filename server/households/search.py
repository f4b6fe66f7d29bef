"""Finding households in the register for the console and the API: by household number (prefix),
head's name (substring), region, monitoring status and type, or a member's identity number —
always within the caller's regions, paged in a stable order by an opaque cursor.

An identity number is looked up only through its keyed hash (never by reading clear values),
each such lookup is audited, and every answer carries masked values only."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, literal, select, tuple_
from sqlalchemy.orm import Session, aliased

from forms.register import Category, MonitoringStatus, MonitoringType
from server.audit import service as audit
from server.auth.actor import Actor
from server.errors import NotFound, ValidationFailed
from server.households.models import Household, Member
from server.regions.codes import code_range, is_valid_code
from server.regions.models import Region
from server.sensitive import SensitiveCodec, mask_id_number
from sync_protocol.errors import ItemErrorCode

_CURSOR_VERSION = 1
# Households of an identity-number lookup named in its audit entry (one person: a few at most).
_AUDITED_IDS = 20


@dataclass(frozen=True)
class HouseholdSearch:
    """What to look for; every given condition must hold. `region` is any region code (its
    households and those below it); `id_number` finds households with a member holding it."""

    household_no: str | None = None  # prefix
    head_name: str | None = None  # substring
    region: str | None = None
    status: MonitoringStatus | None = None
    monitoring_type: MonitoringType | None = None
    category: Category | None = None
    id_number: str | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class HouseholdHead:
    member_id: uuid.UUID
    name: str | None
    id_number: str | None  # masked


@dataclass(frozen=True)
class HouseholdListing:
    id: uuid.UUID
    household_no: str | None
    village_code: str
    village_name: str | None
    address: str | None
    category: Category | None
    monitoring_type: MonitoringType | None
    monitoring_status: MonitoringStatus
    head: HouseholdHead | None
    rev: int
    updated_at: datetime


@dataclass(frozen=True)
class HouseholdSearchPage:
    households: list[HouseholdListing]
    limit: int
    next_cursor: str | None  # None: this is the last page


def search_households(
    session: Session, actor: Actor, codec: SensitiveCodec, search: HouseholdSearch
) -> HouseholdSearchPage:
    """One page of live households matching `search` within the caller's regions, ordered by
    village, household number and id (stable across pages; `next_cursor` continues).

    403 when `search.region` is outside the caller's regions, 404 when no such region exists,
    422 for a cursor this function did not make. A lookup by identity number is written to the
    audit log (the number masked, with how many households matched)."""
    position = _decode_cursor(search.cursor) if search.cursor else None
    number = func.coalesce(Household.household_no, "")
    head = aliased(Member)
    query = (
        select(Household, head, Region.name)
        .outerjoin(head, head.id == Household.head_member_id)
        .outerjoin(Region, Region.code == Household.village_code)
        .where(Household.deleted.is_(False), actor.region_filter(Household.village_code))
    )
    for condition in _conditions(session, actor, codec, search, head):
        query = query.where(condition)
    if position is not None:
        village_code, household_no, household_id = position
        after = tuple_(
            literal(village_code, Household.village_code.type),
            literal(household_no, Household.village_code.type),
            literal(household_id, Household.id.type),
        )
        query = query.where(tuple_(Household.village_code, number, Household.id) > after)
    rows = session.execute(
        query.order_by(Household.village_code, number, Household.id).limit(search.limit + 1)
    ).all()
    more = len(rows) > search.limit
    rows = rows[: search.limit]
    listings = [_listing(household, member, name) for household, member, name in rows]
    if search.id_number:
        audit.record(
            session,
            "household_id_number_lookup",
            user_id=actor.user_id,
            object_type="household",
            region_code=search.region,
            address=actor.address,
            details={
                "id_number": mask_id_number(search.id_number),
                "found": len(listings),
                "households": [str(item.id) for item in listings[:_AUDITED_IDS]],
            },
        )
    next_cursor = None
    if more and listings:
        last = listings[-1]
        next_cursor = _encode_cursor(last.village_code, last.household_no or "", last.id)
    return HouseholdSearchPage(listings, search.limit, next_cursor)


def _conditions(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    search: HouseholdSearch,
    head: type[Member],
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if search.region is not None:
        if not is_valid_code(search.region) or session.get(Region, search.region) is None:
            raise NotFound("no such region", details={"region_code": search.region})
        actor.ensure_covers(search.region, "this region")
        low, high = code_range(search.region)
        conditions.append(Household.village_code.between(low, high))
    if search.household_no:
        conditions.append(Household.household_no.startswith(search.household_no, autoescape=True))
    if search.head_name:
        conditions.append(head.name.contains(search.head_name, autoescape=True))
    if search.status is not None:
        conditions.append(Household.monitoring_status == search.status)
    if search.monitoring_type is not None:
        conditions.append(Household.monitoring_type == search.monitoring_type)
    if search.category is not None:
        conditions.append(Household.category == search.category)
    if search.id_number:
        digest = codec.lookup_hash("id_number", search.id_number)
        conditions.append(
            Household.id.in_(
                select(Member.household_id).where(
                    Member.id_number_hash == digest, Member.deleted.is_(False)
                )
            )
        )
    return conditions


def _listing(
    household: Household, head: Member | None, village_name: str | None
) -> HouseholdListing:
    return HouseholdListing(
        id=household.id,
        household_no=household.household_no,
        village_code=household.village_code,
        village_name=village_name,
        address=household.address,
        category=household.category,
        monitoring_type=household.monitoring_type,
        monitoring_status=household.monitoring_status,
        head=None if head is None else HouseholdHead(head.id, head.name, head.id_number_masked),
        rev=household.rev,
        updated_at=household.updated_at,
    )


def _encode_cursor(village_code: str, household_no: str, household_id: uuid.UUID) -> str:
    text = json.dumps([_CURSOR_VERSION, village_code, household_no, str(household_id)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, village_code, household_no, household_id = json.loads(raw)
        if version != _CURSOR_VERSION:
            raise ValueError("another cursor version")
        if not isinstance(village_code, str) or not isinstance(household_no, str):
            raise ValueError("not a household position")
        return village_code, household_no, uuid.UUID(household_id)
    except (binascii.Error, ValueError, TypeError, AttributeError) as exc:
        raise ValidationFailed(
            "invalid cursor",
            [
                {
                    "path": "cursor",
                    "code": ItemErrorCode.INVALID_VALUE.value,
                    "message": "not a cursor this listing made; start without one",
                }
            ],
        ) from exc
