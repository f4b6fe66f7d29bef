"""Loading households and members straight into the register, outside the sync path: the demo
county and imports of an existing register. Each entity gets revision 1, the given server clock on
every field it sets and one change-log row per entity, exactly as a first sync write would leave
it, so tablets pull it like anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from server.changes.models import Change
from server.households.fields import set_field
from server.households.invariants import household_flags
from server.households.models import Household, Member
from server.households.versions import FieldVersion, encode_versions
from server.sensitive import SensitiveCodec
from server.sync.feed import transaction_marker


@dataclass
class NewHousehold:
    id: uuid.UUID
    fields: dict[str, Any]
    members: list[tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=list)


def load_households(
    session: Session,
    codec: SensitiveCodec,
    households: Sequence[NewHousehold],
    *,
    clock: str,
    user_id: int | None = None,
) -> None:
    """Insert new households with their members, stamping every set field with `clock`."""
    changes: list[dict[str, Any]] = []
    for new in households:
        village = str(new.fields["village_code"])
        household = Household(id=new.id, village_code=village, member_count=len(new.members))
        _fill(household, "household", new.id, new.fields, codec, clock, village, user_id, changes)
        # An imported household is checked as a merged one is: kept as given, flagged if broken.
        household.review_flags = household_flags(
            new.fields, {str(member_id): fields for member_id, fields in new.members}
        )
        session.add(household)
        for member_id, member_fields in new.members:
            values = {**member_fields, "household_id": str(new.id)}
            member = Member(id=member_id, household_id=new.id)
            _fill(member, "member", member_id, values, codec, clock, village, user_id, changes)
            session.add(member)
    session.flush()
    if changes:
        txid = transaction_marker(session)
        session.execute(insert(Change), [{**change, "txid": txid} for change in changes])


def _fill(
    row: Household | Member,
    entity_type: str,
    entity_id: uuid.UUID,
    values: Mapping[str, Any],
    codec: SensitiveCodec,
    clock: str,
    village: str,
    user_id: int | None,
    changes: list[dict[str, Any]],
) -> None:
    row.extra = {}
    for name, value in values.items():
        set_field(row, name, value, codec)
    row.rev = 1
    origin = f"user:{user_id}" if user_id is not None else "system"
    row.versions = encode_versions(dict.fromkeys(values, FieldVersion(clock, 1, origin, None)))
    row.deleted = False
    logged = {}
    for name, value in values.items():
        # The log never holds a sensitive value in clear: its masked form stands in.
        masked = getattr(row, f"{name}_masked", None) if name in {"id_number", "phone"} else None
        logged[name] = masked if masked is not None else value
    changes.append(
        {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "fields": logged,
            "clock": clock,
            "rev": 1,
            "village_code": village,
            "user_id": user_id,
        }
    )
