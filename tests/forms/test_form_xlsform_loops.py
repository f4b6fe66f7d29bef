"""Loops, `include`, and expressions that read data the tablet would carry beside the form
(`pulldata()`, `instance(…)`): each either maps to a fieldsync definition — a loop is expanded as
pyxform expands it — or is a located issue (sheet, row, column, cell, the cell's value, why, what
to do); never an exception, never a silent loss. Workbooks are built here with openpyxl."""

from __future__ import annotations

from typing import Any

from forms.definition_schema import load_definition
from forms.validation import validate_submission
from forms.xlsform import ImportIssue, ImportResult, import_xlsform
from forms.xlsform_writer import write_xlsform
from tests.forms.test_form_xlsform_constructs import field, imported, warning_at
from tests.forms.test_form_xlsform_import import workbook_bytes

LANGUAGES = ["label::English (en)", "label::Chinese (zh)"]
CROPS: list[list[object]] = [
    ["list_name", "name", *LANGUAGES, "unit"],
    ["crops", "maize", "Maize", "玉米", "kg"],
    ["crops", "rice", "Rice", "水稻", "t"],
    ["crops", "none", "None of these", "都没有", None],
]


def crop_form(*extra_rows: list[Any]) -> bytes:
    return workbook_bytes(
        {
            "survey": [
                ["type", "name", *LANGUAGES, "relevant", "constraint"],
                ["integer", "n_crops", "How many crops", "几种作物", None, None],
                ["begin loop over crops", "crop_loop", "Crops", "作物", "${n_crops} > 0", None],
                ["decimal", "area", "Area of %(label)s", "%(label)s的面积", None, ". > 0"],
                ["integer", "harvest", "Harvest of %(name)s in %(unit)s", "产量", "${area} > 1"],
                ["end loop"],
                *extra_rows,
            ],
            "choices": CROPS,
            "settings": [["form_id"], ["crops_survey"]],
        }
    )


def blocking(result: ImportResult) -> list[ImportIssue]:
    assert result.definition is None
    return [i for i in result.issues if i.blocking]


def test_a_loop_is_its_questions_once_per_choice_as_pyxform_builds_it() -> None:
    result = import_xlsform(crop_form())

    definition = imported(result)
    assert [f["name"] for f in definition["fields"]] == [
        "n_crops",
        "crop_loop_maize_area",
        "crop_loop_maize_harvest",
        "crop_loop_rice_area",
        "crop_loop_rice_harvest",
    ]  # `none` is skipped, as pyxform skips it
    rice_area = field(definition, "crop_loop_rice_area")
    assert rice_area["label"] == {"en": "Area of Rice", "zh": "水稻的面积"}
    assert rice_area["constraint"] == ". > 0"
    assert rice_area["relevant"] == "(${n_crops} > 0)"  # the loop's own relevance
    harvest = field(definition, "crop_loop_maize_harvest")
    assert harvest["label"]["en"] == "Harvest of maize in kg"  # %(name)s, %(unit)s
    # ${area} inside the loop is the same choice's area
    assert harvest["relevant"] == "(${n_crops} > 0) and (${crop_loop_maize_area} > 1)"
    note = warning_at(result, "survey", 3, "type")
    assert note.cell == "A3" and "'crop_loop_maize_area'" in note.message
    assert "'begin loop over crops'" in note.message


def test_answers_to_an_expanded_loop_are_checked_per_choice() -> None:
    form = load_definition(imported(import_xlsform(crop_form())))

    good = {"n_crops": 2, "crop_loop_maize_area": 1.5, "crop_loop_rice_area": 0.5}
    assert validate_submission(form, good) == []
    bad = validate_submission(form, {**good, "crop_loop_rice_area": -1})
    assert [(i.path, i.code.value) for i in bad] == [
        ("data.crop_loop_rice_area", "constraint_failed")
    ]


