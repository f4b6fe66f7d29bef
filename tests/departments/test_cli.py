"""`fieldsync departments …`: configuring a source from a mapping file, importing a file, the
history; bad input is `error: …` with exit status 1 and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.departments.cli import DEPARTMENT_CODES
from server.departments.facts import Department
from server.runtime import Runtime
from tests.departments.world import (
    ALICE,
    MEDICAL_HEADER,
    MEDICAL_MAPPING,
    NOBODY,
    World,
    build_register,
    csv_bytes,
)

Cli = Callable[..., Any]


@pytest.fixture
def world(rt: Runtime, regions: list[str]) -> World:
    return build_register(rt)


def test_department_codes_of_the_cli_are_the_departments() -> None:
    assert list(DEPARTMENT_CODES) == Department.codes()


def test_a_source_is_configured_and_a_file_imported_from_the_command_line(
    cli: Cli, world: World, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MEDICAL_MAPPING, ensure_ascii=False), encoding="utf-8")
    created = cli(
        "departments",
        "sources",
        "create",
        "medical",
        "--department",
        "medical_insurance",
        "--mapping",
        str(mapping),
        "--list-kind",
        "full",
    )
    assert created.exit_code == 0, created.output
    assert "medical  medical_insurance  full" in created.output
    data = tmp_path / "医保.csv"
    data.write_bytes(
        csv_bytes([MEDICAL_HEADER, [ALICE, "a", "是", "", ""], [NOBODY, "n", "否", "", ""]], "gbk")
    )
    imported = cli("departments", "import", "medical", str(data))
    assert imported.exit_code == 0, imported.output
    assert "rows 2, matched 1, unmatched 1, ambiguous 0, mismatched 1" in imported.output
    assert "9901**********0099" in imported.output and NOBODY not in imported.output
    again = cli("departments", "import", "medical", str(data))
    assert again.exit_code == 0 and again.output.startswith("unchanged")
    history = cli("departments", "imports", "--source", "medical")
    assert history.exit_code == 0 and len(history.output.strip().splitlines()) == 1
    updated = cli("departments", "sources", "update", "medical", "--list-kind", "partial")
    assert updated.exit_code == 0 and "partial" in updated.output
    listing = cli("departments", "sources", "list")
    assert len(listing.output.strip().splitlines()) == 1


def test_a_bad_file_from_the_command_line_names_the_row_and_imports_nothing(
    cli: Cli, world: World, tmp_path: Path
) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MEDICAL_MAPPING), encoding="utf-8")
    cli(
        "departments",
        "sources",
        "create",
        "medical",
        "--department",
        "medical_insurance",
        "--mapping",
        str(mapping),
    )
    data = tmp_path / "bad.csv"
    data.write_bytes(csv_bytes([MEDICAL_HEADER, [ALICE, "a", "是", "lots", ""]]))
    result = cli("departments", "import", "medical", str(data))
    assert result.exit_code == 1
    assert "row 2: 自付费用" in result.output and ALICE not in result.output
    assert cli("departments", "imports").output == ""
    unknown = cli("departments", "import", "nosuch", str(data))
    assert unknown.exit_code == 1 and "no such department source" in unknown.output
