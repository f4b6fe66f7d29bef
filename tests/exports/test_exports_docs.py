"""docs/exports.md is generated from the dataset registry and lists every column of every
dataset."""

from __future__ import annotations

from pathlib import Path

from server.exports.docs import render
from server.exports.registry import all_datasets

DOCS = Path(__file__).resolve().parents[2] / "docs" / "exports.md"


def test_docs_list_every_column_of_every_dataset():
    text = DOCS.read_text(encoding="utf-8")
    for dataset in all_datasets().values():
        section = text.split(f"### `{dataset.name}` ")[1].split("\n### ")[0]
        for column in dataset.columns:
            assert f"| `{column.name}` | {column.zh} | {column.en} | {column.kind} |" in section, (
                dataset.name,
                column.name,
            )


def test_docs_are_what_the_registry_generates():
    assert DOCS.read_text(encoding="utf-8") == render(), "run python -m server.exports.docs"
