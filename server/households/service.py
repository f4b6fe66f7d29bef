"""Reading the register within the caller's scope; revealing sensitive fields only to the roles
allowed, and auditing every reveal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.config import Settings
from server.errors import Forbidden, NotFound
from server.households.fields import household_fields, member_fields
from server.households.models import Household, Member
from server.sensitive import SensitiveCodec


def get_household(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    household_id: uuid.UUID,
    *,
    reveal: bool = False,
    also_revealed: Sequence[str] = (),
) -> dict[str, Any]:
    """One household with its members, as the caller may see it (403 outside their regions).
    `also_revealed` names other fields the caller shows in full because of this reveal (the
    console's health and disability), for the audit entry."""
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound("no such household", details={"id": str(household_id)})
    actor.ensure_covers(household.village_code, "this household")
    if reveal and actor.role.value not in settings.reveal_roles:
        raise Forbidden("your role may not reveal identity numbers or phones")
    members = session.scalars(
        select(Member)
        .where(Member.household_id == household_id)
        .order_by(Member.created_at, Member.id)
    ).all()
    if reveal:
        audit.record(
            session,
            "reveal_sensitive",
            user_id=actor.user_id,
            object_type="household",
            object_id=str(household_id),
            region_code=household.village_code,
            address=actor.address,
            details={
                "fields": ["id_number", "phone", *also_revealed],
                "members": len(members),
            },
        )
    return {
        "entity": "household",
        "id": str(household.id),
        "rev": household.rev,
        "deleted": household.deleted,
        "fields": household_fields(household),
        "members": [
            {
                "entity": "member",
                "id": str(member.id),
                "rev": member.rev,
                "deleted": member.deleted,
                "fields": member_fields(member, codec=codec, reveal=reveal),
            }
            for member in members
        ],
    }


def flagged_households(
    session: Session, actor: Actor, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Households whose field-wise merge left them inconsistent as a whole (e.g. two heads),
    in the caller's regions: kept as merged, listed here for a person to decide."""
    rows = session.scalars(
        select(Household)
        .where(actor.region_filter(Household.village_code), Household.review_flags != [])
        .order_by(Household.updated_at.desc(), Household.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        {
            "id": str(h.id),
            "household_no": h.household_no,
            "village_code": h.village_code,
            "rev": h.rev,
            "review_flags": list(h.review_flags),
            "updated_at": h.updated_at.isoformat(),
        }
        for h in rows
    ]
