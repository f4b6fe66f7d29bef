"""Specification of submission validation: every type, limit, choice, constraint, relevance and
repeat rule, reported with `data.…` paths and stable codes, all at once."""

from __future__ import annotations

from datetime import date
from typing import Any

from forms.definition import FormDefinition
from forms.definition_schema import load_definition
from forms.issues import IssueCode
from forms.validation import validate_submission

TODAY = date(2024, 11, 20)
HH = "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01"
M1 = "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d01"
M2 = "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d02"
M3 = "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d03"
PHOTO = {"attachment": "sha256:" + "ab" * 32, "filename": "house.jpg", "content_type": "image/jpeg"}


def visit_form() -> FormDefinition:
    return load_definition(
        {
            "form_id": "test_visit",
            "title": "走访",
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
            "choice_lists": {
                "township": [{"code": "t1", "label": "甲乡"}, {"code": "t2", "label": "乙乡"}],
                "village": [
                    {"code": "v11", "label": "一村", "attributes": {"township": "t1"}},
                    {"code": "v21", "label": "二村", "attributes": {"township": "t2"}},
                ],
            },
            "fields": [
                {"name": "household_id", "type": "text"},
                {"name": "note", "type": "note", "label": "说明"},
                {"name": "visit_date", "type": "date", "required": True, "max": "2030-12-31"},
                {"name": "visited_at", "type": "datetime"},
                {"name": "size", "type": "integer", "required": True, "min": 1, "max": 30},
                {"name": "income", "type": "decimal", "min": 0},
                {"name": "phone", "type": "text", "pattern": "^1[3-9][0-9]{9}$"},
                {"name": "remark", "type": "text", "min_length": 2, "max_length": 10},
                {"name": "township", "type": "select_one", "choices": "township"},
                {
                    "name": "village",
                    "type": "select_one",
                    "choices": "village",
                    "choice_filter": "township = ${township}",
                },
                {"name": "risks", "type": "select_multiple", "choices": "register.risk_cause"},
                {
                    "name": "risk_detail",
                    "type": "text",
                    "required": True,
                    "relevant": "count-selected(${risks}) > 0",
                },
                {
                    "name": "ok",
                    "type": "boolean",
                    "constraint": ". = true()",
                    "constraint_message": {"zh": "必须确认", "en": "Must be confirmed"},
                },
                {"name": "photo", "type": "attachment"},
                {"name": "where", "type": "geopoint"},
                {
                    "name": "per_capita",
                    "type": "calculated",
                    "calculation": "${income} div ${size}",
                    "value_type": "decimal",
                },
                {
                    "name": "members",
                    "type": "repeat",
                    "min_count": 1,
                    "max_count": 3,
                    "fields": [
                        {"name": "member_id", "type": "text"},
                        {"name": "name", "type": "text", "required": True},
                        {"name": "birth_date", "type": "date", "required": True},
                        {
                            "name": "school",
                            "type": "boolean",
                            "required": True,
                            "relevant": "age(${birth_date}) >= 6 and age(${birth_date}) <= 15",
                        },
                        {
                            "name": "away",
                            "type": "boolean",
                            "relevant": "${size} > 1",
                        },
                    ],
                },
            ],
        }
    )


def answers(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "household_id": HH,
        "visit_date": "2024-11-18",
        "size": 3,
        "members": [
            {"member_id": M1, "name": "黄志强", "birth_date": "1978-03-12"},
            {"member_id": M2, "name": "覃美兰", "birth_date": "1980-05-21"},
            {"member_id": M3, "name": "黄小雨", "birth_date": "2012-09-15", "school": True},
        ],
    }
    data.update(overrides)
    return data


def issues(data: object, **kwargs: Any) -> list[tuple[str, IssueCode]]:
    found = validate_submission(visit_form(), data, today=TODAY, **kwargs)
    return [(issue.path, issue.code) for issue in found]


def test_a_complete_valid_submission_has_no_issues() -> None:
    data = answers(
        visited_at="2024-11-18T09:30:00+08:00",
        income=19800.5,
        phone="13907711234",
        remark="正常",
        township="t1",
        village="v11",
        risks=["illness"],
        risk_detail="户主患病",
        ok=True,
        photo=PHOTO,
        where={"latitude": 22.8, "longitude": 108.3, "accuracy": 5},
    )

    assert issues(data) == []


def test_answers_must_be_an_object() -> None:
    assert issues(["x"]) == [("data", IssueCode.INVALID_TYPE)]


def test_a_missing_required_answer_is_reported() -> None:
    data = answers()
    del data["visit_date"]

    assert issues(data) == [("data.visit_date", IssueCode.REQUIRED)]


