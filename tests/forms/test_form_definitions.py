"""Specification of the definition language: what loads, what is refused (with which path and
code), and the canonical JSON and hash."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from forms.definition import FieldType, Text
from forms.definition_schema import load_definition
from forms.issues import DefinitionError, IssueCode

CONTRACT_EXAMPLE = """
{
  "form_id": "household_visit",
  "title": {"zh": "防返贫监测入户走访", "en": "Household monitoring visit"},
  "entities": [
    {"name": "hh", "type": "household", "id_field": "household_id", "create": true},
    {"name": "m", "type": "member", "repeat": "members", "id_field": "member_id",
     "parent": "hh", "create": true}
  ],
  "fields": [
    {"name": "household_id", "type": "text", "required": true},
    {"name": "village_code", "type": "text", "bind": "hh.village_code"},
    {"name": "per_capita_income", "type": "decimal", "min": 0, "bind": "hh.per_capita_income"},
    {"name": "members", "type": "repeat", "fields": [
      {"name": "member_id", "type": "text", "required": true},
      {"name": "name", "type": "text", "required": true, "bind": "m.name"},
      {"name": "insured", "type": "boolean", "bind": "m.insured"}
    ]}
  ]
}
"""


def contract() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CONTRACT_EXAMPLE)
    return loaded


def refusal(raw: object) -> list[tuple[str, IssueCode]]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(raw)
    return [(issue.path, issue.code) for issue in caught.value.issues]


def test_the_minimal_contract_example_loads_as_is() -> None:
    definition = load_definition(contract())

    assert definition.form_id == "household_visit"
    assert definition.title == Text("防返贫监测入户走访", "Household monitoring visit")
    assert [e.name for e in definition.entities] == ["hh", "m"]
    members = definition.find_field(("members",))
    assert members is not None and members.type is FieldType.REPEAT
    assert [f.name for f in members.fields] == ["member_id", "name", "insured"]
    assert definition.find_field(("per_capita_income",)).minimum == 0  # type: ignore[union-attr]


def test_a_plain_string_label_means_the_same_text_in_both_languages() -> None:
    raw = contract()
    raw["title"] = "入户走访"
    raw["fields"][1]["label"] = "村代码"

    definition = load_definition(raw)

    assert definition.title == Text("入户走访", "入户走访")
    assert definition.fields[1].label == Text("村代码", "村代码")


def test_to_dict_round_trips_and_canonical_json_is_sorted_compact_and_unescaped() -> None:
    definition = load_definition(contract())

    assert load_definition(definition.to_dict()) == definition
    text = definition.canonical_json()
    assert text == json.dumps(
        json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert "防返贫" in text


def test_content_hash_is_stable_and_changes_with_any_content() -> None:
    first = load_definition(contract()).content_hash()
    changed = contract()
    changed["fields"][1]["label"] = {"zh": "村", "en": "Village"}

    assert first == load_definition(contract()).content_hash()
    assert len(first) == 64 and int(first, 16) >= 0
    assert load_definition(changed).content_hash() != first


def test_unknown_keys_are_refused_with_their_path() -> None:
    raw = contract()
    raw["fields"][3]["fields"][1]["colour"] = "red"

    assert refusal(raw) == [("fields[3].fields[1].colour", IssueCode.INVALID_DEFINITION)]


def test_form_id_must_be_lowercase_identifier() -> None:
    raw = contract()
    raw["form_id"] = "Household-Visit"

    assert refusal(raw) == [("form_id", IssueCode.INVALID_DEFINITION)]


def test_duplicate_field_names_in_one_scope_are_refused() -> None:
    raw = contract()
    raw["fields"][3]["fields"].append({"name": "name", "type": "text"})

    assert refusal(raw) == [("fields[3].fields[3].name", IssueCode.DUPLICATE_NAME)]


def test_the_same_name_in_different_scopes_is_allowed() -> None:
    raw = contract()
    raw["fields"].append({"name": "name", "type": "text"})

    assert load_definition(raw).find_field(("name",)) is not None


def test_a_select_referring_to_an_unknown_choice_list_is_refused() -> None:
    raw = contract()
    raw["fields"].append({"name": "water", "type": "select_one", "choices": "water_sources"})

    assert refusal(raw) == [("fields[4].choices", IssueCode.UNKNOWN_CHOICE_LIST)]


def test_register_and_library_choice_lists_are_resolved_and_snapshotted() -> None:
    raw = contract()
    raw["fields"][3]["fields"].append(
        {"name": "relation", "type": "select_one", "choices": "register.relation"}
    )
    raw["fields"].append({"name": "house", "type": "select_one", "choices": "library.house_safety"})

    definition = load_definition(raw)

    relation = [c.code for c in definition.choice_lists["register.relation"]]
    assert relation[:3] == ["head", "spouse", "child"]
    assert definition.choice_lists["register.relation"][0].label == Text(
        "户主", "Head of household"
    )
    assert "grade_d" in [c.code for c in definition.choice_lists["library.house_safety"]]
    assert "register.relation" in definition.to_dict()["choice_lists"]


def test_top_level_and_inline_choice_lists_are_both_accepted() -> None:
    raw = contract()
    raw["choice_lists"] = {"water": [{"code": "tap", "label": "自来水"}]}
    raw["fields"].append({"name": "water", "type": "select_one", "choices": "water"})
    raw["fields"].append(
        {"name": "roof", "type": "select_multiple", "choices": [{"code": "tile", "label": "瓦"}]}
    )

    definition = load_definition(raw)

    assert [c.code for c in definition.choices_for(definition.fields[4])] == ["tap"]
    assert [c.code for c in definition.choices_for(definition.fields[5])] == ["tile"]


def test_duplicate_choice_codes_are_refused() -> None:
    raw = contract()
    raw["fields"].append(
        {
            "name": "roof",
            "type": "select_one",
            "choices": [{"code": "a", "label": "A"}, {"code": "a", "label": "B"}],
        }
    )

    assert refusal(raw) == [("fields[4].choices", IssueCode.DUPLICATE_NAME)]


def test_binding_to_an_unknown_entity_is_refused() -> None:
    raw = contract()
    raw["fields"][1]["bind"] = "house.village_code"

    assert refusal(raw) == [("fields[1].bind", IssueCode.UNKNOWN_ENTITY)]


def test_a_field_inside_a_repeat_cannot_bind_to_a_top_level_entity() -> None:
    raw = contract()
    raw["fields"][3]["fields"][1]["bind"] = "hh.helper"

    assert refusal(raw) == [("fields[3].fields[1].bind", IssueCode.BINDING_SCOPE)]


def test_a_top_level_field_cannot_bind_to_an_entity_of_a_repeat() -> None:
    raw = contract()
    raw["fields"][1]["bind"] = "m.phone"

    assert refusal(raw) == [("fields[1].bind", IssueCode.BINDING_SCOPE)]


def test_two_fields_binding_the_same_register_field_are_refused() -> None:
    raw = contract()
    raw["fields"].append({"name": "village", "type": "text", "bind": "hh.village_code"})

    assert refusal(raw) == [("fields[4].bind", IssueCode.DUPLICATE_BINDING)]


def test_a_member_entity_needs_a_household_parent() -> None:
    raw = contract()
    del raw["entities"][1]["parent"]

    assert refusal(raw) == [("entities[1].parent", IssueCode.INVALID_ENTITY)]


def test_an_entity_id_field_must_exist_in_the_entity_scope() -> None:
    raw = contract()
    raw["entities"][1]["id_field"] = "household_id"  # top level, not in members

    assert refusal(raw) == [("entities[1].id_field", IssueCode.INVALID_ENTITY)]


def test_an_entity_repeat_must_name_a_repeat() -> None:
    raw = contract()
    raw["entities"][1]["repeat"] = "village_code"

    issues = refusal(raw)

    assert ("entities[1].repeat", IssueCode.INVALID_ENTITY) in issues


def test_every_problem_is_reported_not_just_the_first() -> None:
    raw = contract()
    raw["fields"][1]["bind"] = "nobody.village_code"
    raw["fields"][2]["relevant"] = "${nothing} > 1"
    raw["fields"].append({"name": "village_code", "type": "text"})

    codes = {code for _, code in refusal(raw)}

    assert codes == {
        IssueCode.UNKNOWN_ENTITY,
        IssueCode.UNKNOWN_REFERENCE,
        IssueCode.DUPLICATE_NAME,
    }


def test_expression_syntax_errors_carry_the_field_path_and_character_position() -> None:
    raw = contract()
    raw["fields"][2]["relevant"] = "${village_code} = = 'x'"

    with pytest.raises(DefinitionError) as caught:
        load_definition(raw)

    (issue,) = caught.value.issues
    assert issue.path == "fields[2].relevant"
    assert "character 18" in issue.message


def test_references_to_unknown_fields_are_refused_at_load_time() -> None:
    raw = contract()
    raw["fields"][3]["fields"][2]["relevant"] = "${age} > 6"

    assert refusal(raw) == [("fields[3].fields[2].relevant", IssueCode.UNKNOWN_REFERENCE)]


def test_a_repeat_field_used_from_outside_must_be_aggregated() -> None:
    raw = contract()
    raw["fields"].append(
        {"name": "n", "type": "calculated", "calculation": "${insured}", "value_type": "boolean"}
    )

    assert refusal(raw) == [("fields[4].calculation", IssueCode.INVALID_EXPRESSION)]
    raw["fields"][4]["calculation"] = "count(${insured})"
    assert load_definition(raw).fields[4].calculation is not None


def test_the_current_value_dot_is_only_allowed_in_constraints() -> None:
    raw = contract()
    raw["fields"][2]["relevant"] = ". > 0"

    assert refusal(raw) == [("fields[2].relevant", IssueCode.INVALID_DEFINITION)]
    raw["fields"][2]["relevant"] = None
    del raw["fields"][2]["relevant"]
    raw["fields"][2]["constraint"] = ". < 1000000"
    assert load_definition(raw).fields[2].constraint is not None


def test_relevance_cycles_are_refused() -> None:
    raw = contract()
    raw["fields"][1]["relevant"] = "${per_capita_income} > 0"
    raw["fields"][2]["relevant"] = "${village_code} != ''"

    codes = refusal(raw)

    assert codes == [
        ("fields[1]", IssueCode.DEPENDENCY_CYCLE),
        ("fields[2]", IssueCode.DEPENDENCY_CYCLE),
    ]


def test_type_specific_attributes_are_refused_on_other_types() -> None:
    raw = contract()
    raw["fields"][1]["min"] = 3
    raw["fields"][2]["max_length"] = 4

    assert refusal(raw) == [
        ("fields[1].min", IssueCode.INVALID_DEFINITION),
        ("fields[2].max_length", IssueCode.INVALID_DEFINITION),
    ]


def test_date_bounds_must_be_iso_dates_and_ordered() -> None:
    raw = contract()
    raw["fields"].append({"name": "d", "type": "date", "min": "2024-13-01"})
    raw["fields"].append({"name": "e", "type": "date", "min": "2024-02-01", "max": "2024-01-01"})

    assert refusal(raw) == [
        ("fields[4].min", IssueCode.INVALID_DEFINITION),
        ("fields[5].min", IssueCode.INVALID_DEFINITION),
    ]


def test_patterns_with_catastrophic_backtracking_shapes_are_refused() -> None:
    raw = contract()
    raw["fields"][1]["pattern"] = "^(a+)+$"

    assert refusal(raw) == [("fields[1].pattern", IssueCode.INVALID_PATTERN)]


def test_calculated_fields_need_a_calculation_and_a_plain_value_type() -> None:
    raw = contract()
    raw["fields"].append({"name": "c", "type": "calculated"})
    raw["fields"].append(
        {"name": "k", "type": "calculated", "calculation": "1", "value_type": "repeat"}
    )

    assert refusal(raw) == [
        ("fields[4].calculation", IssueCode.INVALID_DEFINITION),
        ("fields[5].value_type", IssueCode.INVALID_DEFINITION),
    ]


def test_required_may_be_an_expression() -> None:
    raw = contract()
    raw["fields"][1]["required"] = "${per_capita_income} > 0"

    required = load_definition(raw).fields[1].required

    assert not isinstance(required, bool)
    assert required.source == "${per_capita_income} > 0"


def test_absurdly_deep_definitions_are_refused_before_parsing() -> None:
    raw = contract()
    nested: dict[str, Any] = {"name": "leaf", "type": "text"}
    for depth in range(200):
        nested = {"name": f"r{depth}", "type": "repeat", "fields": [nested]}
    raw["fields"].append(nested)

    assert refusal(raw) == [("", IssueCode.INVALID_DEFINITION)]


def test_a_definition_that_is_not_an_object_is_refused() -> None:
    assert refusal(["not", "a", "form"]) == [("", IssueCode.INVALID_DEFINITION)]


def test_every_field_type_loads() -> None:
    raw = copy.deepcopy(contract())
    raw["fields"] += [
        {"name": "t", "type": "text", "min_length": 1, "max_length": 5, "pattern": "^[a-z]+$"},
        {"name": "i", "type": "integer", "min": 0, "max": 10},
        {"name": "b", "type": "boolean"},
        {"name": "d", "type": "date", "min": "2020-01-01"},
        {"name": "dt", "type": "datetime", "max": "2030-01-01T00:00:00+08:00"},
        {"name": "s1", "type": "select_one", "choices": "register.sex"},
        {"name": "sm", "type": "select_multiple", "choices": "register.risk_cause"},
        {"name": "g", "type": "geopoint"},
        {"name": "p", "type": "attachment", "media": "signature"},
        {"name": "n", "type": "note", "label": {"zh": "注意", "en": "Note"}},
        {"name": "c", "type": "calculated", "calculation": "${i} * 2", "value_type": "integer"},
        {"name": "tm", "type": "time", "min": "08:00"},
        {"name": "bc", "type": "barcode", "max_length": 20},
        {"name": "gt", "type": "geotrace"},
        {"name": "gs", "type": "geoshape"},
        {"name": "rk", "type": "rank", "choices": "register.sex"},
    ]

    definition = load_definition(raw)

    assert {f.type for _, f in definition.iter_fields()} == set(FieldType)
