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

from forms.definition_schema import load_definition
from forms.xlsform import import_xlsform

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
