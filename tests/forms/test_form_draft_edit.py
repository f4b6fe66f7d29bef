"""The draft editor's edits (forms.draft_edit): pure, input never changed, other languages kept,
shared lists edited where they live, register lists never."""

from __future__ import annotations

from typing import Any

import pytest

from forms.definition_schema import load_definition
from forms.draft_edit import (
    ChoiceEdit,
    DraftEditError,
    FieldEdit,
    apply_field_edit,
    choices_of,
    find_question,
    has_editable_choices,
    iter_questions,
)


def draft() -> dict[str, Any]:
    return {
        "form_id": "f1",
        "title": {"zh": "表", "en": "Form"},
        "entities": [],
        "fields": [
            {
                "name": "q",
                "type": "select_one",
                "label": {"zh": "问", "en": "Q", "fr": "Question"},
                "required": True,
                "choices": [{"code": "a", "label": {"zh": "甲", "en": "A", "fr": "Á"}}],
            },
            {"name": "shared", "type": "select_one", "choices": "yesno"},
            {"name": "also", "type": "select_one", "choices": "yesno"},
            {"name": "lib", "type": "select_one", "choices": "library.yes_no"},
            {"name": "status", "type": "select_one", "choices": "register.monitoring_status"},
            {
                "name": "members",
                "type": "repeat",
                "fields": [{"name": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}}],
            },
        ],
        "choice_lists": {
            "yesno": [
                {"code": "yes", "label": {"zh": "是", "en": "Yes"}},
                {"code": "no", "label": {"zh": "否", "en": "No"}},
            ]
        },
    }


def test_labels_required_and_relevance_are_set_and_other_languages_kept():
    raw = draft()
    edit = FieldEdit(
        "问题",
        "Question",
        required_when="${x} > 1",
        relevant=" ${x} > 0 ",
        choices=(ChoiceEdit("b", "乙", "B", original="a"), ChoiceEdit("", "", "")),
    )
    edited = apply_field_edit(raw, "q", edit)
    assert raw == draft()  # the input is never changed
    question = edited["fields"][0]
    assert question["label"] == {"zh": "问题", "en": "Question", "fr": "Question"}
    assert question["required"] == "${x} > 1"
    assert question["relevant"] == "${x} > 0"
    assert question["choices"] == [{"code": "b", "label": {"zh": "乙", "en": "B", "fr": "Á"}}]
    plain = apply_field_edit(edited, "q", FieldEdit("问题", "Question"))["fields"][0]
    assert "required" not in plain and "relevant" not in plain
    assert plain["choices"] == question["choices"]  # choices None: left as they are


def test_a_shared_list_is_edited_in_the_draft_for_every_question_using_it():
    edit = FieldEdit(
        "共",
        "Shared",
        choices=(
            ChoiceEdit("yes", "是的", "Yes", original="yes"),
            ChoiceEdit("no", "否", "No", original="no", remove=True),
            ChoiceEdit("maybe", "也许", "Maybe"),
        ),
    )
    edited = apply_field_edit(draft(), "shared", edit)
    assert [c["code"] for c in edited["choice_lists"]["yesno"]] == ["yes", "maybe"]
    assert choices_of(edited, find_question(edited, "also")) == edited["choice_lists"]["yesno"]
    load_definition(edited)  # still a valid definition


def test_a_library_list_is_copied_into_the_draft_and_a_register_list_is_refused():
    raw = draft()
    lib = find_question(raw, "lib")
    current = choices_of(raw, lib)
    assert current and has_editable_choices(lib)
    rows = tuple(
        ChoiceEdit(c["code"], c["label"]["zh"] + "!", c["label"]["en"], original=c["code"])
        for c in current
    )
    edited = apply_field_edit(raw, "lib", FieldEdit("库", "Lib", choices=rows))
    assert [c["label"]["zh"] for c in edited["choice_lists"]["library.yes_no"]] == [
        c["label"]["zh"] + "!" for c in current
    ]
    status = find_question(raw, "status")
    assert not has_editable_choices(status)
    with pytest.raises(DraftEditError):
        apply_field_edit(raw, "status", FieldEdit("状态", "Status", choices=()))


def test_questions_are_found_by_path_inside_repeats_and_unknown_paths_refused():
    raw = draft()
    assert [path for path, _ in iter_questions(raw)][-2:] == ["members", "members.name"]
    edited = apply_field_edit(raw, "members.name", FieldEdit("成员姓名", "Member name"))
    assert edited["fields"][5]["fields"][0]["label"] == {"zh": "成员姓名", "en": "Member name"}
    with pytest.raises(DraftEditError):
        apply_field_edit(raw, "members.nothing", FieldEdit("", ""))
    assert list(iter_questions({"fields": [1, {"type": "text"}, None]})) == []
