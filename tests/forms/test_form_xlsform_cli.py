"""`fieldsync forms import-xlsform`: the file's name stands in for a missing form_id, the CSV
files named by `select_one_from_file` come with `--choices-file`, warnings print their cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.forms.test_form_xlsform_import import workbook_bytes


def test_the_cli_imports_a_workbook_with_its_choices_file(cli: Any, tmp_path: Path) -> None:
    workbook = tmp_path / "Village Check.xlsx"
    workbook.write_bytes(
        workbook_bytes(
            {
                "survey": [
                    ["type", "name", "label"],
                    ["select_one_from_file villages.csv", "village", "Village"],
                    ["start", "started", None],
                ]
            }
        )
    )
    villages = tmp_path / "villages.csv"
    villages.write_text("name,label\nv1,Upper\nv2,Lower\n")

    result = cli("forms", "import-xlsform", str(workbook), "--choices-file", str(villages))

    assert result.exit_code == 0, result.output
    assert "form village_check: new form, draft saved" in result.output
    assert "warning: survey!A3: question dropped: metadata 'start'" in result.output


def test_the_cli_reports_a_refusal_with_its_cell(cli: Any, tmp_path: Path) -> None:
    workbook = tmp_path / "secret.xlsx"
    workbook.write_bytes(
        workbook_bytes(
            {
                "survey": [["type", "name", "label"], ["text", "a", "A"]],
                "settings": [["form_id", "public_key"], ["secret", "MIIB"]],
            }
        )
    )

    result = cli("forms", "import-xlsform", str(workbook))

    assert result.exit_code == 1
    assert "settings!B2" in result.output + (result.stderr or "")
