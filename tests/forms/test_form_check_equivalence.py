"""The checker gives exactly what the reference checker (`reference_checker.py`, the rules read
directly) gives: the same issues in the same order with the same paths and messages, the same
register updates, the same errors — for realistic household visits with random ages and random
damage, for arbitrary answers to every bundled form and to the test forms, and for the odd cases
(cycles in hand-built definitions, objects that occur twice in the answers, failing expressions).
And checking in one pass gives what validating and then binding give."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from forms.bindings import derive_register_updates
from forms.bundled import BUNDLED_FORM_IDS, load_bundled_form, load_sample_answers
from forms.definition import Choice, Entity, Field, FieldType, FormDefinition, Text
from forms.definition_schema import load_definition
from forms.expressions import Expression, parse_expression
from forms.submission import CheckedSubmission, check_submission
from forms.validation import validate_submission
from tests.forms import reference_checker
from tests.forms.test_form_bindings import data as binding_answers
from tests.forms.test_form_bindings import form as binding_form
from tests.forms.test_form_validation import answers as visit_answers
from tests.forms.test_form_validation import visit_form

COLLECTED_AT = datetime(2025, 6, 3, 9, 30, tzinfo=UTC)
TODAY = date(2024, 11, 20)
HH = "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01"
VISIT = load_bundled_form("household_visit")


def hand_built(fields: list[Field]) -> FormDefinition:
    """A definition built without `load_definition`, so with none of its checks."""
    return FormDefinition(
        form_id="hand_built",
        title=Text("手工", "By hand"),
        fields=(Field("household_id", FieldType.TEXT), *fields),
        entities=(Entity("hh", "household", "household_id", create=False),),
    )


def calculated(name: str, source: str, **extra: Any) -> Field:
    return Field(name, FieldType.CALCULATED, calculation=parse_expression(source), **extra)


FORMS = {form_id: load_bundled_form(form_id) for form_id in BUNDLED_FORM_IDS}
FORMS["test_visit"] = visit_form()
FORMS["binding_test"] = binding_form()


def _kitchen_sink() -> FormDefinition:
    """Every kind of check, built by hand (so unchecked): bounds of each type, lengths, a pattern
    and an unsafe one, a choice filter, a required expression, constraints with and without a
    message, calculations of each type, a bound datetime, nested repeats and references across
    them."""

    def choice(code: str, **attributes: str) -> Choice:
        return Choice(code, Text(code, code.upper()), attributes)

    def expression(source: str) -> Expression:
        return parse_expression(source, allow_current=True, allow_choice_properties=True)

    return FormDefinition(
        form_id="kitchen_sink",
        title=Text("杂项", "Kitchen sink"),
        entities=(Entity("hh", "household", "household_id", create=True),),
        fields=(
            Field("household_id", FieldType.TEXT),
            Field(
                "seen_at",
                FieldType.DATETIME,
                minimum="2024-01-01T00:00:00Z",
                maximum="2025-12-31T23:59:59+08:00",
                bind="hh.seen_at",
            ),
            Field(
                "code",
                FieldType.TEXT,
                pattern="[A-Z]{2}[0-9]+",
                min_length=3,
                max_length=6,
                bind="hh.code",
            ),
            Field("odd", FieldType.TEXT, pattern="(a+)+"),
            Field("born", FieldType.DATE, minimum="1900-01-01", maximum="soon", bind="hh.born"),
            Field(
                "size",
                FieldType.INTEGER,
                minimum=1,
                maximum=30,
                required=expression("${code} != ''"),
                bind="hh.size",
            ),
            Field(
                "income",
                FieldType.DECIMAL,
                minimum=0.5,
                constraint=expression(". < 100000 and . != ${size}"),
                bind="hh.income",
            ),
            Field(
                "kind",
                FieldType.SELECT_ONE,
                choices=(choice("a"), choice("b", size="2"), choice("c", size="x")),
                choice_filter=expression("size = '' or number(size) <= ${size}"),
                constraint=expression(". != 'c'"),
                constraint_message=Text("不行", "No"),
            ),
            Field(
                "tags",
                FieldType.SELECT_MULTIPLE,
                choices=(choice("x"), choice("y"), choice("z")),
                required=True,
                bind="hh.tags",
            ),
            calculated("when", "date(${born})", value_type=FieldType.DATE, bind="hh.when"),
            calculated("label", "concat(${code}, '-', ${size})", value_type=FieldType.TEXT),
            Field("flag", FieldType.BOOLEAN, relevant=expression("${label} != '-'"), bind="hh.f"),
            Field(
                "rows",
                FieldType.REPEAT,
                required=expression("${size} > 2"),
                max_count=2,
                relevant=expression("not(${flag})"),
                fields=(
                    Field("v", FieldType.INTEGER, maximum=9),
                    Field(
                        "inner",
                        FieldType.REPEAT,
                        min_count=1,
                        fields=(
                            Field("w", FieldType.TEXT, required=expression("${v} > 1")),
                            calculated("wv", "concat(${w}, ${v}, ${size})"),
                        ),
                    ),
                ),
            ),
            calculated(
                "total",
                "sum(${v}) + count(${rows}) + count(${w}) + count(${wv})",
                value_type=FieldType.INTEGER,
                bind="hh.total",
            ),
        ),
    )


FORMS["kitchen_sink"] = _kitchen_sink()
FORMS["issue13_additions"] = load_definition(
    {
        "form_id": "issue13_additions",
        "title": {"zh": "新类型", "en": "New types", "fr": "Nouveaux types"},
        "entities": [
            {"name": "hh", "type": "household", "id_field": "household_id", "create": True}
        ],
        "fields": [
            {"name": "household_id", "type": "text"},
            {"name": "n", "type": "integer", "min": 0, "max": 4, "step": 2},
            {"name": "share", "type": "decimal", "min": 0.1, "max": 1, "step": 0.05},
            {"name": "at", "type": "time", "min": "06:00", "max": "22:00:00"},
            {"name": "code", "type": "barcode", "max_length": 6, "bind": "hh.household_no"},
            {"name": "voice", "type": "attachment", "media": "audio"},
            {"name": "road", "type": "geotrace"},
            {"name": "plot", "type": "geoshape", "relevant": "${n} > 0"},
            {
                "name": "prefs",
                "type": "rank",
                "choices_file": "prefs.csv",
                "choices": [
                    {"code": "a", "label": {"zh": "甲", "en": "A", "sw": "A"}},
                    {"code": "b", "label": "乙", "attributes": {"big": "1"}},
                    {"code": "c", "label": "丙", "attributes": {"big": "1"}},
                ],
                "choice_filter": "big = '1' or ${n} > 2",
            },
            {
                "name": "kids",
                "type": "repeat",
                "count": "${n}",
                "max_count": 3,
                "fields": [{"name": "age", "type": "integer", "step": 1}],
            },
        ],
    }
)
SAMPLES: dict[str, dict[str, Any]] = {
    **{form_id: load_sample_answers(form_id) for form_id in BUNDLED_FORM_IDS},
    "test_visit": visit_answers(),
    "binding_test": binding_answers(),
    "kitchen_sink": {
        "household_id": HH,
        "seen_at": "2024-11-18T01:30:00.5Z",
        "code": "AB12",
        "born": "1980-05-21",
        "size": 3,
        "income": 1200.5,
        "kind": "b",
        "tags": ["y", "x"],
        "rows": [{"v": 2, "inner": [{"w": "a"}, {"w": "b"}]}, {"v": 0, "inner": [{}]}],
    },
    "issue13_additions": {
        "household_id": HH,
        "n": 2,
        "share": 0.35,
        "at": "09:30:00.000+08:00",
        "code": "AB-12",
        "voice": {
            "attachment": "sha256:" + "ab" * 32,
            "filename": "v.m4a",
            "content_type": "audio/mp4",
        },
        "road": "26.1 107.5 0 5;26.2 107.6 0 5",
        "plot": "1 2;1 3;2 3;1 2",
        "prefs": "c b",
        "kids": [{"age": 3}, {"age": 9}],
    },
}

Outcome = tuple[str, object]


def outcome(run: Callable[[], object]) -> Outcome:
    """What `run` returned, or which error (type and message) it raised."""
    try:
        return "returned", run()
    except Exception as err:  # the errors themselves are compared
        return "raised", (type(err).__name__, str(err))


def assert_checked_as_the_reference(
    definition: FormDefinition, data: object, today: date, now: datetime = COLLECTED_AT
) -> str:
    """Check `data` every way against the reference; say how it went (for the statistics)."""
    for strict in (False, True):
        expected = reference_checker.validate(
            definition, data, today=today, now=now, strict_relevance=strict
        )
        found = validate_submission(definition, data, today=today, now=now, strict_relevance=strict)
        assert found == expected
    issues = reference_checker.validate(definition, data, today=today, now=now)
    if not isinstance(data, dict):
        assert check_submission(definition, data, today=today, now=now).issues == issues
        return "not an object"
    updates = outcome(lambda: reference_checker.updates(definition, data, today=today, now=now))
    assert outcome(lambda: derive_register_updates(definition, data, today=today, now=now)) == (
        updates
    )
    checked = outcome(lambda: check_submission(definition, data, today=today, now=now))
    if issues:
        assert checked == ("returned", CheckedSubmission(issues, []))
        return "refused"
    if updates[0] == "returned":
        assert checked == ("returned", CheckedSubmission([], updates[1]))  # type: ignore[arg-type]
        return "accepted and bound"
    assert checked == updates
    return "accepted, binding failed"


# --- realistic household visits, then damaged ---------------------------------------------------

SAMPLE = load_sample_answers("household_visit")
ODD_VALUES = st.one_of(
    st.none(),
    st.just(""),
    st.booleans(),
    st.integers(min_value=-3, max_value=40),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["2024-02-30", "2012-09-15", "2030-01-01", "1899-12-31", "safe", "none"]),
    st.lists(st.sampled_from(["none", "accident", "illness", "x"]), max_size=3),
    st.dictionaries(st.sampled_from(["latitude", "longitude", "a"]), st.integers(-200, 200)),
)
MEMBER_KEYS = [f.name for f in VISIT.fields_in(("members",)).values()]
TOP_KEYS = list(VISIT.fields_in(()))


@st.composite
def members(draw: st.DrawFn, today: date) -> dict[str, Any]:
    """A member as a tablet records them: the questions their age asks, answered."""
    born = today - timedelta(days=draw(st.integers(min_value=-30, max_value=95 * 366)))
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    member: dict[str, Any] = {
        "member_id": str(draw(st.uuids())),
        "name": draw(st.sampled_from(["黄志强", "覃美兰", "黄小雨"])),
        "birth_date": born.isoformat(),
        "insured": draw(st.booleans()),
        "health": draw(st.sampled_from(["healthy", "chronic", "disabled"])),
    }
    if 6 <= age <= 15:
        status = draw(st.sampled_from(["in_school", "in_school", "dropped_out", "exempt"]))
        member["school_status"] = status
        if status == "dropped_out" and draw(st.booleans()):
            member["dropout_reason"] = "外出务工"
    if age >= 16 and draw(st.booleans()):
        member["employment"] = draw(st.sampled_from(["farming", "in_county", "out_of_province"]))
    return member


@st.composite
def damaged_visits(draw: st.DrawFn) -> tuple[object, date]:
    """A household visit on a random day, with random members, then 0-4 kinds of damage."""
    today = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)))
    data: dict[str, Any] = copy.deepcopy(SAMPLE)
    data["visit_date"] = today.isoformat()
    data["members"] = draw(st.lists(members(today), min_size=1, max_size=5))
    data["household_size"] = len(data["members"])
    events = draw(st.sampled_from([["none"], ["serious_illness"], ["none", "accident"], []]))
    data["sudden_events"] = events
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        damage = draw(st.sampled_from(DAMAGE))
        damage(draw, data)
    if draw(st.sampled_from([False] * 19 + [True])):
        return draw(ODD_VALUES), today  # not even an object
    return data, today


def _set_top(draw: st.DrawFn, data: dict[str, Any]) -> None:
    data[draw(st.sampled_from([*TOP_KEYS, "colour"]))] = draw(ODD_VALUES)


def _drop_top(draw: st.DrawFn, data: dict[str, Any]) -> None:
    data.pop(draw(st.sampled_from(TOP_KEYS)), None)


def _damage_member(draw: st.DrawFn, data: dict[str, Any]) -> None:
    items = data.get("members")
    if isinstance(items, list) and items and isinstance(items[-1], dict):
        member = items[draw(st.integers(min_value=0, max_value=len(items) - 1))]
        if isinstance(member, dict):
            key = draw(st.sampled_from([*MEMBER_KEYS, "nickname"]))
            if draw(st.booleans()):
                member[key] = draw(ODD_VALUES)
            else:
                member.pop(key, None)


def _odd_members(draw: st.DrawFn, data: dict[str, Any]) -> None:
    items = data.get("members")
    choice = draw(st.integers(min_value=0, max_value=5))
    if choice == 0:
        data["members"] = draw(ODD_VALUES)
    elif choice == 1 and isinstance(items, list):
        items.append(draw(st.sampled_from([5, "x", None, [], [{}]])))
    elif choice == 2 and isinstance(items, list) and items:
        items.append(items[0])  # the same object twice
    elif choice == 3 and isinstance(items, list):
        items.append(data)  # the answers inside themselves
    elif choice == 4 and isinstance(items, list) and items:
        data["members"] = items * 8  # more than max_count
    else:
        data["members"] = []


def _odd_ids(draw: st.DrawFn, data: dict[str, Any]) -> None:
    data["household_id"] = draw(st.sampled_from(["HH-0037", HH.upper(), "", None]))


DAMAGE = [_set_top, _drop_top, _damage_member, _damage_member, _odd_members, _odd_ids]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_visits())
def test_household_visits_check_exactly_as_the_reference_checker(
    visit: tuple[object, date],
) -> None:
    data, today = visit
    now = datetime.combine(today, time(9, 30), tzinfo=UTC)

    event(assert_checked_as_the_reference(VISIT, data, today, now))


@settings(max_examples=200, deadline=None)
@given(damaged_visits())
def test_checking_in_one_pass_is_validating_then_binding(visit: tuple[object, date]) -> None:
    data, today = visit
    now = datetime.combine(today, time(9, 30), tzinfo=UTC)

    checked = check_submission(VISIT, data, today=today, now=now)

    assert checked.issues == validate_submission(VISIT, data, today=today, now=now)
    if checked.issues:
        assert checked.updates == []
    else:
        assert isinstance(data, dict)
        assert checked.updates == derive_register_updates(VISIT, data, today=today, now=now)


# --- arbitrary answers to every form ----------------------------------------------------------


def answer_values(definition: FormDefinition, f: Field, depth: int) -> st.SearchStrategy[Any]:
    """Answers of the field's own type (well-formed or nearly), or anything at all."""
    codes = [choice.code for choice in definition.choices_for(f)] or ["x"]
    typed: dict[FieldType, st.SearchStrategy[Any]] = {
        FieldType.TEXT: st.text(max_size=4)
        | st.uuids().map(str)
        | st.sampled_from(["AB12", "AB", "ab123", "aaaa", "XY1234567"]),
        FieldType.INTEGER: st.integers(min_value=-2, max_value=40),
        FieldType.DECIMAL: st.integers(min_value=-2, max_value=50000) | st.floats(-10, 1e5),
        FieldType.BOOLEAN: st.booleans(),
        FieldType.DATE: st.dates(date(1900, 1, 1), date(2031, 1, 1)).map(date.isoformat),
        FieldType.DATETIME: st.sampled_from(
            [
                "2024-11-18T09:30:00+08:00",
                "2024-11-18T01:30:00.123456789Z",
                "2023-12-31T23:59:59z",
                "2026-01-01T00:00:00-01:00",
                "2024-11-18T09:30",
            ]
        ),
        FieldType.SELECT_ONE: st.sampled_from([*codes, "nope"]),
        FieldType.SELECT_MULTIPLE: st.lists(st.sampled_from([*codes, "nope"]), max_size=3),
        FieldType.GEOPOINT: st.fixed_dictionaries(
            {"latitude": st.integers(-95, 95), "longitude": st.integers(-185, 185)}
        ),
        FieldType.ATTACHMENT: st.builds(
            lambda kind: {
                "attachment": "sha256:" + "ab" * 32,
                "filename": "a",
                "content_type": kind,
            },
            st.sampled_from(["image/jpeg", "audio/mp4", "video/mp4", "application/octet-stream"]),
        ),
        FieldType.TIME: st.sampled_from(
            ["05:59", "06:00", "12:30:15.5+08:00", "22:00:00.000Z", "22:00:01", "24:00", "7:00"]
        ),
        FieldType.BARCODE: st.text(max_size=8),
        FieldType.GEOTRACE: st.sampled_from(
            ["1 2;3 4", "1 2", "1 2 3 4;5 6 7 8;", "91 0;0 0", "1 2;x y", "1 2 3 -1;1 2"]
        ),
        FieldType.GEOSHAPE: st.sampled_from(
            ["1 2;1 3;2 3;1 2", "1 2;1 3;2 3;1 4", "1 2;1 3;1 2", "1 2 0 0;1 3;2 3;1 2 5 5"]
        ),
        FieldType.RANK: st.permutations([*codes, "nope"]).flatmap(
            lambda order: st.integers(0, len(order)).map(lambda cut: " ".join(order[:cut]))
        )
        | st.sampled_from(["a a", "b c", "c b", "a b c"]),
    }
    if f.type in (FieldType.INTEGER, FieldType.DECIMAL) and f.step is not None:
        typed[FieldType.DECIMAL] = st.sampled_from([0.1, 0.15, 0.35, 0.351, 1, 1.05, 0.3])
    if f.type is FieldType.REPEAT:
        if depth >= 2:
            return ODD_VALUES
        scope = next(path for path, g in definition.iter_fields() if g is f)
        instance = instances(definition, scope, depth + 1)
        return st.lists(st.one_of(instance, instance, instance, ODD_VALUES), max_size=3)
    well_typed = typed.get(f.type, ODD_VALUES)
    return st.one_of(well_typed, well_typed, well_typed, ODD_VALUES)


