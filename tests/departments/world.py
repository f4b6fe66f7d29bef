"""A small register and department sources for the department tests, built through the same
services users go through."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from server.auth.actor import system_actor
from server.db import utcnow
from server.departments.importing import ImportOutcome, import_content
from server.departments.models import DepartmentSource, ImportOrigin
from server.departments.sources import create_source
from server.households.loading import NewHousehold, load_households
from server.runtime import Runtime
from tests.conftest import LOAD_CLOCK, VILLAGE_A1, VILLAGE_A2

# Fictional identity numbers (division 99 does not exist).
ALICE = "990102198001010011"  # insured False in the register
BOB = "990102198001010022"  # insured True
CAROL = "990102198001010033"  # registered in two households: ambiguous
DAN = "990102198001010044"  # insured unknown
ERIN = "99010219800101005X"  # Alice's household, not the head
NOBODY = "990102198001010099"  # not in the register

MEDICAL_MAPPING: dict[str, Any] = {
    "id_number": "身份证号",
    "name": "姓名",
    "date": "日期",
    "facts": {
        "insured": {"column": "参保状态"},
        "medical_costs": {"column": "自付费用"},
    },
}
ALLOWANCE_MAPPING: dict[str, Any] = {
    "id_number": "身份证号码",
    "facts": {"minimum_allowance": {"value": True}},
}


@dataclass
class World:
    households: dict[str, uuid.UUID]
    members: dict[str, uuid.UUID]


def build_register(rt: Runtime) -> World:
    """Alice (with Erin) and Bob in village A1, Carol in A1 and again in A2, Dan in A2."""
    people = {
        "alice": (ALICE, "h1", {"insured": False}),
        "erin": (ERIN, "h1", {}),
        "bob": (BOB, "h2", {"insured": True}),
        "carol1": (CAROL, "h3", {"insured": True}),
        "carol2": (CAROL, "h4", {"insured": True}),
        "dan": (DAN, "h4", {}),
    }
    households = {name: uuid.uuid4() for name in ("h1", "h2", "h3", "h4")}
    members = {name: uuid.uuid4() for name in people}
    items: dict[str, NewHousehold] = {}
    for name, village in (
        ("h1", VILLAGE_A1),
        ("h2", VILLAGE_A1),
        ("h3", VILLAGE_A1),
        ("h4", VILLAGE_A2),
    ):
        items[name] = NewHousehold(
            id=households[name],
            fields={
                "village_code": village,
                "household_no": name,
                "category": "lifted",
                "receives_minimum_allowance": name == "h2",
            },
        )
    for name, (id_number, household, extra) in people.items():
        relation = "head" if name in ("alice", "bob", "carol1", "carol2") else "child"
        items[household].members.append(
            (
                members[name],
                {
                    "name": name,
                    "id_number": id_number,
                    "relation": relation,
                    "sex": "female",
                    "birth_date": "1980-01-01",
                    **extra,
                },
            )
        )
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, list(items.values()), clock=LOAD_CLOCK)
    return World(households, members)


def make_source(
    rt: Runtime, name: str, department: str, mapping: dict[str, Any], **extra: Any
) -> uuid.UUID:
    with rt.db.unit_of_work() as session:
        source = create_source(
            session,
            system_actor(),
            {"name": name, "department": department, "mapping": mapping, **extra},
        )
        return source.id


def run_import(rt: Runtime, source_id: uuid.UUID, content: bytes) -> ImportOutcome:
    with rt.db.unit_of_work() as session:
        source = session.get(DepartmentSource, source_id)
        assert source is not None
        return import_content(
            session,
            system_actor(),
            rt.codec,
            source,
            content,
            origin=ImportOrigin.COMMAND_LINE,
            filename="list.csv",
            now=utcnow(),
        )


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    return ("\n".join(",".join(row) for row in rows) + "\n").encode(encoding)


MEDICAL_HEADER = ["身份证号", "姓名", "参保状态", "自付费用", "日期"]
