"""The demo county: what the generator makes (pure, once per module) and what `fieldsync demo`
leaves in the register on both databases — counts, heads, protected identity numbers, accounts."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, inspect, select

from forms.register import Category, MonitoringStatus, MonitoringType, Relation, RiskCause
from server.changes.models import Change
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.county import REFERENCE_DATE, generate_county
from server.demo.identity import check_character, has_valid_check_character, identity_number
from server.households.models import Household, Member
from server.regions.codes import RegionLevel
from server.regions.models import Region


@pytest.fixture(scope="module")
def county():
    return generate_county()


def _members(county):
    return [fields for household in county.households for _, fields in household.members]


def _age(fields):
    birth = date.fromisoformat(fields["birth_date"])
    return (
        REFERENCE_DATE.year
        - birth.year
        - ((REFERENCE_DATE.month, REFERENCE_DATE.day) < (birth.month, birth.day))
    )


# -- identity numbers (pure) -------------------------------------------------------------------


def test_check_character_follows_iso_7064_mod_11_2():
    # The standard's worked example (GB 11643-1999): 11010519491231002X.
    assert check_character("11010519491231002") == "X"
    assert has_valid_check_character("11010519491231002X")
    assert not has_valid_check_character("110105194912310021")


def test_identity_number_puts_region_birth_date_and_sequence_in_place():
    number = identity_number("990102", date(1990, 3, 7), 17)
    assert number[:17] == "99010219900307017"
    assert has_valid_check_character(number)


# -- the generated county (pure) ---------------------------------------------------------------


def test_generating_the_county_twice_gives_the_same_county(county):
    again = generate_county()
    assert [h.id for h in again.households] == [h.id for h in county.households]
    assert _members(again) == _members(county)


def test_county_has_about_600_households_and_2400_members_in_households_of_1_to_7(county):
    assert 550 <= len(county.households) <= 650
    assert 2200 <= county.member_count <= 2600
    sizes = Counter(len(h.members) for h in county.households)
    assert set(sizes) == set(range(1, 8))
    assert 3.7 <= county.member_count / len(county.households) <= 4.3


def test_region_tree_is_one_county_with_3_townships_of_4_villages(county):
    codes = [code for code, _ in county.regions]
    assert codes[:3] == ["990000000000", "990100000000", "990102000000"]
    assert codes[3:6] == ["990102001000", "990102002000", "990102003000"]
    villages = codes[6:]
    assert len(villages) == 12 and villages[0] == "990102001001"
    assert {h.fields["village_code"] for h in county.households} == set(villages)


def test_categories_are_spread_about_45_10_45_and_every_value_occurs(county):
    shares = Counter(h.fields["category"] for h in county.households)
    total = len(county.households)
    assert set(shares) == set(Category.codes())
    assert 0.40 <= shares["lifted"] / total <= 0.50
    assert 0.08 <= shares["monitored"] / total <= 0.12
    assert 0.40 <= shares["ordinary"] / total <= 0.50


def test_monitored_households_have_a_type_a_status_in_the_chain_and_risk_causes(county):
    for household in county.households:
        fields = household.fields
        if fields["category"] == Category.MONITORED.value:
            assert fields["monitoring_type"] in MonitoringType.codes()
            assert fields["monitoring_status"] != MonitoringStatus.NOT_MONITORED.value
            assert fields["risk_causes"] and set(fields["risk_causes"]) <= set(RiskCause.codes())
        else:
            assert "monitoring_type" not in fields and "risk_causes" not in fields
            assert fields["monitoring_status"] == MonitoringStatus.NOT_MONITORED.value


def test_households_at_risk_have_incomes_near_or_below_the_monitoring_line(county):
    at_risk = [
        h.fields
        for h in county.households
        if h.fields["monitoring_status"] in ("entry_review", "monitored")
    ]
    others = [h.fields for h in county.households if h.fields["category"] != "monitored"]
    assert all(f["per_capita_income"] <= 7500 for f in at_risk)
    assert all(3000 <= f["per_capita_income"] <= 30000 for f in others)
    for household in county.households:
        fields = household.fields
        assert fields["annual_income"] == fields["per_capita_income"] * len(household.members)


def test_every_household_lists_its_head_first_and_exactly_once(county):
    for household in county.households:
        relations = [fields["relation"] for _, fields in household.members]
        assert relations.count(Relation.HEAD.value) == 1
        assert household.fields["head_member_id"] == str(household.members[0][0])
        assert relations[0] == Relation.HEAD.value


def test_relatives_have_plausible_ages_around_the_head(county):
    for household in county.households:
        head_age = _age(household.members[0][1])
        for _, fields in household.members[1:]:
            age = _age(fields)
            if fields["relation"] == "child":
                assert 0 <= head_age - age - 20 <= 20
            elif fields["relation"] == "parent":
                assert age >= head_age + 20
            elif fields["relation"] == "grandchild":
                assert age <= head_age - 40


def test_identity_numbers_are_unique_fictional_and_encode_birth_date_and_sex(county):
    members = _members(county)
    numbers = [m["id_number"] for m in members]
    assert len(set(numbers)) == len(numbers)
    for member in members:
        number = member["id_number"]
        assert number.startswith("990102") and has_valid_check_character(number)
        assert number[6:14] == member["birth_date"].replace("-", "")
        assert int(number[16]) % 2 == (1 if member["sex"] == "male" else 0)


def test_names_are_a_common_surname_and_a_two_character_given_name(county):
    members = _members(county)
    assert all(len(m["name"]) == 3 for m in members)
    surnames = Counter(m["name"][0] for m in members)
    assert {"王", "李", "张", "刘", "陈"} <= set(surnames)


def test_schooling_follows_age(county):
    members = _members(county)
    compulsory = [m for m in members if 6 <= _age(m) <= 15]
    assert sum(m["in_school"] for m in compulsory) / len(compulsory) >= 0.95
    for member in members:
        age = _age(member)
        if age < 6:
            assert member["education_level"] == "preschool" and not member["in_school"]
        if member["in_school"]:
            assert member["employment"] == "student" and member["labor_capacity"] == "none"
        if age >= 18:
            assert member["education_level"] != "preschool"


def test_guarantees_mostly_hold_with_some_failures(county):
    for name in ("food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"):
        values = Counter(h.fields[name] for h in county.households)
        assert values[True] / len(county.households) >= 0.9, name
        assert values[False] >= 1, name


def test_some_members_are_disabled_or_chronically_ill_and_most_are_insured(county):
    members = _members(county)
    health = Counter(m["health"] for m in members)
    assert health["disabled"] and health["chronic"] and health["serious"]
    assert all((m["health"] == "disabled") == (m["disability"] != "none") for m in members)
    assert sum(m["insured"] for m in members) / len(members) >= 0.95


def test_addresses_name_county_township_village_group_and_number(county):
    address = county.households[0].fields["address"]
    assert address.startswith("云溪县") and address.endswith("号") and "组" in address


# -- loading through the CLI (both databases) --------------------------------------------------


def test_demo_loads_the_county_and_every_household_has_exactly_one_head_member_of_its_own(cli, rt):
    result = cli("demo")
    assert result.exit_code == 0, result.output
    with rt.db.unit_of_work(write=False) as session:
        households = session.scalar(select(func.count()).select_from(Household))
        members = session.scalar(select(func.count()).select_from(Member))
        villages = session.scalar(
            select(func.count()).select_from(Region).where(Region.level == RegionLevel.VILLAGE)
        )
        heads = session.execute(
            select(Household.id, Household.head_member_id, Member.household_id).outerjoin(
                Member, Member.id == Household.head_member_id
            )
        ).all()
        head_counts = Counter(
            session.scalars(select(Member.household_id).where(Member.relation == Relation.HEAD))
        )
        stored = {
            name: set(session.scalars(select(column).distinct()))
            for name, column in (
                ("category", Household.category),
                ("type", Household.monitoring_type),
                ("status", Household.monitoring_status),
            )
        }
        revisions = set(session.scalars(select(Household.rev).distinct()))
    assert 550 <= households <= 650 and 2200 <= members <= 2600
    assert f"{households} households, {members} members" in result.output
    assert villages == 12
    assert all(head is not None and owner == household for household, head, owner in heads)
    assert len(head_counts) == households and set(head_counts.values()) == {1}
    assert stored["category"] == set(Category)
    assert stored["type"] - {None} == set(MonitoringType)
    assert stored["status"] == set(MonitoringStatus)
    assert revisions == {1}


def test_demo_stores_identity_numbers_hashed_and_masked_never_in_clear(cli, rt, county):
    cli("demo")
    clear = {fields["id_number"] for fields in _members(county)}
    with rt.db.unit_of_work(write=False) as session:
        columns = [c["name"] for c in inspect(session.connection()).get_columns("members")]
        rows = session.execute(
            select(Member.id_number_hash, Member.id_number_masked, Member.id_number_cipher)
        ).all()
        logged = [
            fields["id_number"]
            for fields in session.scalars(select(Change.fields))
            if "id_number" in fields
        ]
        text_values = {
            value
            for row in session.execute(select(Member.__table__)).all()
            for value in row
            if isinstance(value, str)
        }
    assert "id_number" not in columns
    assert not clear & text_values
    assert len(logged) == len(clear) and all("**********" in value for value in logged)
    assert not clear & set(logged)
    one = next(iter(clear))
    assert rt.codec.lookup_hash("id_number", one) in {h for h, _, _ in rows}
    for hashed, masked, cipher in rows:
        assert len(hashed) == 64 and masked.startswith("9901") and "**********" in masked
        number = rt.codec.reveal("id_number", cipher)
        assert number in clear and has_valid_check_character(number)


def test_demo_with_if_empty_does_nothing_once_the_register_has_households(cli, rt):
    cli("demo")
    with rt.db.unit_of_work(write=False) as session:
        before = session.scalar(select(func.count()).select_from(Member))
    result = cli("demo", "--if-empty")
    assert result.exit_code == 0, result.output
    assert "already has households: demo not loaded" in result.output
    again = cli("demo")
    assert again.exit_code == 1
    assert "error: the demo county is already loaded" in again.stderr
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Member)) == before


def test_demo_prints_the_accounts_and_they_log_in_through_the_http_api(cli, client):
    result = cli("demo", "--if-empty")
    assert result.exit_code == 0, result.output
    for account in DEMO_ACCOUNTS:
        assert account.password in result.output
        response = client.post(
            "/api/v1/auth/login",
            json={"username": account.username, "password": account.password},
        )
        assert response.status_code == 200, response.get_json()
        user = response.get_json()["user"]
        assert user["role"] == account.role.value
        assert user["regions"] == sorted(account.regions)


def test_demo_publishes_the_bundled_forms_for_the_demo_tablets(cli, client):
    cli("demo")
    token = client.post(
        "/api/v1/auth/login",
        json={
            "username": DEMO_ACCOUNTS[-1].username,
            "password": DEMO_ACCOUNTS[-1].password,
        },
    ).get_json()["token"]
    forms = client.get("/api/v1/forms", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert sorted(f["form_id"] for f in forms["forms"]) == [
        "household_register",
        "household_visit",
        "monitoring_application",
    ]


def test_demo_if_empty_still_prints_how_to_log_in(cli):
    cli("demo")
    result = cli("demo", "--if-empty")
    assert all(account.password in result.output for account in DEMO_ACCOUNTS)
