"""XLSForm round trip: a definition written by `forms.xlsform_writer` imports back (with
`forms.xlsform.import_xlsform`) to the identical definition — every bundled form, and generated
definitions covering every field type and attribute the writer knows."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from forms.bundled import BUNDLED_FORM_IDS, load_bundled_form
from forms.definition import AttachmentMedia, FieldType, FormDefinition
from forms.definition_schema import FieldSchema, load_definition
from forms.issues import DefinitionError
from forms.xlsform import import_xlsform
from forms.xlsform_writer import (
    ATTACHMENT_TYPES,
    FIELD_COLUMNS,
    TYPE_WRITERS,
    XlsformWriteError,
    write_xlsform,
    xlsform_filename,
)


def round_trip(definition: FormDefinition) -> FormDefinition:
    result = import_xlsform(write_xlsform(definition))
    blocking = [issue.to_dict() for issue in result.issues if issue.blocking]
    assert result.definition is not None, blocking
    return load_definition(result.definition)


def assert_identical(definition: FormDefinition) -> None:
    back = round_trip(definition)
    assert back.to_dict() == definition.to_dict()
    assert back.content_hash() == definition.content_hash()


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_every_bundled_form_imports_back_identical(form_id: str) -> None:
    assert_identical(load_bundled_form(form_id))


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_a_published_bundled_form_keeps_its_version(form_id: str) -> None:
    raw = load_bundled_form(form_id).to_dict()
    published = load_definition({**raw, "version": 7})
    assert round_trip(published).version == 7
    assert_identical(published)


def test_the_workbook_is_a_standard_xlsform_with_fieldsyncs_sheets() -> None:
    visit = load_bundled_form("household_visit")
    book = load_workbook(io.BytesIO(write_xlsform(visit)))
    assert book.sheetnames == ["survey", "choices", "settings", "entities"]
    survey = [list(row) for row in book["survey"].iter_rows(values_only=True)]
    header = survey[0]
    assert header[:2] == ["type", "name"]
    assert "label::Chinese (zh)" in header and "label::English (en)" in header
    by_name = {row[1]: dict(zip(header, row, strict=True)) for row in survey[1:] if row[1]}
    assert by_name["house_safety"]["type"] == "select_one library.house_safety"
    assert by_name["visit_date"]["bind::fieldsync:min"] == "2021-01-01"
    assert by_name["annual_income"]["bind::fieldsync"] == "hh.annual_income"
    assert by_name["per_capita_income"]["type"] == "calculate"
    assert by_name["members"]["type"] == "begin_repeat"
    assert [row[0] for row in survey[1:] if row[0] == "end_repeat"] == ["end_repeat"]
    settings_rows = list(book["settings"].iter_rows(values_only=True))
    settings_row = dict(zip(settings_rows[0], settings_rows[1], strict=True))
    assert settings_row["form_id"] == "household_visit"
    assert settings_row["form_title"] == "防返贫监测入户走访"
    assert settings_row["fieldsync:form_title::English (en)"] == "Household monitoring visit"
    entities = list(book["entities"].iter_rows(values_only=True))
    assert entities[0][:4] == ("name", "type", "id_field", "create")
    assert entities[2][:4] == ("m", "member", "member_id", "no")
    # Every cell is text: numbers keep their spelling, nothing becomes a formula.
    for sheet in book.worksheets:
        for row in sheet.iter_rows(min_row=2):
            assert all(cell.data_type == "s" for cell in row if cell.value is not None)


@pytest.mark.parametrize("form_id", BUNDLED_FORM_IDS)
def test_pyxform_converts_the_workbook_to_an_xform_with_fieldsyncs_attributes(form_id: str) -> None:
    import dataclasses

    from pyxform.builder import create_survey_element_from_dict
    from pyxform.xls2json import workbook_to_json
    from pyxform.xls2json_backends import get_xlsform

    workbook = get_xlsform(write_xlsform(load_bundled_form(form_id)), file_type=".xlsx")
    survey = [dict(row) for row in workbook.survey or ()]
    for row in survey:  # fieldsync's boolean is not pyxform's
        if row.get("type") == "boolean":
            row["type"] = "integer"
    # fieldsync's own entities sheet is not ODK's
    workbook = dataclasses.replace(workbook, survey=survey, entities=None, entities_header=None)
    converted = workbook_to_json(workbook_dict=workbook, warnings=[])
    assert converted["id_string"] == form_id
    xform = create_survey_element_from_dict(converted).to_xml(validate=False)
    assert 'xmlns:fieldsync="https://fieldsync.org/xlsform"' in xform
    assert "fieldsync:max_length=" in xform


def test_text_that_looks_like_a_formula_or_a_number_stays_text() -> None:
    definition = load_definition(
        {
            "form_id": "tricky",
            "title": "=SUM(A1:A2)",
            "fields": [
                {"name": "n", "type": "decimal", "min": 1e-05, "max": 3.0, "label": "007"},
                {"name": "t", "type": "text", "label": {"zh": "=1+1", "en": "+1 555"}},
            ],
        }
    )
    assert_identical(definition)


def test_control_characters_are_refused_with_their_cell_not_written_broken() -> None:
    definition = load_definition(
        {
            "form_id": "bell",
            "title": "t",
            "fields": [{"name": "a", "type": "note", "label": "\x07"}],
        }
    )
    with pytest.raises(XlsformWriteError, match="survey row 2, column 'label::Chinese"):
        write_xlsform(definition)


def test_outer_spaces_and_carriage_returns_come_back_trimmed_as_documented() -> None:
    raw = {
        "form_id": "spaces",
        "title": "t",
        "fields": [{"name": "n", "type": "note", "label": {"zh": " 前后 ", "en": "a\r\nb"}}],
    }
    back = round_trip(load_definition(raw))
    assert back.fields[0].label is not None
    assert back.fields[0].label.to_dict() == {"zh": "前后", "en": "a\nb"}


def test_every_key_and_type_of_the_language_has_its_table_entry() -> None:
    # A key or type added to the language without a writer entry fails here, not at download.
    keys = {f.data_key or name for name, f in FieldSchema().fields.items()}
    assert keys <= set(FIELD_COLUMNS)
    assert {t.value for t in FieldType} <= set(TYPE_WRITERS)
    assert {m.value for m in AttachmentMedia} <= set(ATTACHMENT_TYPES)


def test_file_names_say_version_or_draft() -> None:
    assert xlsform_filename("household_visit", 3) == "household_visit-v3.xlsx"
    assert xlsform_filename("household_visit", None) == "household_visit-draft.xlsx"


# -- generated definitions ----------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_names = st.text(_LETTERS, min_size=1, max_size=6).map(lambda s: f"f_{s}")
# Labels: Chinese, Latin, digits, punctuation, '=' and '+' at the start, inner spaces; no control
# characters (a workbook cannot hold them) and no leading/trailing spaces (pyxform strips cells).
_label_text = st.text(
    st.sampled_from(list("农户收入住房安全 abcXYZ019=+-*/().,:;'\"“”《》%$&?!")),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s and s != "")
_labels = st.one_of(
    _label_text,
    st.fixed_dictionaries({"zh": _label_text, "en": _label_text}),
    # more languages (lower-case BCP 47 tags), written `label::fr`, `label::pt-br` …
    st.fixed_dictionaries(
        {"zh": _label_text, "en": _label_text},
        optional={"fr": _label_text, "sw": _label_text, "pt-br": _label_text},
    ),
)
_expressions = st.sampled_from(
    ["1 = 1", "today() > date('2021-01-01')", "string-length('a') > 0", "true()", "false()"]
)
_constraints = st.sampled_from([". != ''", "string-length(.) < 20", "1 = 1"])
_codes = st.text(_LETTERS + "0123456789_", min_size=1, max_size=5)
_choice = st.builds(
    lambda code, label, attributes: {
        "code": code,
        "label": label,
        **({"attributes": attributes} if attributes else {}),
    },
    _codes,
    _labels,
    st.dictionaries(st.sampled_from(["township", "kind"]), _codes, max_size=2),
)
_choices = st.lists(_choice, min_size=1, max_size=4, unique_by=lambda c: c["code"])


def _common(draw: st.DrawFn, field: dict[str, Any]) -> dict[str, Any]:
    if draw(st.booleans()):
        field["label"] = draw(_labels)
    if draw(st.booleans()):
        field["hint"] = draw(_labels)
    if draw(st.booleans()):
        field["required"] = draw(st.one_of(st.just(True), _expressions))
    if draw(st.booleans()):
        field["relevant"] = draw(_expressions)
    return field


@st.composite
def _question(draw: st.DrawFn, list_names: list[str]) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "text",
                "integer",
                "decimal",
                "boolean",
                "date",
                "datetime",
                "geopoint",
                "note",
                "calculated",
                "select_one",
                "select_multiple",
                "attachment",
                "time",
                "barcode",
                "geotrace",
                "geoshape",
                "rank",
            ]
        )
    )
    field: dict[str, Any] = {"name": draw(_names), "type": kind}
    if kind == "note":
        field["label"] = draw(_labels)
        return field
    if kind == "calculated":
        field["calculation"] = draw(_expressions)
        if draw(st.booleans()):
            field["value_type"] = draw(st.sampled_from(["text", "integer", "decimal", "boolean"]))
        return field
    _common(draw, field)
    if draw(st.booleans()):
        field["constraint"] = draw(_constraints)
        if draw(st.booleans()):
            field["constraint_message"] = draw(_labels)
    if kind in ("text", "barcode"):
        if draw(st.booleans()):
            field["min_length"] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            field["max_length"] = draw(st.integers(5, 200))
        if draw(st.booleans()):
            field["pattern"] = draw(st.sampled_from([r"\d{6}", "[A-Z]+", r"1[3-9]\d{9}"]))
    elif kind in ("integer", "decimal"):
        numbers = (
            st.integers(-1000, 1000)
            if kind == "integer"
            else st.one_of(
                st.integers(-1000, 1000),
                st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
            )
        )
        if draw(st.booleans()):
            field["min"] = draw(numbers)
        if draw(st.booleans()):
            field["max"] = draw(numbers)
        if draw(st.booleans()):
            field["step"] = draw(
                st.integers(1, 50)
                if kind == "integer"
                else st.one_of(st.integers(1, 50), st.sampled_from([0.5, 0.25, 1e-05, 2.0]))
            )
    elif kind == "date" and draw(st.booleans()):
        field["min"] = draw(st.sampled_from(["2021-01-01", "1900-02-28"]))
    elif kind == "time":
        if draw(st.booleans()):
            field["min"] = draw(st.sampled_from(["06:00", "08:30:15"]))
        if draw(st.booleans()):
            field["max"] = draw(st.sampled_from(["18:00", "23:59:59"]))
    elif kind in ("select_one", "select_multiple", "rank"):
        named: bool = draw(st.booleans())
        if list_names and named:
            field["choices"] = draw(st.sampled_from(list_names))
        else:
            field["choices"] = draw(_choices)
        if draw(st.booleans()):
            field["choices_file"] = draw(st.sampled_from(["villages.csv", "crop list.xml"]))
    elif kind == "attachment":
        field["media"] = draw(st.sampled_from([m.value for m in AttachmentMedia]))
    return field


@st.composite
def definitions(draw: st.DrawFn) -> FormDefinition:
    list_names = draw(st.lists(st.sampled_from(["yes_no", "crops", "towns"]), unique=True))
    lists = {name: draw(_choices) for name in list_names}
    questions = st.lists(
        _question(list_names), min_size=1, max_size=6, unique_by=lambda f: f["name"]
    )
    fields = draw(questions)
    if draw(st.booleans()):
        repeat: dict[str, Any] = {"name": "members", "type": "repeat", "fields": draw(questions)}
        _common(draw, repeat)
        repeat.pop("hint", None)
        repeat.pop("required", None)
        if draw(st.booleans()):
            repeat["min_count"] = draw(st.integers(0, 2))
            repeat["max_count"] = draw(st.integers(2, 50))
        if draw(st.booleans()):
            repeat["count"] = draw(st.sampled_from(["2", "1 + 1", "string-length('abc')"]))
        fields.append(repeat)
    used = {
        choices
        for f in [*fields, *(c for f in fields for c in f.get("fields", []))]
        if isinstance(choices := f.get("choices"), str)
    }
    raw: dict[str, Any] = {
        "form_id": draw(st.text(_LETTERS, min_size=2, max_size=10)),
        "title": draw(_labels),
        "fields": fields,
        # Only lists a question uses: the importer keeps those (as XLSForm tools do).
        "choice_lists": {name: items for name, items in lists.items() if name in used},
    }
    if draw(st.booleans()):
        raw["version"] = draw(st.integers(1, 2**31 - 1))
    try:
        return load_definition(raw)
    except DefinitionError as err:  # a combination the language refuses: not a test case
        from hypothesis import reject

        reject()
        raise AssertionError(err) from err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_generated_definitions_import_back_identical(definition: FormDefinition) -> None:
    assert_identical(definition)


def test_the_form_language_additions_import_back_identical() -> None:
    # Each addition at least once, whatever the generator draws.
    fr = {"zh": "村", "en": "Village", "fr": "Village (fr)", "pt-br": "Aldeia"}
    definition = load_definition(
        {
            "form_id": "additions",
            "title": {"zh": "新增", "en": "Additions", "sw": "Nyongeza"},
            "fields": [
                {"name": "woke", "type": "time", "min": "06:00", "max": "23:59:59", "label": fr},
                {"name": "card", "type": "barcode", "max_length": 20, "pattern": "[0-9]+"},
                {"name": "n", "type": "integer", "min": 0, "max": 100, "step": 5},
                {"name": "ph", "type": "decimal", "step": 0.5},
                {"name": "road", "type": "geotrace"},
                {"name": "plot", "type": "geoshape"},
                {"name": "top", "type": "rank", "choices": "crops", "choices_file": "crops.csv"},
                {"name": "v", "type": "select_one", "choices": "crops", "choices_file": "c.xml"},
                *(
                    {"name": f"m_{media}", "type": "attachment", "media": media}
                    for media in ("audio", "video", "file", "document", "signature", "photo")
                ),
                {
                    "name": "plots",
                    "type": "repeat",
                    "count": "${n} div 5",
                    "fields": [{"name": "area", "type": "decimal"}],
                },
            ],
            "choice_lists": {
                "crops": [
                    {"code": "rice", "label": {"zh": "稻", "en": "Rice", "fr": "Riz"}},
                    {"code": "maize", "label": "玉米"},
                ]
            },
        }
    )
    assert_identical(definition)
