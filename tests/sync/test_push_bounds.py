"""Every bound the protocol or a form allows fits its column, and one past it is refused per item.

The bounds are declared once (`forms.register` for the register, the protocol's constants for the
submissions and devices tables); these tests walk every register field, every bound field of
every bundled form and every column a push writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Enum, Integer, Numeric, String, Uuid

from forms.answer_types import MAX_TEXT_LENGTH
from forms.bundled import BUNDLED_FORM_IDS, load_bundled_form, load_sample_answers
from forms.compatibility import check_register_compatibility
from forms.definition import FieldType
from forms.definition_checks import placed_fields
from forms.register import ENTITIES
from server.devices.models import Device, DeviceSequenceGap
from server.households.models import Household, Member
from server.submissions.models import Submission
from server.users.models import Role
from sync_protocol.clock import COUNTER_DIGITS, MAX_NODE_LENGTH, MILLIS_DIGITS
from sync_protocol.messages import MAX_INT32, SubmissionSchema
from tests.conftest import VILLAGE_A1
from tests.sync.helpers import HOUSEHOLD_A, MEMBERS_A, Tablet, load_register, visit
from tests.sync.test_push_poison_items import push_escaped

TABLES = {"household": Household.__table__, "member": Member.__table__}
INT64_MAX = 2**63 - 1


def _column(entity: str, name: str) -> Any:
    table = TABLES[entity]
    spec = ENTITIES[entity].fields[name]
    if spec.sensitive and spec.kind == "text":
        return table.c[f"{name}_masked"]  # the hash and cipher are fixed-size or unbounded
    return table.c[name]


@pytest.mark.parametrize(
    ("entity", "name"), [(e, n) for e, s in ENTITIES.items() for n in s.fields]
)
def test_every_register_field_declares_a_bound_its_column_holds(entity, name):
    spec: Any = ENTITIES[entity].fields[name]
    column_type: Any = _column(entity, name).type
    if spec.kind == "text" and spec.is_uuid:
        assert isinstance(column_type, Uuid)
    elif spec.kind == "text":
        assert isinstance(column_type, String) and spec.max_length is not None
        assert column_type.length == spec.max_length, f"{entity}.{name}"
    elif spec.kind in ("decimal", "integer"):
        assert isinstance(column_type, Numeric) and spec.limit is not None
        whole_digits = int(column_type.precision or 0) - int(column_type.scale or 0)
        assert len(str(spec.limit)) <= whole_digits
        assert spec.problem(spec.limit) is None and spec.problem(-spec.limit) is None
        assert spec.problem(spec.limit + 1) is not None
    elif spec.kind == "select_one":
        assert isinstance(column_type, Enum) and spec.choices is not None
        assert set(column_type.enums) == set(spec.choices.codes())
        assert max(len(code) for code in spec.choices.codes()) <= (column_type.length or 0)
    if spec.max_length is not None:
        assert spec.problem("字" * spec.max_length) is None
        assert spec.problem("字" * (spec.max_length + 1)) is not None


def test_every_bound_of_a_submission_fits_the_submissions_and_devices_tables():
    fields: Any = SubmissionSchema().fields
    columns: Any = Submission.__table__.c
    assert fields["form_id"].max_length <= columns["form_id"].type.length
    assert fields["form_version"].maximum <= MAX_INT32 and isinstance(
        columns["form_version"].type, Integer
    )
    assert isinstance(columns["device_seq"].type, BigInteger)
    assert fields["device_seq"].maximum <= INT64_MAX
    assert isinstance(Device.__table__.c["highest_seq"].type, BigInteger)
    for name in ("first_seq", "last_seq"):
        assert isinstance(DeviceSequenceGap.__table__.c[name].type, BigInteger)
    longest_hlc = MILLIS_DIGITS + COUNTER_DIGITS + MAX_NODE_LENGTH + 2
    assert longest_hlc <= columns["hlc"].type.length
    assert isinstance(columns["instance_id"].type, Uuid)
    assert isinstance(columns["batch_id"].type, Uuid)


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_every_bundled_form_binds_within_the_register_bounds(form_id):
    assert check_register_compatibility(load_bundled_form(form_id)) == []


# --- the extremes, through the real push -----------------------------------------------------


def _answers(form_id: str) -> tuple[dict[str, Any], uuid.UUID, uuid.UUID | None]:
    """Valid answers of `form_id` for a collector of VILLAGE_A1: (answers, household, member)."""
    if form_id == "household_visit":
        return visit(), HOUSEHOLD_A, MEMBERS_A[0]
    answers = copy.deepcopy(load_sample_answers(form_id))
    household = uuid.uuid4()
    answers["household_id"] = str(household)
    answers["village_code"] = VILLAGE_A1
    member = None
    members: Any = answers.get("members", [])
    for instance in members:
        instance["member_id"] = str(uuid.uuid4())
        member = member or uuid.UUID(instance["member_id"])
    return answers, household, member


Extreme = tuple[str, str, tuple[str, ...], Any, Any]


def _extremes() -> list[Extreme]:
    """(form, field, scope, largest allowed value, one past it) for every bound text and number
    field of every bundled form that has no pattern (a pattern fixes its own length)."""
    cases: list[Extreme] = []
    for form_id in BUNDLED_FORM_IDS:
        for placed in placed_fields(load_bundled_form(form_id).fields):
            f = placed.field
            if f.bind is None or f.type is FieldType.CALCULATED:
                continue
            entity_name, register_name = f.bind.split(".")
            entity = "member" if entity_name == "m" else "household"
            spec = ENTITIES[entity].fields[register_name]
            if f.type is FieldType.TEXT and f.pattern is None and not spec.is_uuid:
                length = min(f.max_length or MAX_TEXT_LENGTH, spec.max_length or MAX_TEXT_LENGTH)
                cases.append((form_id, f.name, placed.scope, "字" * length, "字" * (length + 1)))
            elif f.type in (FieldType.DECIMAL, FieldType.INTEGER) and spec.limit is not None:
                high = min(f.maximum if isinstance(f.maximum, int) else spec.limit, spec.limit)
                cases.append((form_id, f.name, placed.scope, high, high + 1))
    return cases


EXTREMES = _extremes()


def test_the_walk_covers_every_bounded_register_field_the_bundled_forms_write():
    covered = {(form, name) for form, name, *_ in EXTREMES}
    assert ("household_register", "household_no") in covered
    assert ("household_visit", "annual_income") in covered
    assert ("monitoring_application", "declared_income") in covered
    assert len(covered) >= 8


@pytest.fixture
def tablet(client, rt, create_user_):
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def _with(answers: dict[str, Any], scope: tuple[str, ...], name: str, value: Any) -> dict:
    answers = copy.deepcopy(answers)
    target = answers
    for repeat in scope:
        target = target[repeat][0]
    target[name] = value
    return answers


@pytest.mark.parametrize(
    ("form_id", "name", "scope", "largest", "past"),
    EXTREMES,
    ids=[f"{form}.{name}" for form, name, *_ in EXTREMES],
)
def test_largest_allowed_value_is_stored_and_one_past_it_is_rejected_alone(
    tablet, rt, form_id, name, scope, largest, past
):
    answers, household_id, member_id = _answers(form_id)
    fits = tablet.submission(_with(answers, scope, name, largest), form_id=form_id)
    too_big = tablet.submission(_with(answers, scope, name, past), form_id=form_id)
    response = push_escaped(tablet, [fits, too_big])
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    first, second = response.get_json()["results"]
    assert first["status"] == "accepted", first
    assert second["status"] == "rejected", second
    path = ".".join(("data", *(f"{repeat}[0]" for repeat in scope), name))
    assert [e["path"] for e in second["errors"]] == [path], second
    assert second["errors"][0]["code"] in {"too_long", "above_max"}
    entity_name, register_name = _bind_of(form_id, scope, name).split(".")
    with rt.db.unit_of_work(write=False) as session:
        if entity_name == "m":
            row: Any = session.get(Member, member_id)
        else:
            row = session.get(Household, household_id)
        assert row is not None
        stored = getattr(row, register_name, None)
        if stored is not None:  # sensitive fields are not readable as such
            expected = Decimal(largest) if isinstance(stored, Decimal) else largest
            assert stored == expected


def _bind_of(form_id: str, scope: tuple[str, ...], name: str) -> str:
    for placed in placed_fields(load_bundled_form(form_id).fields):
        if placed.field.name == name and placed.scope == scope and placed.field.bind:
            return placed.field.bind
    raise LookupError(name)


@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=70),
        st.sampled_from(
            [
                code
                for e in ENTITIES.values()
                for f in e.fields.values()
                if f.choices
                for code in f.choices.codes()
            ]
        ),
        st.lists(st.text(max_size=20), max_size=3),
        st.uuids().map(str),
    )
)
@settings(max_examples=300, derandomize=True, database=None)
def test_the_quick_fit_test_agrees_with_the_problem_it_stands_for(value):
    for spec in (f for e in ENTITIES.values() for f in e.fields.values()):
        assert spec.fits(value) == (spec.problem(value) is None), (spec.name, value)


# --- every register field, through a form that binds them all without bounds of its own -----

_MEMBER_FIELDS = {"household_id"}  # filled from the parent entity, never bound


def _bindable(entity: str) -> list[Any]:
    return [
        spec
        for spec in ENTITIES[entity].fields.values()
        if not spec.server_owned
        and spec.name not in _MEMBER_FIELDS
        and spec.name != "village_code"  # must name a village: its own test above
        and ((spec.kind == "text" and not spec.is_uuid) or spec.kind == "decimal")
    ]


def _unbounded_form() -> dict[str, Any]:
    def field(prefix: str, spec: Any) -> dict[str, Any]:
        return {"name": f"{prefix}_{spec.name}", "type": spec.kind, "bind": f"{prefix}.{spec.name}"}

    return {
        "form_id": "register_extremes",
        "title": "extremes",
        "entities": [
            {"name": "hh", "type": "household", "id_field": "household_id", "create": True},
            {
                "name": "m",
                "type": "member",
                "repeat": "members",
                "id_field": "member_id",
                "parent": "hh",
                "create": True,
            },
        ],
        "fields": [
            {"name": "household_id", "type": "text", "required": True},
            {"name": "village_code", "type": "text", "bind": "hh.village_code"},
            *(field("hh", spec) for spec in _bindable("household")),
            {
                "name": "members",
                "type": "repeat",
                "fields": [
                    {"name": "member_id", "type": "text", "required": True},
                    *(field("m", spec) for spec in _bindable("member")),
                ],
            },
        ],
    }


def _extreme_answers(past: int) -> tuple[dict[str, Any], uuid.UUID, uuid.UUID]:
    """Answers at every register field's bound (`past=1`: one beyond it)."""

    def extreme(spec: Any) -> Any:
        if spec.kind == "decimal":
            return spec.limit + past
        return "字" * (spec.max_length + past)

    household, member = uuid.uuid4(), uuid.uuid4()
    answers: dict[str, Any] = {
        "household_id": str(household),
        "village_code": VILLAGE_A1,
        **{f"hh_{spec.name}": extreme(spec) for spec in _bindable("household")},
        "members": [
            {
                "member_id": str(member),
                **{f"m_{spec.name}": extreme(spec) for spec in _bindable("member")},
            }
        ],
    }
    return answers, household, member