def instances(
    definition: FormDefinition, scope: tuple[str, ...], depth: int = 0
) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of answers for `scope`: any of its fields, each answered or not (and now and then
    a key that is no field)."""
    fields = definition.fields_in(scope)
    optional = {name: answer_values(definition, f, depth) for name, f in fields.items()}
    stray = st.sampled_from([{}] * 9 + [{"stray": 1}])
    return st.tuples(st.fixed_dictionaries({}, optional=optional), stray).map(
        lambda parts: {**parts[0], **parts[1]}
    )


def few_answers(definition: FormDefinition) -> st.SearchStrategy[dict[str, Any]]:
    """Answers to one to three top-level fields."""
    fields = definition.fields_in(())
    names = st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True)
    return names.flatmap(
        lambda chosen: st.fixed_dictionaries(
            {name: answer_values(definition, fields[name], 0) for name in chosen}
        )
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(sorted(FORMS)))
def test_any_answers_to_any_form_check_exactly_as_the_reference_checker(
    data: st.DataObject, form_id: str
) -> None:
    definition = FORMS[form_id]
    today = data.draw(st.dates(date(2024, 1, 1), date(2026, 12, 31)))
    if data.draw(st.booleans()):
        answers = {**copy.deepcopy(SAMPLES[form_id]), **data.draw(few_answers(definition))}
    else:
        answers = data.draw(instances(definition, ()))

    event(assert_checked_as_the_reference(definition, answers, today))


# --- the odd cases, one by one -----------------------------------------------------------------


def test_cycles_in_a_hand_built_definition_are_cut_as_the_reference_cuts_them() -> None:
    definition = hand_built(
        [
            calculated("a", "${b} + 1", value_type=FieldType.INTEGER, bind="hh.a"),
            calculated("b", "coalesce(${a}, 10) * 2", value_type=FieldType.INTEGER, bind="hh.b"),
            Field(
                "c",
                FieldType.INTEGER,
                relevant=parse_expression("${d} > 0 or ${c} = 1"),
                bind="hh.c",
            ),
            Field("d", FieldType.INTEGER, relevant=parse_expression("${c} >= 0"), bind="hh.d"),
            calculated("e", "${e}", bind="hh.e"),
        ]
    )
    for answers in ({"household_id": HH}, {"household_id": HH, "c": 1, "d": 2}, {"c": "x"}):
        assert_checked_as_the_reference(definition, answers, TODAY)
    (update,) = derive_register_updates(definition, {"household_id": HH, "c": 1}, today=TODAY)
    assert update.fields == {"a": 21, "b": 20}


def test_failing_expressions_make_values_null_and_constraints_fail_as_before() -> None:
    definition = hand_built(
        [
            Field("n", FieldType.INTEGER, bind="hh.n"),
            calculated("many", "${items} + 1", bind="hh.many"),  # a node-set outside count()
            calculated("big", "${n} * 100000000000000000 * 100000000000000", bind="hh.big"),
            Field(
                "items",
                FieldType.REPEAT,
                fields=(Field("item", FieldType.INTEGER),),
                relevant=parse_expression("${big} > 0"),
            ),
            Field(
                "checked",
                FieldType.INTEGER,
                constraint=parse_expression(". div ${items}", allow_current=True),
                required=parse_expression("1 + ${items} = 2"),
            ),
        ]
    )
    for n in (None, 0, 7, 10**14):
        answers: dict[str, Any] = {"household_id": HH, "n": n, "items": [{"item": 1}, 5]}
        assert_checked_as_the_reference(definition, answers, TODAY)
        assert_checked_as_the_reference(definition, {**answers, "checked": 3}, TODAY)


def test_an_object_that_occurs_twice_is_worked_out_once_as_before() -> None:
    answers = copy.deepcopy(SAMPLE)
    members = answers["members"]
    assert isinstance(members, list)
    members.append(members[2])
    members.append(answers)

    assert_checked_as_the_reference(VISIT, answers, TODAY)


def test_an_object_met_in_two_scopes_keeps_what_was_worked_out_first_as_before() -> None:
    # Only Python callers can do this (JSON never shares objects); the answers are read per
    # object, so the second scope sees the first one's readings and environment.
    definition = hand_built(
        [
            Field("x", FieldType.INTEGER),
            calculated("c", "${x} * 2", bind="hh.c"),
            Field(
                "items",
                FieldType.REPEAT,
                fields=(
                    Field("x", FieldType.TEXT),
                    calculated("c", "concat(${x}, '!')"),
                    Field("y", FieldType.TEXT, relevant=parse_expression("${c} = '3!'")),
                ),
            ),
        ]
    )
    answers: dict[str, Any] = {"household_id": HH, "x": 3, "y": "shown?"}
    answers["items"] = [answers]

    assert_checked_as_the_reference(definition, answers, TODAY)
    assert_checked_as_the_reference(definition, {**answers, "items": [{"x": "3"}, answers]}, TODAY)


def test_a_choice_filter_sees_each_choice_and_the_answers() -> None:
    definition = visit_form()
    base = {"household_id": HH, "visit_date": "2024-11-18", "size": 1, "members": []}
    for township, village in (("t1", "v11"), ("t1", "v21"), (None, "v11"), ("t9", "v21")):
        answers = {**base, "township": township, "village": village}
        assert_checked_as_the_reference(definition, answers, TODAY)


def test_the_plan_is_derived_once_per_definition() -> None:
    definition = load_definition(visit_form().to_dict())
    assert "submission_plan" not in definition.memo

    check_submission(definition, {}, today=TODAY, now=COLLECTED_AT)
    plan = definition.memo["submission_plan"]
    check_submission(definition, {"size": 2}, today=TODAY, now=COLLECTED_AT)

    assert definition.memo["submission_plan"] is plan


def test_unknown_entity_repeats_and_id_fields_fail_binding_as_before() -> None:
    household = Entity("hh", "household", "household_id", create=False)
    broken_entities = [
        Entity("m", "member", "member_id", create=False, repeat="nowhere", parent="hh"),
        Entity("m", "member", "no_such_field", create=False),
        Entity("m", "member", "household_id", create=False, parent="nobody"),
        Entity("hh", "member", "x", create=False),  # a second entity of the same name
    ]
    for broken in broken_entities:
        definition = FormDefinition(
            form_id="broken",
            title=Text("坏", "Broken"),
            fields=(Field("household_id", FieldType.TEXT), Field("x", FieldType.TEXT, bind="m.x")),
            entities=(household, broken),
        )
        for answers in ({"household_id": HH, "x": "y"}, {"nowhere": [{}], "x": ""}):
            assert_checked_as_the_reference(definition, answers, TODAY)


def test_uuids_in_any_case_bind_in_lower_case() -> None:
    answers = {**copy.deepcopy(SAMPLE), "household_id": str(uuid.UUID(HH)).upper()}

    assert_checked_as_the_reference(VISIT, answers, TODAY)
