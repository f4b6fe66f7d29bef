"""Specification of XLSForm import: realistic workbooks built here with openpyxl (no binary
fixtures), translated into drafts that load, and unsupported features located by cell."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import pytest
from openpyxl import Workbook

from forms.definition import FieldType
from forms.definition_schema import load_definition
from forms.validation import validate_submission
from forms.xlsform import ImportIssue, describe_non_workbook, import_xlsform

Rows = list[list[object]]


def workbook_bytes(sheets: dict[str, Rows]) -> bytes:
    """An .xlsx file with one sheet per entry, rows written from the first row down."""
    book = Workbook()
    default = book.active
    assert default is not None
    book.remove(default)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


LABELS = ["label::Chinese (zh)", "label::English (en)"]


def cascading_select_form() -> bytes:
    """A village screening form: township → village cascading selects, with a constraint."""
    return workbook_bytes(
        {
            "survey": [
                [
                    "type",
                    "name",
                    *LABELS,
                    "required",
                    "choice_filter",
                    "constraint",
                    "constraint_message::Chinese (zh)",
                    "constraint_message::English (en)",
                    "bind::fieldsync",
                    "appearance",
                ],
                [
                    "text",
                    "household_id",
                    "农户编号",
                    "Household id",
                    "yes",
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                ],
                [
                    "select_one townships",
                    "township",
                    "乡镇",
                    "Township",
                    "yes",
                    None,
                    None,
                    None,
                    None,
                    None,
                    "minimal",
                ],
                [
                    "select_one villages",
                    "village",
                    "村",
                    "Village",
                    "yes",
                    "township=${township}",
                    None,
                    None,
                    None,
                    None,
                    "minimal",
                ],
                [
                    "text",
                    "village_code",
                    "村代码",
                    "Village code",
                    "yes",
                    None,
                    "regex(., '^[0-9]{12}$')",
                    "须为12位数字",
                    "Twelve digits",
                    "hh.village_code",
                    None,
                ],
                [
                    "integer",
                    "household_size",
                    "家庭人口",
                    "Household size",
                    "yes",
                    None,
                    ". > 0 and . < 30",
                    None,
                    None,
                    None,
                    None,
                ],
            ],
            "choices": [
                ["list_name", "name", *LABELS, "township"],
                ["townships", "t101", "城关镇", "Chengguan", None],
                ["townships", "t102", "石山乡", "Shishan", None],
                ["villages", "v10101", "东门村", "Dongmen", "t101"],
                ["villages", "v10102", "西门村", "Ximen", "t101"],
                ["villages", "v10201", "那坡村", "Napo", "t102"],
            ],
            "settings": [
                ["form_id", "form_title", "version"],
                ["village_screening", "村级排查", "3"],
            ],
            "entities": [
                ["name", "type", "id_field", "create"],
                ["hh", "household", "household_id", "yes"],
            ],
        }
    )


def member_repeat_form() -> bytes:
    """A household register with a repeat of members, groups and age-based relevance."""
    return workbook_bytes(
        {
            "survey": [
                ["type", "name", *LABELS, "required", "relevant", "calculation", "bind::fieldsync"],
                ["text", "household_id", "农户编号", "Household id", "yes", None, None, None],
                ["begin_group", "location", "位置", "Location", None, None, None, None],
                ["text", "address", "住址", "Address", None, None, None, "hh.address"],
                ["end_group", None, None, None, None, None, None, None],
                [],
                ["begin_repeat", "members", "家庭成员", "Members", None, None, None, None],
                ["text", "member_id", "成员编号", "Member id", "yes", None, None, None],
                ["text", "name", "姓名", "Name", "yes", None, None, "m.name"],
                ["select_one sex", "sex", "性别", "Sex", "yes", None, None, "m.sex"],
                ["date", "birth_date", "出生日期", "Birth date", "yes", None, None, "m.birth_date"],
                ["calculate", "age", None, None, None, None, "age(${birth_date})", None],
                ["begin_group", "schooling", "就学", "Schooling", None, "${age} >= 6", None, None],
                [
                    "boolean",
                    "in_school",
                    "是否在校",
                    "In school?",
                    "yes",
                    "${age} <= 15",
                    None,
                    "m.in_school",
                ],
                ["end_group", None, None, None, None, None, None, None],
                ["boolean", "insured", "是否参保", "Insured?", "yes", None, None, "m.insured"],
                ["end_repeat", None, None, None, None, None, None, None],
                ["calculate", "member_count", None, None, None, None, "count(${members})", None],
            ],
            "choices": [
                ["list_name", "name", *LABELS],
                ["sex", "male", "男", "Male"],
                ["sex", "female", "女", "Female"],
            ],
            "settings": [["form_id", "form_title"], ["member_register", "成员登记"]],
            "entities": [
                ["name", "type", "id_field", "create", "repeat", "parent"],
                ["hh", "household", "household_id", "no", None, None],
                ["m", "member", "member_id", "yes", "members", "hh"],
            ],
        }
    )


def unsupported_features_form() -> bytes:
    """A form using features fieldsync cannot import, each in a known cell."""
    return workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "required", "repeat_count", "default", "media::image"],
                ["text", "household_id", "Household id", "yes", None, None, None],  # row 2
                [
                    "select_one_from_file villages.csv",
                    "village",
                    "Village",
                    None,
                    None,
                    None,
                    None,
                ],  # row 3
                ["range", "satisfaction", "Satisfaction", None, None, None, None],  # row 4
                ["begin_repeat", "members", "Members", None, "3", None, None],  # row 5
                ["text", "name", "Name", None, None, "张三", None],  # row 6
                ["end_repeat", None, None, None, None, None, None],  # row 7
                ["audio", "interview", "Interview", None, None, None, None],  # row 8
                ["barcode", "card", "Card", None, None, None, None],  # row 9
                ["start", "started", None, None, None, None, None],  # row 10
                ["note", "photo_note", "Look", None, None, None, "house.jpg"],  # row 11
            ],
            "settings": [["form_id", "form_title"], ["legacy_survey", "Legacy survey"]],
        }
    )


def blocking(issues: list[ImportIssue]) -> list[tuple[str, int | None, str | None]]:
    return [(i.sheet, i.row, i.column) for i in issues if i.blocking]


def test_cascading_selects_import_with_their_choice_filter_and_choice_columns() -> None:
    result = import_xlsform(cascading_select_form())

    assert result.definition is not None, result.issues
    assert [i for i in result.issues if i.blocking] == []
    definition = load_definition(result.definition)
    village = definition.find_field(("village",))
    assert village is not None and village.choice_filter is not None
    assert village.choice_filter.source == "township=${township}"
    assert [c.attributes["township"] for c in definition.choice_lists["villages"]] == [
        "t101",
        "t101",
        "t102",
    ]
    assert definition.form_id == "village_screening"
    assert definition.version == 3
    assert definition.title.zh == "村级排查"
    code = definition.find_field(("village_code",))
    assert code is not None and code.bind == "hh.village_code"
    assert code.constraint_message is not None and code.constraint_message.en == "Twelve digits"


def test_an_imported_cascading_select_validates_answers_through_the_filter() -> None:
    result = import_xlsform(cascading_select_form())
    assert result.definition is not None
    definition = load_definition(result.definition)
    answers = {
        "household_id": "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01",
        "township": "t102",
        "village": "v10101",
        "village_code": "452802101001",
        "household_size": 4,
    }

    found = validate_submission(definition, answers, today=date(2024, 11, 20))

    assert [(i.path, i.code.value) for i in found] == [("data.village", "invalid_choice")]


def test_a_member_repeat_with_groups_imports_with_nested_fields_and_combined_relevance() -> None:
    result = import_xlsform(member_repeat_form())

    assert result.definition is not None, result.issues
    definition = load_definition(result.definition)
    members = definition.find_field(("members",))
    assert members is not None and members.type is FieldType.REPEAT
    assert [f.name for f in members.fields] == [
        "member_id",
        "name",
        "sex",
        "birth_date",
        "age",
        "in_school",
        "insured",
    ]
    in_school = definition.find_field(("members", "in_school"))
    assert in_school is not None and in_school.relevant is not None
    assert in_school.relevant.source == "(${age} >= 6) and (${age} <= 15)"
    assert in_school.type is FieldType.BOOLEAN and in_school.bind == "m.in_school"
    assert [e.name for e in definition.entities] == ["hh", "m"]
    assert definition.entities[1].repeat == "members"
    assert definition.entities[0].create is False
    assert definition.find_field(("address",)) is not None  # the group was flattened


def test_an_imported_member_repeat_applies_age_relevance_per_instance() -> None:
    result = import_xlsform(member_repeat_form())
    assert result.definition is not None
    definition = load_definition(result.definition)
    child = {
        "member_id": "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d03",
        "name": "黄小雨",
        "sex": "female",
        "birth_date": "2012-09-15",
        "insured": True,
    }
    adult = {
        **child,
        "member_id": "a3e5c7d9-1b2f-4a6c-8e0d-3f5a7b9c1d01",
        "birth_date": "1978-03-12",
        "sex": "male",
    }
    answers = {"household_id": "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01", "members": [adult, child]}

    found = validate_submission(definition, answers, today=date(2024, 11, 20))

    assert [(i.path, i.code.value) for i in found] == [("data.members[1].in_school", "required")]


def test_constructs_fieldsync_lacks_are_dropped_with_a_warning_at_their_cell() -> None:
    result = import_xlsform(unsupported_features_form())

    assert result.definition is not None, result.issues
    assert blocking(result.issues) == []
    warnings = {(i.sheet, i.row, i.column): i for i in result.issues}
    # choices from a file that was not uploaded, start metadata: dropped at their type cell
    for row in (3, 10):
        issue = warnings[("survey", row, "type")]
        assert issue.cell == f"A{row}"
        assert "dropped" in issue.message
    assert "villages.csv" in warnings[("survey", 3, "type")].message
    fields = {f["name"]: f for f in result.definition["fields"]}
    # what the form language holds is mapped, without a warning at its type cell: a repeat
    # count (jr:count) is the repeat's count, audio an audio attachment, barcode a barcode
    assert fields["members"]["count"] == "3"
    assert "min_count" not in fields["members"]
    assert (fields["interview"]["type"], fields["interview"]["media"]) == ("attachment", "audio")
    assert fields["card"]["type"] == "barcode"
    for row in (4, 5, 8, 9):
        assert ("survey", row, "type") not in warnings
    assert ("survey", 5, "repeat_count") not in warnings
    # range: a number between pyxform's default bounds, with its step
    satisfaction = fields["satisfaction"]
    assert {k: satisfaction.get(k) for k in ("type", "min", "max", "step", "constraint")} == {
        "type": "integer",
        "min": 1,
        "max": 10,
        "step": 1,
        "constraint": None,
    }
    dropped = {(i.row, i.column) for i in result.issues if not i.blocking}
    assert (1, "default") in dropped
    assert (1, "media::image") in dropped
    names = [f["name"] for f in result.definition["fields"]]
    assert "village" not in names and "started" not in names


def test_expressions_fieldsync_lacks_are_dropped_with_a_warning_at_their_cell() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "relevant"],
                ["text", "a", "A", None],
                ["text", "b", "B", "jr:choice-name(${a}, 'a') = 'x'"],
                ["text", "c", "C", "${b} != ''"],
            ],
            "settings": [["form_id"], ["expr_test"]],
        }
    )

    result = import_xlsform(content)

    assert result.definition is not None
    assert blocking(result.issues) == []
    (issue,) = [i for i in result.issues if i.row == 3]
    assert (issue.sheet, issue.column, issue.cell) == ("survey", "relevant", "D3")
    assert "relevant dropped" in issue.message and "character 2" in issue.message
    assert "jr:choice-name" in issue.message  # the cell's value is quoted
    b, c = result.definition["fields"][1:]
    assert "relevant" not in b
    assert c["relevant"] == "${b} != ''"


def test_definition_problems_are_mapped_back_to_the_row_and_column() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "bind::fieldsync"],
                ["text", "household_id", "Id", None],
                ["text", "status", "Status", "hh.monitoring_status"],
                ["text", "where", "Where", "nobody.address"],
            ],
            "settings": [["form_id", "form_title"], ["bad_bindings", "Bad"]],
            "entities": [
                ["name", "type", "id_field", "create"],
                ["hh", "household", "household_id", "yes"],
            ],
        }
    )

    result = import_xlsform(content)

    assert result.definition is None
    assert blocking(result.issues) == [("survey", 4, "bind::fieldsync")]
    assert result.issues[0].cell == "D4"


def test_register_incompatibilities_block_the_import_at_their_cell() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "bind::fieldsync"],
                ["text", "household_id", "Id", None],
                ["text", "status", "Status", "hh.monitoring_status"],
            ],
            "settings": [["form_id", "form_title"], ["bad_bindings", "Bad"]],
            "entities": [
                ["name", "type", "id_field", "create"],
                ["hh", "household", "household_id", "yes"],
            ],
        }
    )

    result = import_xlsform(content)

    assert result.definition is None
    assert blocking(result.issues) == [("survey", 3, "bind::fieldsync")]
    assert "review workflow" in result.issues[0].message


def test_a_missing_form_id_blocks_the_import() -> None:
    content = workbook_bytes(
        {
            "survey": [["type", "name", "label"], ["text", "a", "A"]],
            "settings": [["form_title"], ["T"]],
        }
    )

    result = import_xlsform(content)

    assert result.definition is None
    assert ("settings", 2, "form_id") in blocking(result.issues)


def test_bytes_that_are_not_a_workbook_give_an_issue_not_an_exception() -> None:
    result = import_xlsform(b"\x00\x01 definitely not a spreadsheet")

    assert result.definition is None
    assert result.issues and all(i.blocking for i in result.issues)


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


NOT_WORKBOOKS = {
    "empty": (b"", "an empty file"),
    "csv": ("type,name,label\ntext,village,村\n".encode(), "CSV text"),
    "csv-gbk": ("type,name,label\ntext,village,村名\n".encode("gbk"), "CSV text"),
    "tsv": (b"type\tname\tlabel\n", "tab-separated text"),
    "text": (b"this is not a workbook", "text"),
    "binary": (b"\x00\x01 definitely not a spreadsheet", "a file that is not a spreadsheet"),
    "zip": (zip_bytes({"readme.txt": "hello"}), "a ZIP archive that is not an Excel workbook"),
    "docx": (zip_bytes({"word/document.xml": "<w/>"}), "a Word document (.docx)"),
    "damaged-zip": (b"PK\x03\x04" + b"\x00" * 40, "a damaged ZIP archive"),
    "ole-not-excel": (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
        "an old Office file that is not an Excel workbook",
    ),
}


@pytest.mark.parametrize("name", list(NOT_WORKBOOKS))
def test_what_is_not_an_xlsx_workbook_is_named_for_what_it_is(name: str) -> None:
    content, described = NOT_WORKBOOKS[name]
    assert describe_non_workbook(content) == described
    result = import_xlsform(content)
    assert result.definition is None
    assert [issue.message for issue in result.issues] == [
        f"{described}, not an XLSForm saved as an Excel workbook (.xlsx or .xls)"
    ]


def test_an_xlsx_workbook_is_recognised_even_without_a_survey_sheet() -> None:
    assert describe_non_workbook(member_repeat_form()) is None
    assert describe_non_workbook(workbook_bytes({"other": [["a"]]})) is None


def test_odk_entities_sheets_are_ignored_with_a_warning() -> None:
    content = workbook_bytes(
        {
            "survey": [["type", "name", "label"], ["text", "a", "A"]],
            "settings": [["form_id"], ["odk_entities"]],
            "entities": [["list_name", "label"], ["households", "${a}"]],
        }
    )

    result = import_xlsform(content)

    assert result.definition is not None
    assert result.definition.get("entities", []) == []
    (issue,) = [i for i in result.issues if i.sheet == "entities"]
    assert not issue.blocking and "ODK entities sheet ignored" in issue.message