def test_a_loop_question_named_outside_the_loop_is_dropped_with_the_names_to_use() -> None:
    result = import_xlsform(crop_form(["integer", "after", "After", "之后", "${area} > 1", None]))

    definition = imported(result)
    assert "relevant" not in field(definition, "after")
    issue = warning_at(result, "survey", 7, "relevant")
    assert issue.cell == "E7"
    assert "${crop_loop_maize_area}" in issue.message and "'${area} > 1'" in issue.message


def test_a_problem_inside_a_loop_is_told_once_not_once_per_choice() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "calculation"],
                ["begin loop over crops", "crop_loop", "Crops", None],
                ["calculate", "price", "", "pulldata('prices', 'price', 'crop', 'x')"],
                ["end loop"],
                ["integer", "n", "N", None],
            ],
            "choices": CROPS,
            "settings": [["form_id"], ["prices"]],
        }
    )

    result = import_xlsform(content)

    assert [f["name"] for f in imported(result)["fields"]] == ["n"]
    located = [(i.row, i.column) for i in result.issues if i.sheet == "survey"]
    assert located.count((3, "calculation")) == 1
    assert located.count((3, "type")) == 1


def test_nested_loops_expand_inside_out() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["begin loop over plots", "plot", "Plot"],
                ["begin loop over crops", "crop", "Crop"],
                ["integer", "yield", "Yield of %(label)s"],
                ["end loop"],
                ["end loop"],
            ],
            "choices": [
                ["list_name", "name", "label"],
                ["plots", "p1", "Plot 1"],
                ["plots", "p2", "Plot 2"],
                ["crops", "maize", "Maize"],
            ],
            "settings": [["form_id"], ["plots"]],
        }
    )

    definition = imported(import_xlsform(content))

    assert [f["name"] for f in definition["fields"]] == [
        "plot_p1_crop_maize_yield",
        "plot_p2_crop_maize_yield",
    ]
    assert definition["fields"][1]["label"]["en"] == "Yield of Maize"


def test_broken_loops_are_refused_at_their_row_with_what_to_do() -> None:
    def survey(*rows: list[Any]) -> bytes:
        return workbook_bytes(
            {
                "survey": [["type", "name", "label"], ["integer", "a", "A"], *rows],
                "choices": [["list_name", "name", "label"], ["crops", "maize", "Maize"]],
                "settings": [["form_id"], ["broken"]],
            }
        )

    cases = {
        "no end": survey(["begin loop over crops", "l", "L"], ["integer", "x", "X"]),
        "no begin": survey(["end loop"]),
        "no list": survey(["begin loop", "l", "L"], ["integer", "x", "X"], ["end loop"]),
        "unknown list": survey(
            ["begin loop over trees", "l", "L"], ["integer", "x", "X"], ["end loop"]
        ),
        "crossed group": survey(
            ["begin loop over crops", "l", "L"],
            ["begin group", "g", "G"],
            ["integer", "x", "X"],
            ["end loop"],
            ["end group"],
        ),
    }
    advice = {
        "no end": "add an `end loop` row",
        "no begin": "remove it",
        "no list": "begin loop over LIST",
        "unknown list": "add the list's choices to the choices sheet",
        "crossed group": "end every group and repeat inside the loop before its `end loop`",
    }
    for case, content in cases.items():
        issues = blocking(import_xlsform(content))
        assert [(i.sheet, i.row, i.column, i.cell) for i in issues] == [
            ("survey", 3, "type", "A3")
        ], case
        assert advice[case] in issues[0].message, case
        assert "(cell value '" in issues[0].message, case


def test_a_loop_name_too_long_for_fieldsync_is_refused_at_the_question() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["begin loop over crops", "l" * 30, "L"],
                ["integer", "q" * 30, "Q"],
                ["end loop"],
            ],
            "choices": CROPS,
            "settings": [["form_id"], ["long_names"]],
        }
    )

    issues = blocking(import_xlsform(content))

    assert (issues[0].row, issues[0].column) == (3, "name")
    assert "longer than 64 characters" in issues[0].message


