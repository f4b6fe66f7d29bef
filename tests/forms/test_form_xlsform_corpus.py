"""Real XLSForms written by others (tests/forms/xlsform_corpus/README.md: origin and licence)
imported one by one: each has the outcome recorded in expected.json — imported or refused, and
the sheet, row and column of every warning and every refusal.

The workbooks themselves are not in the repository (the tool library's rule: what `fetch`
brings is not committed); they are looked for in `tests/forms/xlsform_corpus/files/` or in the
folder `FIELDSYNC_XLSFORM_CORPUS` names, and the README says how to collect them again. Absent
workbooks are skipped, never passed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pyxform.xls2json_backends import get_xlsform

from forms.definition_schema import load_definition
from forms.xlsform import import_xlsform
from forms.xlsform_writer import write_xlsform

HERE = Path(__file__).parent / "xlsform_corpus"
FILES = Path(os.environ.get("FIELDSYNC_XLSFORM_CORPUS", HERE / "files"))
EXPECTED: dict[str, dict[str, Any]] = json.loads((HERE / "expected.json").read_text())


def located(issues: list[Any], blocking: bool) -> list[list[Any]]:
    return sorted(([i.sheet, i.row, i.column] for i in issues if i.blocking == blocking), key=str)


def test_the_corpus_is_large_enough_and_mostly_imports() -> None:
    assert len(EXPECTED) >= 40
    assert sum(e["imported"] for e in EXPECTED.values()) >= 50


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_corpus_workbook_has_its_recorded_outcome(name: str) -> None:
    path = FILES / name
    if not path.exists():
        pytest.skip(f"{name} not collected here (see xlsform_corpus/README.md)")
    expected = EXPECTED[name]

    result = import_xlsform(path.read_bytes(), filename=name.split("__")[-1])

    assert (result.definition is not None) == expected["imported"]
    assert located(result.issues, True) == expected["blocking"]
    assert located(result.issues, False) == expected["warnings"]
    if result.definition is not None:
        load_definition(result.definition)
    for issue in result.issues:
        assert issue.message
        if issue.cell is not None:  # a cell reference is the row's
            assert issue.cell.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == str(issue.row or 1)


def field_names(fields: list[dict[str, Any]]) -> set[str]:
    names = set()
    for item in fields:
        names.add(item["name"])
        names |= field_names(item.get("fields") or [])
    return names


@pytest.mark.filterwarnings("ignore:Unknown extension:UserWarning")  # openpyxl, in pyxform's reader
@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["imported"]))
def test_no_corpus_question_is_lost_without_a_warning_at_its_row(name: str) -> None:
    """Every named survey row pyxform reads is a field of the draft (a loop's copies end with its
    name) or has an issue at its row saying what became of it."""
    path = FILES / name
    if not path.exists():
        pytest.skip(f"{name} not collected here (see xlsform_corpus/README.md)")
    content = path.read_bytes()
    kind = ".xlsx" if content.startswith(b"PK") else ".xls"
    rows = get_xlsform(content, file_type=kind).survey

    result = import_xlsform(content, filename=name.split("__")[-1])

    assert result.definition is not None
    names = field_names(result.definition["fields"])
    told = {i.row for i in result.issues if i.sheet == "survey"}
    lost = [
        (number, row["name"])
        for number, row in enumerate(rows or [], start=2)
        if row.get("name")
        and not str(row.get("type", "")).strip().lower().startswith(("begin", "end"))
        and row["name"] not in names
        and not any(n.endswith(f"_{row['name']}") for n in names)
        and number not in told
    ]
    assert lost == []


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["imported"]))
def test_each_imported_corpus_draft_downloads_and_reads_back_identical(name: str) -> None:
    path = FILES / name
    if not path.exists():
        pytest.skip(f"{name} not collected here (see xlsform_corpus/README.md)")
    result = import_xlsform(path.read_bytes(), filename=name.split("__")[-1])
    assert result.definition is not None
    definition = load_definition(result.definition)

    back = import_xlsform(write_xlsform(definition))

    assert back.definition is not None, [i.message for i in back.issues if i.blocking]
    assert load_definition(back.definition).to_dict() == definition.to_dict()