def test_every_register_field_holds_its_bound_through_a_push_and_refuses_one_past_it(
    tablet, client, rt, create_user_, login
):
    create_user_("admin", Role.ADMIN)
    admin = {"Authorization": f"Bearer {login('admin')}"}
    assert client.post("/api/v1/forms", json=_unbounded_form(), headers=admin).status_code == 201
    published = client.post("/api/v1/forms/register_extremes/publish", headers=admin)
    assert published.status_code == 200, published.get_json()
    fits, household_id, member_id = _extreme_answers(0)
    too_big, *_ = _extreme_answers(1)
    response = push_escaped(
        tablet,
        [
            tablet.submission(fits, form_id="register_extremes"),
            tablet.submission(too_big, form_id="register_extremes"),
        ],
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    first, second = response.get_json()["results"]
    assert first["status"] == "accepted", first
    assert second["status"] == "rejected"
    bound = [f"data.hh_{s.name}" for s in _bindable("household")]
    bound += [f"data.members[0].m_{s.name}" for s in _bindable("member")]
    assert sorted(e["path"] for e in second["errors"]) == sorted(bound)
    with rt.db.unit_of_work(write=False) as session:
        household, member = session.get(Household, household_id), session.get(Member, member_id)
        for entity, row in (("household", household), ("member", member)):
            for spec in _bindable(entity):
                stored = getattr(row, spec.name, None)
                if spec.sensitive:
                    stored = getattr(row, f"{spec.name}_masked")
                    assert stored is not None and len(stored) == spec.max_length
                elif spec.kind == "decimal":
                    assert stored == Decimal(spec.limit)
                else:
                    assert stored == "字" * spec.max_length