def test_include_is_refused_at_its_row_saying_what_to_do() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["text", "head", "Head"],
                ["include", "household_roster", "Roster"],
            ],
            "settings": [["form_id"], ["with_include"]],
        }
    )

    issues = blocking(import_xlsform(content))

    assert [(i.sheet, i.row, i.column, i.cell) for i in issues] == [("survey", 3, "type", "A3")]
    assert "'household_roster'" in issues[0].message
    assert "copy that form's survey rows" in issues[0].message
    assert "(cell value 'include')" in issues[0].message


def test_pulldata_is_dropped_at_its_cell_with_what_to_write_instead() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "calculation", "relevant"],
                ["text", "hh", "Household", None, None],
                ["calculate", "size", None, "pulldata('households', 'size', 'id', ${hh})", None],
                ["integer", "rooms", "Rooms", None, "${size} > 2"],
            ],
            "settings": [["form_id"], ["pull"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    assert [f["name"] for f in definition["fields"]] == ["hh", "rooms"]
    assert "relevant" not in field(definition, "rooms")
    issue = warning_at(result, "survey", 3, "calculation")
    assert issue.cell == "D3"
    assert "pulldata() reads a CSV file attached to the form" in issue.message
    assert "instead," in issue.message and "pulldata('households'" in issue.message
    assert warning_at(result, "survey", 3, "type").message.startswith("calculate row dropped")
    assert "${size}" in warning_at(result, "survey", 4, "relevant").message


def test_instance_lookups_are_dropped_at_their_cell_with_what_to_write_instead() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "constraint", "choice_filter", "relevant"],
                ["select_one crops", "crop", "Crop", None, None, None],
                [
                    "integer",
                    "area",
                    "Area",
                    ". < instance('crops')/root/item[name=${crop}]/max",
                    None,
                    None,
                ],
                ["select_one crops", "other", "Other", None, "instance('crops')/root/item", None],
                ["text", "why", "Why", None, None, "count(instance('crops')/root/item) > 1"],
            ],
            "choices": CROPS,
            "settings": [["form_id"], ["lookups"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    assert "constraint" not in field(definition, "area")
    assert "choice_filter" not in field(definition, "other")
    assert "relevant" not in field(definition, "why")
    for row, column, cell in (
        (3, "constraint", "D3"),
        (4, "choice_filter", "E4"),
        (5, "relevant", "F5"),
    ):
        issue = warning_at(result, "survey", row, column)
        assert issue.cell == cell
        assert "instance(…) looks up the rows of a choice list" in issue.message
        assert "choice_filter" in issue.message and "instance('crops')" in issue.message


def test_choices_read_through_search_are_dropped_at_the_appearance_not_imported_wrong() -> None:
    # With search(), the choices sheet holds only the file's column names: importing them as
    # choices would collect wrong answers.
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "appearance"],
                ["select_one fruits", "fruit", "Fruit", "search('fruits')"],
                ["text", "note_text", "Why", None],
            ],
            "choices": [["list_name", "name", "label"], ["fruits", "name_key", "name"]],
            "settings": [["form_id"], ["fruit_form"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    assert [f["name"] for f in definition["fields"]] == ["note_text"]
    assert "choice_lists" not in definition
    issue = warning_at(result, "survey", 2, "appearance")
    assert issue.cell == "D2"
    assert "'fruits.csv'" in issue.message and "select_one_from_file fruits.csv" in issue.message
    assert "(cell value \"search('fruits')\")" in issue.message


def test_a_loop_over_an_or_other_list_has_a_copy_for_other_as_in_pyxform() -> None:
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["select all that apply from toilets or specify other", "toilets", "Toilets"],
                ["begin loop over toilets", "per_toilet", "Per toilet"],
                ["integer", "number", "How many %(label)s?"],
                ["end loop"],
            ],
            "choices": [["list_name", "name", "label"], ["toilets", "pit", "Pit latrine"]],
            "settings": [["form_id"], ["toilets"]],
        }
    )

    definition = imported(import_xlsform(content))

    names = [f["name"] for f in definition["fields"]]
    assert names == ["toilets", "toilets_other", "per_toilet_pit_number", "per_toilet_other_number"]
    assert field(definition, "per_toilet_other_number")["label"]["en"] == "How many Other?"


