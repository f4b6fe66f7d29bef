"""Specification of the binding step: which register writes a valid submission asks for."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from forms.bindings import BindingError, EntityUpdate, derive_register_updates
from forms.definition import FormDefinition
from forms.definition_schema import load_definition

HH = "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01"
M1 = "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d01"
M2 = "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d02"
TODAY = date(2024, 11, 20)


def form() -> FormDefinition:
    return load_definition(
        {
            "form_id": "binding_test",
            "title": "绑定",
            "entities": [
                {"name": "hh", "type": "household", "id_field": "household_id", "create": False},
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
                {"name": "village_code", "type": "text", "bind": "hh.village_code"},
                {"name": "income", "type": "decimal", "bind": "hh.annual_income"},
                {"name": "size", "type": "integer"},
                {
                    "name": "per_capita",
                    "type": "calculated",
                    "value_type": "decimal",
                    "calculation": "${income} div ${size}",
                    "bind": "hh.per_capita_income",
                },
                {
                    "name": "risks",
                    "type": "select_multiple",
                    "choices": "register.risk_cause",
                    "bind": "hh.risk_causes",
                },
                {"name": "water_ok", "type": "boolean", "bind": "hh.water_ok"},
                {
                    "name": "helper",
                    "type": "text",
                    "relevant": "${water_ok} = false()",
                    "bind": "hh.helper",
                },
                {
                    "name": "members",
                    "type": "repeat",
                    "fields": [
                        {"name": "member_id", "type": "text"},
                        {"name": "name", "type": "text", "bind": "m.name"},
                        {"name": "birth_date", "type": "date", "bind": "m.birth_date"},
                        {
                            "name": "in_school",
                            "type": "boolean",
                            "relevant": "age(${birth_date}) <= 15",
                            "bind": "m.in_school",
                        },
                    ],
                },
            ],
        }
    )


def data(**overrides: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "household_id": HH,
        "village_code": "452802101001",
        "income": 19800.0,
        "size": 3,
        "risks": ["water", "illness"],
        "water_ok": True,
        "helper": "ignored: not relevant",
        "members": [
            {"member_id": M1, "name": "黄志强", "birth_date": "1978-03-12", "in_school": False},
            {"member_id": M2, "name": "黄小雨", "birth_date": "2012-09-15", "in_school": True},
        ],
    }
    answers.update(overrides)
    return answers


def test_updates_come_per_entity_in_declaration_and_answer_order() -> None:
    updates = derive_register_updates(form(), data(), today=TODAY)

    assert updates == [
        EntityUpdate(
            entity="hh",
            type="household",
            id=HH,
            create=False,
            parent=None,
            fields={
                "annual_income": 19800,
                "per_capita_income": 6600,
                "risk_causes": ["illness", "water"],
                "village_code": "452802101001",
                "water_ok": True,
            },
            path="data",
        ),
        EntityUpdate(
            entity="m",
            type="member",
            id=M1,
            create=True,
            parent=("household", HH),
            fields={"birth_date": "1978-03-12", "household_id": HH, "name": "黄志强"},
            path="data.members[0]",
        ),
        EntityUpdate(
            entity="m",
            type="member",
            id=M2,
            create=True,
            parent=("household", HH),
            fields={
                "birth_date": "2012-09-15",
                "household_id": HH,
                "in_school": True,
                "name": "黄小雨",
            },
            path="data.members[1]",
        ),
    ]


def test_unanswered_and_null_answers_write_nothing() -> None:
    (household, *_) = derive_register_updates(
        form(), data(village_code=None, income=None), today=TODAY
    )

    assert "village_code" not in household.fields
    assert "annual_income" not in household.fields
    assert "per_capita_income" not in household.fields  # income is null, so is the calculation


def test_an_empty_selection_writes_an_empty_list() -> None:
    (household, *_) = derive_register_updates(form(), data(risks=[]), today=TODAY)

    assert household.fields["risk_causes"] == []


def test_relevant_bound_fields_are_written_when_they_become_relevant() -> None:
    (household, *_) = derive_register_updates(
        form(), data(water_ok=False, helper="韦海燕"), today=TODAY
    )

    assert household.fields["helper"] == "韦海燕"
    assert household.fields["water_ok"] is False


def test_fractional_decimals_stay_floats_and_ids_are_normalised_to_lowercase() -> None:
    (household, *_) = derive_register_updates(
        form(), data(income=1000.5, household_id=HH.upper()), today=TODAY
    )

    assert household.id == HH
    assert household.fields["annual_income"] == 1000.5
    assert household.fields["per_capita_income"] == pytest.approx(333.5)


def test_a_form_without_members_only_updates_the_household() -> None:
    updates = derive_register_updates(form(), data(members=[]), today=TODAY)

    assert [u.type for u in updates] == ["household"]


def test_an_invalid_entity_id_is_a_binding_error() -> None:
    with pytest.raises(BindingError):
        derive_register_updates(form(), data(household_id="HH-1"), today=TODAY)


def test_binding_is_deterministic() -> None:
    first = [u.to_dict() for u in derive_register_updates(form(), data(), today=TODAY)]
    second = [u.to_dict() for u in derive_register_updates(form(), data(), today=TODAY)]

    assert first == second
    assert first[1]["parent"] == ["household", HH]
