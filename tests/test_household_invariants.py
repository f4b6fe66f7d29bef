"""A household as a whole: exactly one head, and its head one of its members with relation head.
Broken households are kept and flagged for review, whether a merge or an import made them."""

from __future__ import annotations

import uuid

import pytest

from server.households.invariants import household_flags
from server.households.loading import NewHousehold, load_households
from server.households.models import Household
from server.runtime import Runtime
from tests.conftest import VILLAGE_A1

HEAD, SPOUSE = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize(
    ("household", "members", "flags"),
    [
        (
            {"head_member_id": HEAD},
            {HEAD: {"relation": "head"}, SPOUSE: {"relation": "spouse"}},
            [],
        ),
        (
            {"head_member_id": HEAD},
            {HEAD: {"relation": "head"}, SPOUSE: {"relation": "head"}},
            ["multiple_heads"],
        ),
        ({}, {SPOUSE: {"relation": "spouse"}}, ["no_head"]),
        ({}, {}, []),
        ({"head_member_id": str(uuid.uuid4())}, {HEAD: {"relation": "head"}}, ["head_not_member"]),
        ({"head_member_id": "not an id"}, {HEAD: {"relation": "head"}}, ["head_not_member"]),
        ({"head_member_id": HEAD.upper()}, {HEAD: {"relation": "head"}}, []),
        (
            {"head_member_id": HEAD},
            {HEAD: {"relation": "head", "deleted": True}, SPOUSE: {"relation": "spouse"}},
            ["no_head", "head_not_member"],
        ),
        (
            {"head_member_id": SPOUSE},
            {HEAD: {"relation": "head"}, SPOUSE: {"relation": "spouse"}},
            ["head_relation_mismatch"],
        ),
        ({"head_member_id": SPOUSE, "deleted": True}, {SPOUSE: {"relation": "spouse"}}, []),
    ],
)
def test_household_flags_name_what_is_wrong_with_a_household(household, members, flags):
    assert household_flags(household, members) == flags


def test_an_imported_household_with_two_heads_is_kept_and_flagged(rt: Runtime, regions):
    household_id, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    imported = NewHousehold(
        household_id,
        {"village_code": VILLAGE_A1, "head_member_id": str(first)},
        [
            (first, {"name": "王建国", "relation": "head"}),
            (second, {"name": "王建军", "relation": "head"}),
        ],
    )
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, [imported], clock="1764000000000-00000-server")
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, household_id)
        assert household is not None
        assert household.review_flags == ["multiple_heads"]
