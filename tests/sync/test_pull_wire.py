"""The pull's fast row-to-entity path gives exactly the fields the register's own conversion
gives (`server.households.fields`), for every household and member of the demo county, on both
databases — masked sensitive text, codes of enumerations, money, dates, ids and extras."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from server.demo.service import load_demo_county
from server.households.fields import household_fields, member_fields
from server.households.models import Household, Member
from server.households.versions import stored_clocks
from server.runtime import Runtime
from server.sync.wire import HOUSEHOLD_WIRE, MEMBER_WIRE, WireShape


def _json(entity: dict[str, Any]) -> str:
    return json.dumps(entity, sort_keys=True, ensure_ascii=False)


def test_wire_entities_equal_the_register_fields(rt: Runtime) -> None:
    with rt.db.unit_of_work() as session:
        load_demo_county(session, rt.codec, rt.passwords)
        # Values the demo may not hold: an extra field, a money value with cents, a null date.
        some = session.scalars(select(Household.id).limit(3)).all()
        session.execute(
            update(Household)
            .where(Household.id.in_(some))
            .values(extra={"survey_note": "门前有积水"}, annual_income=12345.67)
        )
        session.execute(update(Member).where(Member.household_id.in_(some)).values(birth_date=None))
    with rt.db.unit_of_work(write=False) as session:
        households = session.scalars(select(Household)).all()
        members = session.scalars(select(Member)).all()
        household_rows = {r.id: r for r in session.execute(select(*HOUSEHOLD_WIRE.columns))}
        member_rows = {r.id: r for r in session.execute(select(*MEMBER_WIRE.columns))}
    assert len(households) > 100 and len(members) > 300
    checks: list[tuple[WireShape, Any, dict[uuid.UUID, Any], Callable[[Any], dict[str, Any]]]] = [
        (HOUSEHOLD_WIRE, households, household_rows, household_fields),
        (MEMBER_WIRE, members, member_rows, lambda m: member_fields(m, codec=rt.codec)),
    ]
    for shape, entities, rows, fields_of in checks:
        for entity in entities:
            expected = {
                "entity": shape.entity,
                "id": str(entity.id),
                "rev": entity.rev,
                "deleted": entity.deleted,
                "fields": fields_of(entity),
                "clocks": stored_clocks(entity.versions),
            }
            # Compared as JSON: 30000 and 30000.0, or 1 and true, are equal in Python only.
            assert _json(shape.entity_of(rows[entity.id])) == _json(expected)
    assert all("*" in MEMBER_WIRE.entity_of(r)["fields"]["id_number"] for r in member_rows.values())
    cents = {HOUSEHOLD_WIRE.entity_of(household_rows[h])["fields"]["annual_income"] for h in some}
    assert cents == {12345.67}
