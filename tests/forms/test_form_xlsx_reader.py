"""The fast .xlsx reader gives exactly what pyxform's own reader gives (header cleaning, empty
rows kept inside the data, numbers, booleans, dates as strings), or None so that pyxform's is
used."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path

import pytest
from pyxform.xls2json_backends import get_xlsform

from forms.xlsx_reader import read_xlsx
from tests.forms.test_form_xlsform_import import cascading_select_form, workbook_bytes

CORPUS = Path(__file__).parent / "xlsform_corpus" / "files"


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


@pytest.mark.parametrize(
    "name", sorted(p.name for p in CORPUS.glob("*.xlsx")) if CORPUS.exists() else []
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
