"""One column of an export: its code, Chinese and English headers, type, sensitivity and where its
value comes from. One list of these per dataset drives CSV column order, XLSX headers and cell
types, JSON Lines keys and docs/exports.md, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from forms.register import LabelledEnum

# text, integer, decimal, boolean, date, datetime: what they say; choice: one code of `choices`;
# choices: a list of codes; json: a structured value (JSON text in CSV and XLSX).
Kind = Literal[
    "text", "integer", "decimal", "boolean", "date", "datetime", "choice", "choices", "json"
]

# How a sensitive choice (health, disability) is shown when not revealed.
HIDDEN = "***"


@dataclass(frozen=True)
class SqlJoin:
    """A derived cell computed in SQL from a table outer-joined on `onclause` (Column.sql)."""

    value: Any
    target: Any
    onclause: Any


@dataclass(frozen=True)
class Column:
    """An export column.

    `source` names the labelled column of the dataset's SELECT the value is read from (default:
    `name`); `derive`, when set, turns that value into the cell's (e.g. a village code into the
    name of its township) with the export's context. A sensitive text column reads its masked
    form from `source` and, only when the export reveals, decrypts `cipher` (a labelled column
    selected only then) as a value of `sensitive_kind` (`id_number` or `phone`)."""

    name: str
    zh: str
    en: str
    kind: Kind = "text"
    sensitive: bool = False
    choices: type[LabelledEnum] | None = None
    source: str | None = None
    derive: Callable[[Any, Any], Any] | None = None
    cipher: str | None = None
    sensitive_kind: str | None = None
    doc: str = ""
    # The SQL computing `derive`'s cell (as text) from the source column's expression, when it
    # can (or a SqlJoin): CSV exports then let the database write it (exports/textrows.py).
    sql: Callable[[Any], Any] | None = None
    # A form's choice answer (visits by form version): its choices as (code, zh, en), so that
    # `labels=zh|en` shows their labels.
    answer_labels: tuple[tuple[str, str, str], ...] = ()

    @property
    def source_name(self) -> str:
        return self.source or self.name

    def header(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en if lang == "en" else self.name