FRUITS_CSV = (
    "name_key,name,name_zh,colour,price.kg\n"
    "mango,Mango,芒果,yellow,12\n"
    "lime,Lime,青柠,green,8\n"
    "kiwi,Kiwi,猕猴桃,green,\n"
).encode()


def search_form(appearance: str) -> bytes:
    return workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "appearance"],
                ["select_one colours", "colour", "Colour", None],
                ["select_one fruits", "fruit", "Fruit", appearance],
            ],
            "choices": [
                ["list_name", "name", "label::English (en)", "label::Chinese (zh)"],
                ["colours", "green", "Green", "绿"],
                ["colours", "yellow", "Yellow", "黄"],
                ["fruits", "name_key", "name, colour", "name_zh"],
            ],
            "settings": [["form_id"], ["fruit_search"]],
        }
    )


def test_choices_read_through_search_come_from_the_uploaded_file() -> None:
    result = import_xlsform(
        search_form("search('fruits', 'matches', 'colour', ${colour})"),
        choices_files={"fruits.csv": FRUITS_CSV},
    )

    definition = imported(result)
    fruit = field(definition, "fruit")
    assert fruit["choices_file"] == "fruits.csv"
    assert fruit["choice_filter"] == "colour = ${colour}"
    mango = definition["choice_lists"][fruit["choices"]][0]
    assert mango == {
        "code": "mango",
        "label": {"en": "Mango yellow", "zh": "芒果"},
        "attributes": {"name": "Mango", "name_zh": "芒果", "colour": "yellow", "price_kg": "12"},
    }
    # the choices sheet's row only named the file's columns: it is not a choice
    codes = [c["code"] for c in definition["choice_lists"][fruit["choices"]]]
    assert codes == ["mango", "lime", "kiwi"]
    form = load_definition(definition)
    assert validate_submission(form, {"colour": "green", "fruit": "lime"}) == []
    wrong = validate_submission(form, {"colour": "green", "fruit": "mango"})
    assert [i.path for i in wrong] == ["data.fruit"]


def test_a_search_mode_fieldsync_cannot_filter_by_keeps_every_row_with_a_warning() -> None:
    result = import_xlsform(
        search_form("search('fruits', 'contains', 'name', ${colour})"),
        choices_files={"fruits.csv": FRUITS_CSV},
    )

    definition = imported(result)
    fruit = field(definition, "fruit")
    assert "choice_filter" not in fruit
    assert len(definition["choice_lists"][fruit["choices"]]) == 3
    issue = warning_at(result, "survey", 3, "appearance")
    assert "'contains'" in issue.message and "every row of the file is a choice" in issue.message


def test_a_label_naming_a_dropped_question_loses_the_reference_and_reads_back_identical() -> None:
    """`${size}` in a label, where `size` is a pulldata() calculation the import drops: the
    reference goes with a warning at the label's cell (the tablet has nothing to show there),
    the label's other text stays, and the workbook written back imports to the same draft."""
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label", "hint", "calculation"],
                ["text", "hh", "Household", None, None],
                ["calculate", "size", None, None, "pulldata('households', 'size', 'id', ${hh})"],
                ["integer", "rooms", "Rooms for ${size} people in ${hh}", "${size} known", None],
            ],
            "settings": [["form_id"], ["pull_label"]],
        }
    )

    result = import_xlsform(content)

    definition = imported(result)
    rooms = field(definition, "rooms")
    assert [text for text in rooms["label"].values() if "${" in text and "${hh}" not in text] == []
    assert "${hh}" in next(iter(rooms["label"].values()))  # a kept question stays referenced
    assert "Rooms for people in ${hh}" in rooms["label"].values()
    assert "known" in rooms["hint"].values()
    label_issue = warning_at(result, "survey", 4, "label")
    assert "${size}" in label_issue.message and "${hh}" not in label_issue.message
    assert "${size}" in warning_at(result, "survey", 4, "hint").message

    back = import_xlsform(write_xlsform(load_definition(definition)))
    assert load_definition(imported(back)).to_dict() == load_definition(definition).to_dict()
