"""Specification of the bundled forms: they load, fit the register, and their sample answers
validate and bind as the domain expects."""

from __future__ import annotations

import gc
import json
from datetime import UTC, date, datetime

import pytest

from forms.bindings import derive_register_updates
from forms.bundled import (
    BUNDLED_FORM_IDS,
    bundled_form_path,
    load_bundled_form,
    load_bundled_forms,
    load_sample_answers,
)
from forms.choice_lists import LIBRARY_FILE, library_choice_lists, register_choice_lists
from forms.compatibility import check_register_compatibility
from forms.definition_schema import load_definition
from forms.issues import IssueCode
from forms.submission import check_submission
from forms.validation import validate_submission

TODAY = date(2024, 11, 20)
HH = "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01"
M3 = "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d03"


def test_every_bundled_form_loads_round_trips_and_fits_the_register() -> None:
    forms = load_bundled_forms()

    assert sorted(forms) == sorted(BUNDLED_FORM_IDS)
    for form_id, definition in forms.items():
        assert definition.form_id == form_id
        assert check_register_compatibility(definition) == []
        assert load_definition(definition.to_dict()) == definition


def test_bundled_files_are_named_after_their_form_id() -> None:
    for form_id in BUNDLED_FORM_IDS:
        raw = json.loads(bundled_form_path(form_id).read_text(encoding="utf-8"))
        assert raw["form_id"] == form_id
    with pytest.raises(KeyError):
        bundled_form_path("../../etc/passwd")


def test_every_label_is_bilingual_and_chinese_comes_first() -> None:
    for definition in load_bundled_forms().values():
        for path, f in definition.iter_fields():
            if f.label is not None:
                assert f.label.zh != f.label.en, path
                assert any("\u4e00" <= c <= "\u9fff" for c in f.label.zh), path


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_sample_answers_validate_cleanly(form_id: str) -> None:
    definition = load_bundled_forms()[form_id]

    assert validate_submission(definition, load_sample_answers(form_id), today=TODAY) == []


def test_the_visit_sample_binds_the_expected_household_and_member_updates() -> None:
    definition = load_bundled_forms()["household_visit"]

    updates = derive_register_updates(
        definition, load_sample_answers("household_visit"), today=TODAY
    )

    household = updates[0]
    assert (household.type, household.id, household.create) == ("household", HH, False)
    assert household.fields == {
        "annual_income": 19800,
        "education_ok": True,
        "food_clothing_ok": True,
        "housing_ok": True,
        "medical_ok": True,
        "per_capita_income": 6600,
        "rigid_expenditure": 5800,
        "water_ok": False,
    }  # the risks seen go to a referral when the visit refers the household, never the register
    assert [u.path for u in updates[1:]] == [f"data.members[{i}]" for i in range(3)]
    child = updates[3]
    assert child.id == M3
    assert child.parent == ("household", HH)
    assert child.fields == {
        "health": "healthy",
        "household_id": HH,
        "in_school": True,
        "insured": True,
    }
    assert "in_school" not in updates[1].fields  # an adult is outside compulsory-school age


def test_a_visit_with_a_dropped_out_child_fails_the_education_guarantee() -> None:
    definition = load_bundled_forms()["household_visit"]
    answers = load_sample_answers("household_visit")
    child = answers["members"][2]  # type: ignore[index]
    child["school_status"] = "dropped_out"
    found = validate_submission(definition, answers, today=TODAY)
    assert [(i.path, i.code) for i in found] == [
        ("data.members[2].dropout_reason", IssueCode.REQUIRED)
    ]
    child["dropout_reason"] = "外出务工"

    household, *_, child_update = derive_register_updates(definition, answers, today=TODAY)

    assert household.fields["education_ok"] is False
    assert child_update.fields["in_school"] is False


def test_the_register_sample_creates_a_household_and_three_members() -> None:
    definition = load_bundled_forms()["household_register"]

    updates = derive_register_updates(
        definition, load_sample_answers("household_register"), today=TODAY
    )

    assert [(u.type, u.create) for u in updates] == [("household", True)] + [("member", True)] * 3
    assert updates[2].fields["disability"] == "grade_3"
    assert "disability" not in updates[1].fields  # only asked of disabled members
    assert updates[1].fields["id_number"] == "45280219780312001X"


def test_the_application_sample_never_writes_server_owned_fields() -> None:
    definition = load_bundled_forms()["monitoring_application"]

    (household,) = derive_register_updates(
        definition, load_sample_answers("monitoring_application"), today=TODAY
    )

    assert "monitoring_type" not in household.fields
    assert household.fields["per_capita_income"] == 5250
    # The causes claimed go to the referral; the county's approval writes the confirmed ones.
    assert "risk_causes" not in household.fields


def test_an_application_by_the_household_needs_its_signature() -> None:
    definition = load_bundled_forms()["monitoring_application"]
    answers = load_sample_answers("monitoring_application")
    del answers["applicant_signature"]

    assert [(i.path, i.code) for i in validate_submission(definition, answers, today=TODAY)] == [
        ("data.applicant_signature", IssueCode.REQUIRED)
    ]
    answers["channel"] = "cadre_screening"
    answers["cadre_name"] = "罗建国"
    del answers["applicant_id_number"]
    assert validate_submission(definition, answers, today=TODAY) == []


def test_shared_and_register_choice_lists_are_well_formed() -> None:
    library = library_choice_lists()
    register = register_choice_lists()

    assert json.loads(LIBRARY_FILE.read_text(encoding="utf-8"))
    assert "library.assistance_measure" in library
    assert "register.relation" in register and "register.education_level" in register
    for lists in (library, register):
        for name, choices in lists.items():
            codes = [c.code for c in choices]
            assert len(codes) == len(set(codes)), name


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_checking_in_one_pass_gives_what_validating_then_binding_gives(form_id: str) -> None:
    definition = load_bundled_forms()[form_id]
    answers = load_sample_answers(form_id)
    now = datetime(2024, 11, 20, 9, 30, tzinfo=UTC)

    checked = check_submission(definition, answers, today=TODAY, now=now)

    assert checked.issues == [] and checked.updates
    assert checked.updates == derive_register_updates(definition, answers, today=TODAY, now=now)
    broken = {**answers, "not_a_field": 1}
    refused = check_submission(definition, broken, today=TODAY, now=now)
    assert refused.updates == []
    assert refused.issues == validate_submission(definition, broken, today=TODAY, now=now)
    assert [issue.code for issue in refused.issues] == [IssueCode.UNKNOWN_FIELD]
    assert check_submission(definition, [], today=TODAY, now=now).issues[0].code == (
        IssueCode.INVALID_TYPE
    )


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_checking_a_submission_leaves_nothing_for_the_cyclic_collector(form_id: str) -> None:
    """A push checks a thousand submissions at once: everything a check works out must be freed
    by reference counting when it returns, not wait in memory for the cyclic collector."""
    definition = load_bundled_form(form_id)
    answers = load_sample_answers(form_id)
    now = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
    check_submission(definition, answers, today=TODAY, now=now)  # derives the definition's plan
    broken = {**answers, "unknown_answer": 1}
    gc.collect()
    gc.disable()
    try:
        valid = check_submission(definition, answers, today=TODAY, now=now)
        invalid = check_submission(definition, broken, today=TODAY, now=now)
        validate_submission(definition, answers, today=TODAY)
        derive_register_updates(definition, answers, today=TODAY)
        left_for_the_collector = gc.collect()
    finally:
        gc.enable()
    assert valid.updates and invalid.issues  # both paths ran
    assert left_for_the_collector == 0
