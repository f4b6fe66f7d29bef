"""The fast .xlsx reader gives exactly what pyxform's own reader gives (header cleaning, empty
rows kept inside the data, numbers, booleans, dates as strings), or None so that pyxform's is
used."""

from __future__ import annotations

import dataclasses
import io
import os
import tracemalloc
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.styles import Font
from pyxform.constants import SUPPORTED_SHEET_NAMES
from pyxform.xls2json_backends import get_xlsform

from forms.xlsform import _read_facts, import_xlsform
from forms.xlsx_reader import read_xlsx, read_xlsx_and_facts
from tests.forms.test_form_xlsform_import import cascading_select_form, workbook_bytes
from tests.forms.xlsx_shapes import (
    issue_workbook,
    with_rich_inline_text,
    with_shared_strings,
    without_dimensions,
)

# The real workbooks of xlsform_corpus/README.md, where test_form_xlsform_corpus.py finds them.
CORPUS = Path(
    os.environ.get("FIELDSYNC_XLSFORM_CORPUS", Path(__file__).parent / "xlsform_corpus" / "files")
)
CORPUS_XLSX = sorted(p.name for p in CORPUS.glob("*.xlsx")) if CORPUS.exists() else []


def odd_values_form() -> bytes:
    return workbook_bytes(
        {
            "Survey": [
                ["type", " name ", "label", None, "default", "constraint"],
                ["integer", "n", "Number", None, 3, ". > 2.5"],
                [],
                ["date", "d", "Date\u00a0of visit", None, date(2024, 3, 1), None],
                ["dateTime", "t", "When", None, datetime(2024, 3, 1, 8, 30), None],
                ["text", "flag", "Flag", None, True, None],
                ["decimal", "x", 1.5, None, 2.0, None],
            ],
            "choices": [["list_name", "name", "label"], ["yn", 1, "Yes"], ["yn", 0, "No"]],
            "notes": [["anything"]],
        }
    )


def same(content: bytes) -> None:
    fast = read_xlsx(content)
    assert fast is not None
    reference = get_xlsform(content, file_type=".xlsx")
    for f in dataclasses.fields(reference):
        assert getattr(fast, f.name) == getattr(reference, f.name), f.name


def test_the_fast_reader_matches_pyxforms_on_odd_values() -> None:
    same(odd_values_form())
    same(cascading_select_form())
    for content in (odd_values_form(), cascading_select_form()):
        shared = with_shared_strings(content, rich=True)
        assert b"<rPh" in zipfile.ZipFile(io.BytesIO(shared)).read("xl/sharedStrings.xml")
        same(shared)
        same(without_dimensions(with_shared_strings(content)))
        inline = with_rich_inline_text(content)
        assert b"<rPh" in zipfile.ZipFile(io.BytesIO(inline)).read("xl/worksheets/sheet1.xml")
        same(inline)


@pytest.mark.parametrize(
    "name",
    CORPUS_XLSX
    or [
        pytest.param(
            "", marks=pytest.mark.skip(reason="the XLSForm corpus is not collected here (README)")
        )
    ],
)
def test_the_fast_reader_matches_pyxforms_on_the_corpus(name: str) -> None:
    content = (CORPUS / name).read_bytes()
    try:
        get_xlsform(content, file_type=".xlsx")
    except Exception:
        return  # pyxform refuses it: the importer falls back to pyxform's reader and message
    same(content)


def test_what_the_fast_reader_cannot_read_is_left_to_pyxform() -> None:
    assert read_xlsx(b"PK\x03\x04 not really a zip") is None


# -- generated workbooks: the one-pass reader against pyxform's reader and openpyxl's facts ---

_TEXTS = st.sampled_from(
    ["", " ", "  padded  ", "a\u00a0b", "type", "name", "label::English (en)", "x", "=1+1", "是"]
)
_CELLS = st.one_of(
    st.none(),
    _TEXTS,
    st.text(alphabet=" ab\t\u00a0中", max_size=4),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.dates(min_value=date(1950, 1, 1), max_value=date(2050, 1, 1)),
)
_ROWS = st.lists(st.lists(_CELLS, max_size=6), max_size=8)


