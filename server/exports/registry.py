"""The datasets an export can name. Each dataset is one module in `server/exports/datasets/` that
builds a `Dataset` and calls `register`; adding a dataset (e.g. early-warning `warnings`) is that
module plus one import line in `datasets/__init__.py`. Routes, the CLI, the feed, the docs and
the tests all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.exports.columns import Column


@dataclass(frozen=True)
class ExportFilters:
    """What an export is restricted to (already validated: see schemas.py)."""

    region: str | None = None
    monitoring_type: str | None = None
    monitoring_status: str | None = None
    form_id: str | None = None
    form_version: int | None = None
    changed_since: datetime | None = None
    status: str | None = None
    year: int | None = None

    def as_document(self) -> dict[str, Any]:
        """The filters given, as JSON (for the audit log and job records)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class QueryContext:
    """What a dataset's query builder receives: the caller, the filters, whether sensitive
    ciphertexts are needed, and the scope condition builder for a region-code column."""

    actor: Actor
    filters: ExportFilters
    reveal: bool
    scope: Callable[[Any], ColumnElement[bool]]


@dataclass(frozen=True)
class Dataset:
    """An exportable table.

    `query(ctx)` returns a SELECT whose labelled columns are the `source` names of `columns`
    (plus their `cipher` names when revealing), already restricted to the caller's scope and the
    filters. `filters` names the filters the dataset understands (others are a 422). `key` is the
    column identifying a row (the feed pages by it: `key_expr` is its SQL expression).
    `change_entity` names the change-log entity type for incremental exports (None: not
    incremental). `columns_for(session, filters)` may return the columns for given filters when
    they depend on them (visits flattened by form version); default: `columns`."""

    name: str
    zh: str
    en: str
    columns: tuple[Column, ...]
    query: Callable[[QueryContext], Select[Any]]
    key: str
    key_expr: Any
    filters: frozenset[str] = frozenset({"region"})
    required: frozenset[str] = frozenset()
    change_entity: str | None = None
    doc: str = ""
    columns_for: Callable[[Session, ExportFilters], tuple[Column, ...]] | None = None
    # When a dataset's values are not plain columns: turns each SELECT row into mappings of
    # source name → value, zero or more per row (visits: answers flattened out of the payload;
    # repeats: one per repeat item). Receives the export's row context (codec, reveal).
    explode: Callable[[Any, Any], Iterable[Mapping[str, Any]]] | None = field(default=None)

    def columns_of(self, session: Session, filters: ExportFilters) -> tuple[Column, ...]:
        return self.columns_for(session, filters) if self.columns_for else self.columns


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    if dataset.name in DATASETS:
        raise ValueError(f"dataset {dataset.name} registered twice")
    DATASETS[dataset.name] = dataset
    return dataset


def all_datasets() -> dict[str, Dataset]:
    """Every registered dataset, in the declared `ORDER` (any not named there last, by name)."""
    from server.exports.datasets import ORDER

    rank = {name: position for position, name in enumerate(ORDER)}
    return dict(sorted(DATASETS.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))
