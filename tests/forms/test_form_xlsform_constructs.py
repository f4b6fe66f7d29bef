"""XLSForm as people really write it (issue 13): each construct pyxform accepts either maps to a
fieldsync definition or is dropped with a warning located at its cell; bad input is a located
issue, never an exception. Workbooks are built here with openpyxl."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from openpyxl import Workbook

from forms.definition_schema import load_definition
from forms.validation import validate_submission
from forms.xlsform import ImportIssue, ImportResult, import_xlsform
from tests.forms.test_form_xlsform_import import workbook_bytes


def imported(result: ImportResult) -> dict[str, Any]:
    assert result.definition is not None, [i for i in result.issues if i.blocking]
    load_definition(result.definition)
    return result.definition


def field(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in definition["fields"] if f["name"] == name)


def warning_at(result: ImportResult, sheet: str, row: int | None, column: str) -> ImportIssue:
    found = [i for i in result.issues if (i.sheet, i.row, i.column) == (sheet, row, column)]
    assert found, result.issues
    assert not found[0].blocking
    return found[0]


def test_without_form_id_the_file_name_gives_the_id_and_title_as_in_pyxform() -> None:
    content = workbook_bytes({"survey": [["type", "name", "label"], ["text", "a", "A"]]})

    result = import_xlsform(content, filename="Household Energy Survey 2024.xlsx")

    definition = imported(result)
    assert definition["form_id"] == "household_energy_survey_2024"
    assert definition["title"] == "Household Energy Survey 2024"
    assert any("from the file name" in i.message for i in result.issues if not i.blocking)


def test_without_form_id_or_file_name_the_import_is_refused_at_the_settings() -> None:
    content = workbook_bytes({"survey": [["type", "name", "label"], ["text", "a", "A"]]})

    result = import_xlsform(content)

    assert result.definition is None
    assert [(i.sheet, i.column) for i in result.issues if i.blocking] == [("settings", "form_id")]


def test_spelled_out_selects_aliases_and_metadata() -> None:
    content = workbook_bytes(
        {
            "SURVEY": [
                ["type", "name", "label"],
                ["start", "start", None],
                ["imei", "imei", None],
                ["phone number", "phone", None],
                ["select one from yes_no", "owns_land", "Owns land"],
                ["select all that apply from crops", "crops", "Crops"],
                ["gps", "where", "Where"],
                ["get today", "today", None],
            ],
            "CHOICES": [
                ["list_name", "name", "label"],
                ["yes_no", "yes", "Yes"],
                ["yes_no", "no", "No"],
                ["crops", "maize", "Maize"],
                ["crops", "rice", "Rice"],
            ],
            "Settings": [["form_id"], ["aliases"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    assert [(f["name"], f["type"]) for f in definition["fields"]] == [
        ("phone", "text"),  # pyxform's `phone number` is typed in (`phonenumber` is metadata)
        ("owns_land", "select_one"),
        ("crops", "select_multiple"),
        ("where", "geopoint"),
    ]
    for row in (2, 3, 8):
        issue = warning_at(result, "survey", row, "type")
        assert "metadata" in issue.message and issue.cell == f"A{row}"
    assert not [i for i in result.issues if i.row == 4]


def test_input_types_with_pyxforms_own_check_keep_it_unless_the_row_has_a_constraint() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "constraint", "hint"],
                ["phone number", "mobile", "Mobile", None, None],
                ["phone number", "landline", "Landline", "string-length(.) = 8", "8 digits"],
                ["phonenumber", "sim_phone", None, None, None],
                ["percentage", "share", "Share of income", None, None],
                ["number of days in last month", "days_away", "Days away", None, None],
                ["number of days in last year", "days_ill", "Days ill", ". <= 100", None],
                ["uri:deviceid", "device", None, None, None],
            ],
            "settings": [["form_id"], ["labour_days"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    mobile, landline, share, days_away, days_ill = definition["fields"]
    assert (mobile["type"], mobile["pattern"], mobile["hint"]["en"]) == (
        "text",
        "[0-9]*",
        "Enter numbers only.",
    )
    assert "pattern" not in landline and landline["constraint"] == "string-length(.) = 8"
    assert landline["hint"]["en"] == "8 digits"
    assert (share["type"], share["min"], share["max"]) == ("integer", 0, 100)
    assert (days_away["min"], days_away["max"]) == (0, 31)
    assert "max" not in days_ill and days_ill["constraint"] == ". <= 100"
    for row in (4, 8):
        assert "metadata" in warning_at(result, "survey", row, "type").message
    form = load_definition(definition)
    assert validate_submission(form, {"mobile": "0831", "share": 100, "days_away": 31}) == []
    problems = validate_submission(form, {"mobile": "083-1", "share": 101, "days_away": 32})
    assert sorted(i.path.rsplit(".", 1)[-1] for i in problems) == ["days_away", "mobile", "share"]


def test_a_select_type_without_its_list_is_dropped_saying_so() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["select one", "tenure", "Tenure"],
                ["text", "village", "Village"],
            ],
            "settings": [["form_id"], ["tenure_check"]],
        }
    )

    result = import_xlsform(content)

    assert [f["name"] for f in imported(result)["fields"]] == ["village"]
    assert "select_one LIST" in warning_at(result, "survey", 2, "type").message


def or_other_form() -> bytes:
    return workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["select_one fuel or_other", "fuel", "Cooking fuel"],
            ],
            "choices": [
                ["list_name", "name", "label"],
                ["fuel", "gas", "Gas"],
                ["fuel", "wood", "Wood"],
            ],
            "settings": [["form_id"], ["fuel_use"]],
        }
    )


def test_or_other_adds_an_other_choice_and_a_text_question_as_pyxform_does() -> None:
    result = import_xlsform(or_other_form())

    definition = imported(result)
    assert [c["code"] for c in definition["choice_lists"]["fuel"]] == ["gas", "wood", "other"]
    other = field(definition, "fuel_other")
    assert other["type"] == "text"
    assert other["relevant"] == "selected(${fuel}, 'other')"
    warning_at(result, "survey", 2, "type")


def test_answers_to_an_or_other_form_validate() -> None:
    definition = load_definition(imported(import_xlsform(or_other_form())))

    assert validate_submission(definition, {"fuel": "other", "fuel_other": "dung"}) == []
    issues = validate_submission(definition, {"fuel": "coal"})
    assert [(i.path, i.code.value) for i in issues] == [("data.fuel", "invalid_choice")]


def test_languages_single_colon_columns_and_choice_attributes() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label:English", "label::Swahili (sw)", "label::French"],
                ["select_one district", "district", "District", "Wilaya", "District (fr)"],
            ],
            "choices": [
                ["list_name", "name", "label:English", "label::Swahili (sw)", "region", "pop."],
                ["district", "d1", "North", "Kaskazini", "r1", "1200"],
                ["district", "d2", "South", "Kusini", "r2", "900"],
            ],
            "settings": [["form_id", "default_language"], ["districts", "English"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    # zh is filled from the default language; every other language is kept under its tag
    assert field(definition, "district")["label"] == {
        "zh": "District",
        "en": "District",
        "sw": "Wilaya",
        "fr": "District (fr)",
    }
    assert not [i for i in result.issues if i.column and i.column.startswith("label")]
    first = definition["choice_lists"]["district"][0]
    assert first["label"] == {"zh": "North", "en": "North", "sw": "Kaskazini"}
    assert first["attributes"] == {"region": "r1", "pop_": "1200"}
    load_definition(definition)


def test_a_language_without_a_tag_is_only_a_fallback_and_is_reported() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label::Local dialect", "label::pt-BR"],
                ["text", "village", "Cun", "Aldeia"],
            ],
            "settings": [["form_id"], ["dialects"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    # pt-BR is the tag pt-br; "Local dialect" has none, so it only stands in for zh and en
    assert field(definition, "village")["label"] == {"zh": "Cun", "en": "Cun", "pt-br": "Aldeia"}
    issue = warning_at(result, "survey", 1, "label::Local dialect")
    assert "not a language tag" in issue.message and issue.cell == "C1"


def test_typographic_quotes_dotted_names_and_nameless_notes() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "relevant"],
                ["text", "head.name", "Head of household", None],
                ["note", None, "Thank the respondent", None],
                ["integer", "age", "Age", "${head.name} != \u201c\u201d"],
            ],
            "settings": [["form_id"], ["quotes"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    assert [f["name"] for f in definition["fields"]] == [
        "head_name",
        "generated_note_name_3",
        "age",
    ]
    assert field(definition, "age")["relevant"] == '${head_name} != ""'
    assert "head_name" in warning_at(result, "survey", 2, "name").message


def test_a_duplicate_choice_blocks_at_its_own_row_unless_duplicates_are_allowed() -> None:
    sheets: dict[str, list[list[object]]] = {
        "survey": [["type", "name", "label"], ["select_one yn", "q", "Q"]],
        "choices": [
            ["list_name", "name", "label"],
            ["yn", "yes", "Yes"],
            ["yn", "no", "No"],
            ["yn", "yes", "Yes again"],
        ],
        "settings": [["form_id"], ["dups"]],
    }

    refused = import_xlsform(workbook_bytes(sheets))
    sheets["settings"] = [["form_id", "allow_choice_duplicates"], ["dups", "yes"]]
    allowed = import_xlsform(workbook_bytes(sheets))

    assert refused.definition is None
    assert ("choices", 4, "name", "B4") in {
        (i.sheet, i.row, i.column, i.cell) for i in refused.issues if i.blocking
    }
    assert [c["code"] for c in imported(allowed)["choice_lists"]["yn"]] == ["yes", "no"]
    warning_at(allowed, "choices", 4, "name")


def test_a_bad_choice_is_reported_at_its_own_row_and_column() -> None:
    content = workbook_bytes(
        {
            "survey": [["type", "name", "label"], ["select_one yn", "q", "Q"]],
            "choices": [
                ["list_name", "name", "label"],
                ["yn", "yes", "Yes"],
                ["yn", "no answer", "No answer"],
            ],
            "settings": [["form_id"], ["codes"]],
        }
    )

    result = import_xlsform(content)

    assert [c["code"] for c in imported(result)["choice_lists"]["yn"]] == ["yes", "no_answer"]
    issue = warning_at(result, "choices", 3, "name")
    assert issue.cell == "B3" and "'no answer'" in issue.message


def test_range_loops_parameters_and_repeat_counts() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "parameters", "repeat_count"],
                ["range", "score", "Score", "start=0 end=5 step=1", None],
                ["begin loop over crops", "crop_loop", "Crops", None, None],
                ["integer", "yield", "Yield", None, None],
                ["end loop", None, None, None, None],
                ["begin_repeat", "plots", "Plots", None, "${score}"],
                ["decimal", "area", "Area", None, None],
                ["end_repeat", None, None, None, None],
            ],
            "choices": [["list_name", "name", "label"], ["crops", "maize", "Maize"]],
            "settings": [["form_id"], ["farm"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    score = field(definition, "score")
    assert score == {
        "name": "score",
        "type": "integer",
        "label": score["label"],
        "min": 0,
        "max": 5,
        "step": 1,
    }
    # the loop is expanded as pyxform expands it (tests/forms/test_form_xlsform_loops.py)
    assert [f["name"] for f in definition["fields"]] == ["score", "crop_loop_maize_yield", "plots"]
    assert "expanded" in warning_at(result, "survey", 3, "type").message
    # a repeat_count expression is the repeat's count
    assert field(definition, "plots")["count"] == "${score}"
    form = load_definition(definition)
    out_of_range = validate_submission(form, {"score": 7, "plots": [{"area": 1.5}] * 7})
    assert [i.path for i in out_of_range] == ["data.score"]
    too_few = validate_submission(form, {"score": 2, "plots": [{"area": 1.5}]})
    assert [(i.path, i.code.value) for i in too_few] == [("data.plots", "too_few_repeats")]


def test_a_decimal_range_keeps_its_bounds_and_step() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "parameters"],
                ["range", "ph", "Soil pH", "start=14 end=0 step=0.5"],
            ],
            "settings": [["form_id"], ["soil"]],
        }
    )

    definition = imported(import_xlsform(content))

    ph = field(definition, "ph")
    assert (ph["type"], ph["min"], ph["max"], ph["step"]) == ("decimal", 0.0, 14.0, 0.5)


def test_choices_from_an_uploaded_csv_are_loaded_inline() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["select_one_from_file villages.csv", "village", "Village"],
                ["select_one_from_file missing.csv", "other", "Other"],
            ],
            "settings": [["form_id"], ["from_file"]],
        }
    )
    csv_file = b"name,label\nv1,Upper village\nv2,Lower village\n"

    result = import_xlsform(content, choices_files={"villages.csv": csv_file})

    definition = imported(result)
    assert field(definition, "village")["choices"] == "villages"
    assert field(definition, "village")["choices_file"] == "villages.csv"
    assert [c["code"] for c in definition["choice_lists"]["villages"]] == ["v1", "v2"]
    assert "missing.csv" in warning_at(result, "survey", 3, "type").message


def test_a_choice_attribute_longer_than_a_definition_holds_is_cut_with_a_warning() -> None:
    long_note = "Upland village, reached by the county road; " * 6  # 264 characters
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["select_one villages", "village", "Village"],
                ["select_one_from_file towns.csv", "town", "Town"],
            ],
            "choices": [
                ["list_name", "name", "label", "note"],
                ["villages", "v1", "Upper village", long_note],
                ["villages", "v2", "Lower village", "by the river"],
            ],
            "settings": [["form_id"], ["long_attributes"]],
        }
    )
    towns = f'name,label,note\nt1,Town,"{long_note}"\nt2,Other town,short\n'.encode()

    result = import_xlsform(content, choices_files={"towns.csv": towns})

    lists = imported(result)["choice_lists"]
    cut = long_note[:200].rstrip()
    assert lists["villages"][0]["attributes"]["note"] == cut
    assert lists["villages"][1]["attributes"]["note"] == "by the river"
    assert [c["attributes"]["note"] for c in lists["towns"]] == [cut, "short"]
    assert "cut to its first 200" in warning_at(result, "choices", 2, "note").message
    assert "1 value(s) cut" in warning_at(result, "survey", 3, "type").message


def test_an_encrypted_form_is_refused_and_says_why() -> None:
    content = workbook_bytes(
        {
            "survey": [["type", "name", "label"], ["text", "a", "A"]],
            "settings": [["form_id", "public_key"], ["secret", "MIIBIjANBgkq"]],
        }
    )

    result = import_xlsform(content)

    assert result.definition is None
    (issue,) = [i for i in result.issues if i.blocking]
    assert (issue.sheet, issue.row, issue.cell) == ("settings", 2, "B2")
    assert "encrypted" in issue.message and "could not read the answers" in issue.message


def test_a_password_protected_workbook_is_named_as_such() -> None:
    container = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100
    container += "EncryptionInfo".encode("utf-16-le") + b"\x00" * 100

    result = import_xlsform(container)

    assert result.definition is None
    assert "password-protected" in result.issues[0].message


def test_a_zip_bomb_posing_as_xlsx_is_refused_before_it_is_opened() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (101 * 1024 * 1024))
    content = buffer.getvalue()
    assert len(content) < 1024 * 1024

    result = import_xlsform(content)

    assert result.definition is None
    assert "uncompresses to" in result.issues[0].message


def test_a_ten_thousand_row_survey_is_a_located_refusal() -> None:
    rows: list[list[object]] = [["type", "name", "label"]]
    rows += [["text", f"q{n}", f"Q{n}"] for n in range(10_000)]
    content = workbook_bytes({"survey": rows, "settings": [["form_id"], ["huge"]]})

    result = import_xlsform(content)

    assert result.definition is None
    assert [(i.sheet, i.row) for i in result.issues] == [("survey", 5002)]


def test_formula_and_merged_cells_are_warned_at_their_cell() -> None:
    book = Workbook()
    survey = book.active
    assert survey is not None
    survey.title = "survey"
    for row in (["type", "name", "label"], ["text", "a", "A"], ["text", "b", None]):
        survey.append(row)
    survey["C3"] = '=CONCATENATE("B", "")'
    survey.append(["note", "c", "Merged"])
    survey.merge_cells("C4:D4")
    settings = book.create_sheet("settings")
    settings.append(["form_id"])
    settings.append(["cells"])
    buffer = io.BytesIO()
    book.save(buffer)

    result = import_xlsform(buffer.getvalue())

    formula = next(i for i in result.issues if i.cell == "C3")
    assert (formula.sheet, formula.row, formula.column) == ("survey", 3, "label")
    assert "no calculated value" in formula.message and not formula.blocking
    merged = next(i for i in result.issues if "merged" in i.message)
    assert (merged.sheet, merged.row, merged.cell) == ("survey", 4, "C4")


def test_pyxform_messages_about_the_choices_sheet_are_located_there() -> None:
    content = workbook_bytes(
        {
            "survey": [["type", "name", "label"], ["select_one yn", "q", "Q"]],
            "choices": [["list_name", "name", "label"], ["yn", "yes", "Yes"], ["yn", "no", None]],
            "settings": [["form_id"], ["pyx"]],
        }
    )

    result = import_xlsform(content)

    pyxform = [i for i in result.issues if i.message.startswith("pyxform:")]
    assert pyxform and all(i.sheet == "choices" for i in pyxform), result.issues


def test_the_form_language_types_are_mapped_without_a_warning() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["time", "woke", "Woke up"],
                ["geotrace", "road", "Road"],
                ["geoshape", "field_plot", "Field"],
                ["rank crops", "priorities", "Priorities"],
                ["video", "clip", "Clip"],
                ["file", "scan", "Scan"],
                ["audio", "voice", "Voice"],
                ["barcode", "card", "Card"],
            ],
            "choices": [
                ["list_name", "name", "label"],
                ["crops", "maize", "Maize"],
                ["crops", "rice", "Rice"],
            ],
            "settings": [["form_id"], ["new_types"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    shapes = {
        f["name"]: (f["type"], f.get("media") or f.get("choices")) for f in definition["fields"]
    }
    assert shapes == {
        "woke": ("time", None),
        "road": ("geotrace", None),
        "field_plot": ("geoshape", None),
        "priorities": ("rank", "crops"),
        "clip": ("attachment", "video"),
        "scan": ("attachment", "file"),
        "voice": ("attachment", "audio"),
        "card": ("barcode", None),
    }
    assert [i for i in result.issues if i.sheet == "survey" and i.column == "type"] == []
