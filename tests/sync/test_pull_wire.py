"""The pull's fast row-to-entity path gives exactly the fields the register's own conversion
gives (`server.households.fields`), for every household and member of the demo county, on both
databases — masked sensitive text, codes of enumerations, money, dates, ids and extras."""

from __future__ import annotations

from sqlalchemy import select, update

from server.demo.service import load_demo_county
from server.households.fields import household_fields, member_fields
from server.households.models import Household, Member
from server.households.versions import stored_clocks
from server.runtime import Runtime
from server.sync.wire import HOUSEHOLD_WIRE, MEMBER_WIRE


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
        for household in households:
            entity = HOUSEHOLD_WIRE.entity_of(household_rows[household.id])
            assert entity == {
                "entity": "household",
                "id": str(household.id),
                "rev": household.rev,
                "deleted": household.deleted,
                "fields": household_fields(household),
                "clocks": stored_clocks(household.versions),
            }
        for member in members:
            entity = MEMBER_WIRE.entity_of(member_rows[member.id])
            assert entity == {
                "entity": "member",
                "id": str(member.id),
                "rev": member.rev,
                "deleted": member.deleted,
                "fields": member_fields(member, codec=rt.codec),
                "clocks": stored_clocks(member.versions),
            }
            assert "*" in entity["fields"]["id_number"]  # masked, as every pull sends it
    cents = [h for h in households if h.id in some]
    assert {
        HOUSEHOLD_WIRE.entity_of(household_rows[h.id])["fields"]["annual_income"] for h in cents
    } == {12345.67}
