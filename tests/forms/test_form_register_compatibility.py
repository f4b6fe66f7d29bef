"""Specification of the register compatibility check and of definition diffs."""

from __future__ import annotations

import json
from typing import Any

from forms.compatibility import check_register_compatibility
from forms.definition_schema import load_definition
from forms.diff import diff_definitions
from forms.issues import IssueCode


def base() -> dict[str, Any]:
    return {
        "form_id": "compat_test",
        "title": "兼容",
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
            {"name": "household_id", "type": "text"},
            {
                "name": "members",
                "type": "repeat",
                "fields": [{"name": "member_id", "type": "text"}],
            },
        ],
    }


def compatibility(*top: dict[str, Any], member: tuple[dict[str, Any], ...] = ()) -> list[Any]:
    raw = base()
    raw["fields"] += list(top)
    raw["fields"][1]["fields"] += list(member)
    return [(i.path, i.code) for i in check_register_compatibility(load_definition(raw))]


def test_bounds_wider_than_the_register_column_are_incompatible() -> None:
    assert sorted(
        compatibility(
            {"name": "n", "type": "text", "max_length": 65, "bind": "hh.household_no"},
            {"name": "a", "type": "text", "max_length": 255, "bind": "hh.address"},
            {"name": "i", "type": "decimal", "max": 10**12, "bind": "hh.annual_income"},
            {"name": "e", "type": "decimal", "min": -(10**12), "bind": "hh.rigid_expenditure"},
            member=({"name": "p", "type": "text", "max_length": 33, "bind": "m.phone"},),
        )
    ) == [
        ("fields[1].fields[1].bind", IssueCode.INCOMPATIBLE_TYPE),
        ("fields[2].bind", IssueCode.INCOMPATIBLE_TYPE),
        ("fields[4].bind", IssueCode.INCOMPATIBLE_TYPE),
        ("fields[5].bind", IssueCode.INCOMPATIBLE_TYPE),
    ]


def test_matching_bindings_are_compatible() -> None:
    assert (
        compatibility(
            {"name": "a", "type": "text", "bind": "hh.address"},
            {"name": "i", "type": "integer", "bind": "hh.annual_income"},
            {"name": "d", "type": "boolean", "bind": "hh.deleted"},
            member=(
                {"name": "b", "type": "date", "bind": "m.birth_date"},
                {
                    "name": "s",
                    "type": "select_one",
                    "choices": [{"code": "male", "label": "男"}],
                    "bind": "m.sex",
                },
            ),
        )
        == []
    )


def test_unknown_register_fields_are_reported() -> None:
    assert compatibility({"name": "x", "type": "text", "bind": "hh.colour"}) == [
        ("fields[2].bind", IssueCode.UNKNOWN_REGISTER_FIELD)
    ]


def test_server_owned_fields_cannot_be_bound() -> None:
    assert compatibility(
        {
            "name": "s",
            "type": "select_one",
            "choices": "register.monitoring_status",
            "bind": "hh.monitoring_status",
        },
        {
            "name": "r",
            "type": "select_multiple",
            "choices": "register.risk_cause",
            "bind": "hh.risk_causes",
        },
    ) == [
        ("fields[2].bind", IssueCode.FIELD_READ_ONLY),
        ("fields[3].bind", IssueCode.FIELD_READ_ONLY),
    ]


def test_a_members_household_id_comes_from_its_parent_and_cannot_be_bound() -> None:
    assert compatibility(member=({"name": "h", "type": "text", "bind": "m.household_id"},)) == [
        ("fields[1].fields[1].bind", IssueCode.FIELD_READ_ONLY)
    ]


def test_types_must_fit_the_register_kind() -> None:
    assert compatibility(
        {"name": "a", "type": "decimal", "bind": "hh.address"},
        {"name": "d", "type": "text", "bind": "hh.deleted"},
        {"name": "g", "type": "geopoint", "bind": "hh.household_no"},
        {"name": "c", "type": "calculated", "calculation": "1", "bind": "hh.helper"},
    ) == [
        ("fields[2].bind", IssueCode.INCOMPATIBLE_TYPE),
        ("fields[3].bind", IssueCode.INCOMPATIBLE_TYPE),
        ("fields[4].bind", IssueCode.INCOMPATIBLE_TYPE),
        ("fields[5].bind", IssueCode.INCOMPATIBLE_TYPE),
    ]


def test_a_calculated_field_binds_through_its_value_type() -> None:
    assert (
        compatibility(
            {
                "name": "c",
                "type": "calculated",
                "calculation": "1 = 1",
                "value_type": "boolean",
                "bind": "hh.water_ok",
            }
        )
        == []
    )


def test_select_codes_must_be_codes_of_the_register_enumeration() -> None:
    assert compatibility(
        member=(
            {
                "name": "s",
                "type": "select_one",
                "choices": [{"code": "male", "label": "男"}, {"code": "unknown", "label": "不详"}],
                "bind": "m.sex",
            },
        )
    ) == [("fields[1].fields[1].bind", IssueCode.INVALID_CHOICE)]


def test_diff_reports_added_removed_and_changed_fields_by_path() -> None:
    old = base()
    old["fields"] += [
        {"name": "income", "type": "decimal", "label": "收入"},
        {"name": "old_note", "type": "note", "label": "旧"},
    ]
    old["fields"][1]["fields"].append({"name": "name", "type": "text"})
    new = json.loads(json.dumps(old))
    new["title"] = "兼容（新）"
    new["fields"][2] = {"name": "income", "type": "integer", "label": "年收入", "min": 0}
    del new["fields"][3]
    new["fields"][1]["fields"][1]["bind"] = "m.name"
    new["fields"][1]["fields"].append({"name": "phone", "type": "text"})

    diff = diff_definitions(load_definition(old), load_definition(new))

    assert diff.to_dict() == {
        "added": ["members.phone"],
        "removed": ["old_note"],
        "changed": [
            {"path": "income", "aspects": ["label", "min", "type"]},
            {"path": "members.name", "aspects": ["bind"]},
        ],
        "form": ["title"],
    }


def test_diff_sees_choice_changes_through_named_lists_but_not_renames() -> None:
    old = base()
    old["choice_lists"] = {"water": [{"code": "tap", "label": "自来水"}]}
    old["fields"].append({"name": "w", "type": "select_one", "choices": "water"})
    renamed = json.loads(json.dumps(old))
    renamed["choice_lists"] = {"water_source": old["choice_lists"]["water"]}
    renamed["fields"][2]["choices"] = "water_source"
    relabelled = json.loads(json.dumps(old))
    relabelled["choice_lists"]["water"][0]["label"] = "自来水（集中供水）"

    assert diff_definitions(load_definition(old), load_definition(renamed)).is_empty
    assert diff_definitions(load_definition(old), load_definition(relabelled)).changed[
        0
    ].aspects == ("choices",)