def test_null_and_empty_string_count_as_unanswered() -> None:
    assert issues(answers(visit_date=None)) == [("data.visit_date", IssueCode.REQUIRED)]
    assert issues(answers(visit_date="")) == [("data.visit_date", IssueCode.REQUIRED)]


def test_required_field_missing_inside_repeat_is_reported_with_its_index() -> None:
    data = answers()
    del data["members"][2]["name"]

    assert issues(data) == [("data.members[2].name", IssueCode.REQUIRED)]


def test_invalid_birth_date_in_a_repeat_is_invalid_date_at_its_path() -> None:
    data = answers()
    data["members"][2]["birth_date"] = "2012-02-30"

    assert issues(data) == [("data.members[2].birth_date", IssueCode.INVALID_DATE)]


def test_datetimes_need_an_offset() -> None:
    assert issues(answers(visited_at="2024-11-18T09:30:00")) == [
        ("data.visited_at", IssueCode.INVALID_DATETIME)
    ]
    assert issues(answers(visited_at="2024-11-18T01:30:00.123456789Z")) == []


def test_integers_reject_fractions_booleans_and_strings_but_accept_whole_floats() -> None:
    assert issues(answers(size=2.5)) == [("data.size", IssueCode.INVALID_TYPE)]
    assert issues(answers(size=True)) == [("data.size", IssueCode.INVALID_TYPE)]
    assert issues(answers(size="3")) == [("data.size", IssueCode.INVALID_TYPE)]
    assert issues(answers(size=3.0)) == []


def test_decimals_accept_numbers_only() -> None:
    assert issues(answers(income=12)) == []
    assert issues(answers(income="12.5")) == [("data.income", IssueCode.INVALID_TYPE)]
    assert issues(answers(income=False)) == [("data.income", IssueCode.INVALID_TYPE)]
    assert issues(answers(income=float("nan"))) == [("data.income", IssueCode.INVALID_TYPE)]


def test_booleans_must_be_json_booleans() -> None:
    assert issues(answers(ok="true")) == [("data.ok", IssueCode.INVALID_TYPE)]
    assert issues(answers(ok=1)) == [("data.ok", IssueCode.INVALID_TYPE)]


def test_numeric_and_date_limits() -> None:
    assert issues(answers(size=0)) == [("data.size", IssueCode.BELOW_MIN)]
    assert issues(answers(size=31)) == [("data.size", IssueCode.ABOVE_MAX)]
    assert issues(answers(income=-0.01)) == [("data.income", IssueCode.BELOW_MIN)]
    assert issues(answers(visit_date="2031-01-01")) == [("data.visit_date", IssueCode.ABOVE_MAX)]


def test_text_length_and_pattern() -> None:
    assert issues(answers(remark="短")) == [("data.remark", IssueCode.TOO_SHORT)]
    assert issues(answers(remark="很" * 11)) == [("data.remark", IssueCode.TOO_LONG)]
    assert issues(answers(phone="1390771123")) == [("data.phone", IssueCode.PATTERN_MISMATCH)]
    assert issues(answers(phone=13907711234)) == [("data.phone", IssueCode.INVALID_TYPE)]


def test_choices_must_be_codes_of_the_list() -> None:
    assert issues(answers(township="t9")) == [("data.township", IssueCode.INVALID_CHOICE)]
    assert issues(answers(risks=["illness", "meteor"], risk_detail="x")) == [
        ("data.risks", IssueCode.INVALID_CHOICE)
    ]
    assert issues(answers(risks=["illness", "illness"], risk_detail="x")) == [
        ("data.risks", IssueCode.INVALID_CHOICE)
    ]
    assert issues(answers(risks="illness")) == [("data.risks", IssueCode.INVALID_TYPE)]


def test_a_choice_filtered_out_by_the_cascading_filter_is_invalid() -> None:
    assert issues(answers(township="t1", village="v11")) == []
    assert issues(answers(township="t1", village="v21")) == [
        ("data.village", IssueCode.INVALID_CHOICE)
    ]


def test_constraints_use_the_current_value_and_report_the_bilingual_message() -> None:
    found = validate_submission(visit_form(), answers(ok=False), today=TODAY)

    assert [(i.path, i.code) for i in found] == [("data.ok", IssueCode.CONSTRAINT_FAILED)]
    assert found[0].message == "必须确认 / Must be confirmed"


def test_a_relevant_required_field_is_required_only_when_relevant() -> None:
    assert issues(answers(risks=["illness"])) == [("data.risk_detail", IssueCode.REQUIRED)]
    assert issues(answers(risks=[])) == []