@st.composite
def generated_workbook(draw: st.DrawFn) -> bytes:
    book = Workbook()
    default = book.active
    assert default is not None
    book.remove(default)
    titles = draw(
        st.lists(
            st.sampled_from(["survey", "Choices", "SETTINGS", "notes", "entities"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    for title in titles:
        sheet = book.create_sheet(title)
        header = draw(
            st.lists(
                st.sampled_from(["type", "name", "label", " hint ", None, 7]),
                max_size=5,
                unique=True,
            )
        )
        sheet.append(header)
        for _ in range(draw(st.integers(0, 3))):
            sheet.append([])  # empty rows inside the data keep their place
        for row in draw(_ROWS):
            sheet.append(row)
        if draw(st.booleans()):
            sheet["B3"] = "=A2&A3"
        if draw(st.booleans()):
            sheet.merge_cells("A5:B6")
        if draw(st.booleans()):
            sheet.cell(row=80, column=2, value="after a run of empty rows")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    generated_workbook(),
    st.sampled_from(["openpyxl", "shared", "rich", "rich inline", "no dimension"]),
)
def test_the_one_pass_reader_matches_pyxform_and_openpyxl(content: bytes, shape: str) -> None:
    if shape == "shared":
        content = with_shared_strings(content)
    elif shape == "rich":
        content = with_shared_strings(content, rich=True)
    elif shape == "rich inline":
        content = with_rich_inline_text(content)
    elif shape == "no dimension":
        content = without_dimensions(content)
    try:
        reference = get_xlsform(content, file_type=".xlsx")
    except Exception:
        return  # pyxform refuses it (a duplicate header): the importer uses pyxform's message
    read = read_xlsx_and_facts(content)
    assert read is not None
    fast, facts = read
    for f in dataclasses.fields(reference):
        assert getattr(fast, f.name) == getattr(reference, f.name), f.name
    old = _read_facts(content)
    read_keys = {k for k in old.letters if k in SUPPORTED_SHEET_NAMES} | (
        set(old.letters) if len(old.letters) == 1 else set()
    )
    assert {k: facts.letters[k] for k in read_keys} == {k: old.letters[k] for k in read_keys}
    assert facts.formulas == old.formulas
    assert facts.merged == old.merged


def test_a_sheet_declaring_a_dtd_is_left_to_pyxform() -> None:
    content = cascading_select_form()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w") as target,
    ):
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "xl/worksheets/sheet1.xml":
                start = data.index(b"<worksheet")
                data = data[:start] + b'<!DOCTYPE worksheet [<!ENTITY a "aa">]>' + data[start:]
            target.writestr(member.filename, data)
    assert read_xlsx(out.getvalue()) is None
    result = import_xlsform(out.getvalue())
    assert result.definition is None
    assert len(result.issues) == 1 and "not a readable XLSForm" in result.issues[0].message


def test_the_300_kb_workbook_of_issue_13_imports_whole() -> None:
    """The issue's size case (its speed is in bench/forms_xlsform.py): 5,462 choice rows with
    seven attribute columns, read exactly as pyxform reads it, every choice and attribute kept."""
    for content in (issue_workbook(), with_shared_strings(issue_workbook())):
        assert len(content) > 300 * 1024
        same(content)
        result = import_xlsform(content)
        assert result.definition is not None, result.issues
        assert not [i for i in result.issues if i.blocking]
        lists = result.definition["choice_lists"]
        assert sum(len(choices) for choices in lists.values()) == 5_462
        village = lists["villages"][4_321]
        assert village["code"] == "v04321"
        assert village["label"] == {
            "zh": "第4321村民委员会",
            "en": "Village committee number 4321, township 1",
        }
        assert village["attributes"]["admin_code"] == "532301004321"
        assert village["attributes"]["altitude"] == str(800 + 4_321 * 7919 % 2_003)
        hinted = result.definition["fields"][5]
        assert hinted["hint"]["zh"] == "第3题的填写说明"


def survey_with_a_far_row(far: int, value: str | None) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "survey"
    for row in (["type", "name", "label"], ["text", "village", "Village"]):
        sheet.append(row)
    cell = sheet.cell(row=far, column=1, value=value)
    cell.font = Font(bold=True)  # a styled cell: the row is written even when empty
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("far", "value"), [(40, "note"), (63, None), (64, "note"), (200, "note"), (1_048_576, None)]
)
def test_rows_far_below_the_data_are_read_as_pyxform_reads_them(
    far: int, value: str | None
) -> None:
    """Past 60 empty rows pyxform stops reading a sheet; the fast reader fills a gap in the rows
    with at most that many empty rows, so a styled last row (LibreOffice writes
    `<row r="1048576">`) is not a million empty rows held in memory."""
    content = survey_with_a_far_row(far, value)
    assert f'r="{far}"'.encode() in zipfile.ZipFile(io.BytesIO(content)).read(
        "xl/worksheets/sheet1.xml"
    )
    same(content)
    tracemalloc.start()
    try:
        read_xlsx(content)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
