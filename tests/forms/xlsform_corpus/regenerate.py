"""Record the reader's outcome for every corpus workbook present (README.md: how to collect them)
and print what changed against `expected.json`, entry by entry, for review:

    .venv/bin/python -m tests.forms.xlsform_corpus.regenerate [--write] [FOLDER]

FOLDER defaults to `FIELDSYNC_XLSFORM_CORPUS`, else `files/` here. Without `--write` only the
differences are printed. A workbook recorded but absent keeps its entry (and is named); a
workbook present but not recorded gets a new entry."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from forms.xlsform import ImportIssue, import_xlsform

HERE = Path(__file__).parent
EXPECTED = HERE / "expected.json"


def outcome(content: bytes, name: str) -> dict[str, Any]:
    """What the corpus test compares: imported or not, and each issue's sheet, row, column."""
    result = import_xlsform(content, filename=name.split("__")[-1])

    def located(blocking: bool) -> list[list[Any]]:
        issues: list[ImportIssue] = [i for i in result.issues if i.blocking == blocking]
        return sorted(([i.sheet, i.row, i.column] for i in issues), key=str)

    return {
        "blocking": located(True),
        "imported": result.definition is not None,
        "warnings": located(False),
    }


def differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    if old is None:
        return ["new entry"]
    lines = []
    if old["imported"] != new["imported"]:
        lines.append(f"imported: {old['imported']} -> {new['imported']}")
    for key in ("blocking", "warnings"):
        before = [tuple(x) for x in old[key]]
        after = [tuple(x) for x in new[key]]
        lines += [f"{key} gone: {x}" for x in before if x not in after]
        lines += [f"{key} new: {x}" for x in after if x not in before]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    folder = args.folder or Path(os.environ.get("FIELDSYNC_XLSFORM_CORPUS", HERE / "files"))
    expected: dict[str, Any] = json.loads(EXPECTED.read_text())
    for name in sorted(expected):
        if not (folder / name).exists():
            print(f"{name}: absent, entry kept")
    updated = dict(expected)
    present = {p.name for p in folder.glob("*__*.xls*")}
    for name in sorted(present | set(expected)):
        path = folder / name
        if not path.exists():
            continue
        updated[name] = outcome(path.read_bytes(), name)
        for line in differences(expected.get(name), updated[name]):
            print(f"{name}: {line}")
    if args.write:
        EXPECTED.write_text(json.dumps(updated, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