def test_relevance_inside_a_repeat_uses_that_instance_and_age_at_today() -> None:
    data = answers()
    del data["members"][2]["school"]

    assert issues(data) == [("data.members[2].school", IssueCode.REQUIRED)]
    assert validate_submission(visit_form(), data, today=date(2040, 1, 1)) == []


def test_a_repeat_field_can_read_a_top_level_field() -> None:
    data = answers(size=1)
    data["members"] = data["members"][:1]
    data["members"][0]["away"] = "not a boolean"

    assert issues(data) == []
    assert issues(answers(members=[{**data["members"][0]}], size=2)) == [
        ("data.members[0].away", IssueCode.INVALID_TYPE)
    ]


def test_answers_to_non_relevant_fields_are_ignored_unless_strict() -> None:
    data = answers(risk_detail="不该填写")

    assert issues(data) == []
    assert issues(data, strict_relevance=True) == [("data.risk_detail", IssueCode.NOT_RELEVANT)]


def test_unknown_fields_are_reported_at_every_level() -> None:
    data = answers(colour="red")
    data["members"][0]["nickname"] = "阿强"

    assert issues(data) == [
        ("data.colour", IssueCode.UNKNOWN_FIELD),
        ("data.members[0].nickname", IssueCode.UNKNOWN_FIELD),
    ]


def test_calculated_and_note_values_sent_by_the_tablet_are_ignored() -> None:
    assert issues(answers(per_capita="whatever", note="x")) == []


def test_repeat_counts_are_enforced() -> None:
    extra = {
        "member_id": "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d04",
        "name": "某",
        "birth_date": "2000-01-01",
    }
    data = answers()
    data["members"].append(extra)

    assert issues(data) == [("data.members", IssueCode.TOO_MANY_REPEATS)]
    assert issues(answers(members=[])) == [("data.members", IssueCode.TOO_FEW_REPEATS)]
    assert issues(answers(members="none")) == [("data.members", IssueCode.INVALID_TYPE)]
    assert issues(answers(members=[*answers()["members"][:2], 5])) == [
        ("data.members[2]", IssueCode.INVALID_TYPE)
    ]


def test_entity_ids_must_be_uuids_and_are_implicitly_required() -> None:
    data = answers(household_id="HH-0037")
    data["members"][1]["member_id"] = "not-a-uuid"
    del data["members"][2]["member_id"]

    assert issues(data) == [
        ("data.household_id", IssueCode.INVALID_ID),
        ("data.members[1].member_id", IssueCode.INVALID_ID),
        ("data.members[2].member_id", IssueCode.REQUIRED),
    ]


def test_attachments_must_have_the_exact_reference_shape() -> None:
    assert issues(answers(photo={**PHOTO, "attachment": "md5:abc"})) == [
        ("data.photo", IssueCode.INVALID_ATTACHMENT)
    ]
    assert issues(answers(photo={**PHOTO, "filename": "../etc/passwd"})) == [
        ("data.photo", IssueCode.INVALID_ATTACHMENT)
    ]
    assert issues(answers(photo={**PHOTO, "extra": 1})) == [
        ("data.photo", IssueCode.INVALID_ATTACHMENT)
    ]
    assert issues(answers(photo="sha256:" + "ab" * 32)) == [
        ("data.photo", IssueCode.INVALID_ATTACHMENT)
    ]


def test_geopoints_need_coordinates_in_range() -> None:
    assert issues(answers(where={"latitude": 91, "longitude": 0})) == [
        ("data.where", IssueCode.INVALID_GEOPOINT)
    ]
    assert issues(answers(where="22.8 108.3")) == [("data.where", IssueCode.INVALID_GEOPOINT)]
    assert issues(answers(where={"latitude": 1, "longitude": 2, "accuracy": -1})) == [
        ("data.where", IssueCode.INVALID_GEOPOINT)
    ]


def test_all_problems_are_collected_in_one_pass() -> None:
    data = answers(size="three", income=-1, township="nowhere", colour="red")
    data["members"][0]["birth_date"] = "12/03/1978"

    assert {code for _, code in issues(data)} == {
        IssueCode.INVALID_TYPE,
        IssueCode.BELOW_MIN,
        IssueCode.INVALID_CHOICE,
        IssueCode.UNKNOWN_FIELD,
        IssueCode.INVALID_DATE,
    }


def test_issue_to_dict_is_the_protocol_error_detail_shape() -> None:
    (issue,) = validate_submission(visit_form(), answers(size=0), today=TODAY)

    assert issue.to_dict() == {
        "path": "data.size",
        "code": "below_min",
        "message": "must be at least 1",
    }
