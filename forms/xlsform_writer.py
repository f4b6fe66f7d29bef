"""XLSForm export: a form definition written as an XLSForm workbook (survey, choices, settings and
fieldsync's own `entities` sheet) that `forms.xlsform.import_xlsform` reads back to the same
definition, and that pyxform reads as a normal XLSForm.

Works on the definition's JSON data (`FormDefinition.to_dict()`), one table entry per field key
(`FIELD_COLUMNS`) and per field type (`TYPE_WRITERS`): a new key or type of the form language is
one entry here. Every cell is written as text, so numbers keep their exact spelling (`3.0` stays
a decimal) and a label starting with `=` stays a label, not a formula.

Pure: no Flask, no database, no files; `write_xlsform` returns the workbook's bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from forms.definition import FormDefinition

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

SURVEY, CHOICES, SETTINGS, ENTITIES = "survey", "choices", "settings", "entities"

FIELDSYNC_NAMESPACE = 'fieldsync="https://fieldsync.org/xlsform"'
"""`settings.namespaces`: declares the `fieldsync:` prefix of the `bind::fieldsync:*` columns, so
pyxform writes them as namespaced bind attributes of a valid XForm."""

TITLE_COLUMN = "fieldsync:form_title"
"""Settings columns `fieldsync:form_title::Chinese (zh)`, `…::English (en)`: the title in every
language."""

BIND_COLUMN = "bind::fieldsync"
"""The register binding of a field (`hh.annual_income`), as the importer reads it."""

LANGUAGE_COLUMNS = {"zh": "Chinese (zh)", "en": "English (en)"}
"""How a label language is spelt after `label::`; any other language tag is written as itself
(`label::fr`)."""


class XlsformWriteError(ValueError):
    """The definition holds something no workbook cell can carry (control characters)."""


def fieldsync_column(key: str) -> str:
    """The survey column of a fieldsync field attribute XLSForm has no column for (`min` →
    `bind::fieldsync:min`): a namespaced bind attribute, the XLSForm way of custom attributes."""
    return f"{BIND_COLUMN}:{key}"


# -- cell values ----------------------------------------------------------------------------


def _text(value: object) -> str:
    """A JSON scalar as cell text: numbers in Python's spelling (`3`, `3.0`, `1e-05`)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _language_columns(prefix: str, text: Mapping[str, str]) -> dict[str, str]:
    """`{"zh": …, "en": …, "fr": …}` as `label::Chinese (zh)`, `label::English (en)`,
    `label::fr` (Chinese and English first, then the others in their order)."""
    ordered = [lang for lang in LANGUAGE_COLUMNS if lang in text]
    ordered += [lang for lang in text if lang not in LANGUAGE_COLUMNS]
    return {f"{prefix}::{LANGUAGE_COLUMNS.get(lang, lang)}": text[lang] for lang in ordered}


# -- field attributes: one entry per key of a field's JSON -----------------------------------

ColumnWriter = Callable[[Any, Mapping[str, Any]], dict[str, str]]
"""(the key's value, the whole field) → the survey cells it fills."""


def _same(column: str) -> ColumnWriter:
    return lambda value, _field: {column: _text(value)}


def _language(column: str) -> ColumnWriter:
    return lambda value, _field: _language_columns(column, value)


def _fieldsync(key: str) -> ColumnWriter:
    return lambda value, _field: {fieldsync_column(key): _text(value)}


_FLAG_WORDS = frozenset({"yes", "true", "true()", "1", "no", "false", "false()", "0"})


def _required(value: Any, _field: Mapping[str, Any]) -> dict[str, str]:
    if value is True:
        return {"required": "yes"}
    cells = {"required": str(value)}
    if str(value).strip().lower() in _FLAG_WORDS:
        # `true()` in `required` reads as "yes": the expression itself is kept apart.
        cells[fieldsync_column("required")] = str(value)
    return cells


def _consumed(_value: Any, _field: Mapping[str, Any]) -> dict[str, str]:
    return {}  # written with the type (choices, media) or as the rows that follow (fields)


FIELD_COLUMNS: dict[str, ColumnWriter] = {
    "name": _same("name"),
    "type": _consumed,
    "label": _language("label"),
    "hint": _language("hint"),
    "required": _required,
    "relevant": _same("relevant"),
    "constraint": _same("constraint"),
    "constraint_message": _language("constraint_message"),
    "choice_filter": _same("choice_filter"),
    "calculation": _same("calculation"),
    "min": _fieldsync("min"),
    "max": _fieldsync("max"),
    "min_length": _fieldsync("min_length"),
    "max_length": _fieldsync("max_length"),
    "pattern": _fieldsync("pattern"),
    "value_type": _fieldsync("value_type"),
    "min_count": _fieldsync("min_count"),
    "max_count": _fieldsync("max_count"),
    "count": _same("repeat_count"),
    "bind": _same(BIND_COLUMN),
    "choices": _consumed,
    "media": _consumed,
    "step": _fieldsync("step"),
    "choices_file": _fieldsync("choices_file"),
    "fields": _consumed,
}
"""How each key of a field's JSON is written. A key missing here is refused (`KeyError` names it),
never dropped."""


# -- field types: one entry per type --------------------------------------------------------

TypeWriter = Callable[[Mapping[str, Any], str | None], dict[str, str]]
"""(the field, the name of its choice list if it has one) → `type` and any cells that go with it."""


def _plain(xlsform_type: str) -> TypeWriter:
    return lambda _field, _list: {"type": xlsform_type}


def _select(xlsform_type: str) -> TypeWriter:
    return lambda _field, list_name: {"type": f"{xlsform_type} {list_name}"}


ATTACHMENT_TYPES: dict[str, dict[str, str]] = {
    "photo": {"type": "image"},
    "signature": {"type": "image", "appearance": "signature"},
    "audio": {"type": "audio"},
    "video": {"type": "video"},
    "file": {"type": "file"},
    # fieldsync's own: a file XLSForm cannot tell from any other, so the media is named.
    "document": {"type": "file", fieldsync_column("media"): "document"},
}
"""An attachment's `media` → its XLSForm type (and appearance)."""


def _attachment(field: Mapping[str, Any], _list: str | None) -> dict[str, str]:
    return dict(ATTACHMENT_TYPES[field.get("media", "photo")])


TYPE_WRITERS: dict[str, TypeWriter] = {
    "text": _plain("text"),
    "integer": _plain("integer"),
    "decimal": _plain("decimal"),
    "boolean": _plain("boolean"),  # fieldsync's own type; pyxform is told it is an integer
    "date": _plain("date"),
    "datetime": _plain("dateTime"),
    "time": _plain("time"),
    "geopoint": _plain("geopoint"),
    "geotrace": _plain("geotrace"),
    "geoshape": _plain("geoshape"),
    "barcode": _plain("barcode"),
    "note": _plain("note"),
    "calculated": _plain("calculate"),
    "select_one": _select("select_one"),
    "select_multiple": _select("select_multiple"),
    "rank": _select("rank"),
    "attachment": _attachment,
    "repeat": _plain("begin_repeat"),
}
"""How each fieldsync field type is written in the `type` column (with what goes with it)."""

# -- the workbook ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """One sheet: its column headers in order and its rows (header → text)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]


def xlsform_sheets(definition: FormDefinition) -> tuple[Sheet, ...]:
    """The sheets of `definition`'s workbook: survey, choices (when it has lists), settings and
    entities (when it has entities). Pure data, for `write_xlsform` and for tests."""
    data = definition.to_dict()
    # Inline choices get a list of their own (named after the field, marked `inline`).
    inline_lists: dict[str, list[dict[str, Any]]] = {
        name: [] for name in data.get("choice_lists", {})
    }
    survey_rows = list(_survey_rows(data["fields"], (), inline_lists))
    inline_lists = {name: choices for name, choices in inline_lists.items() if choices}
    lists = {**data.get("choice_lists", {}), **inline_lists}
    sheets = [_sheet(SURVEY, survey_rows, first=("type", "name"))]
    if lists:
        sheets.append(_sheet(CHOICES, _choice_rows(lists), first=("list_name", "name")))
    sheets.append(_sheet(SETTINGS, [_settings_row(data)], first=("form_id",)))
    if data.get("entities"):
        entity_rows = [_entity_row(entity) for entity in data["entities"]]
        sheets.append(_sheet(ENTITIES, entity_rows, first=("name", "type", "id_field", "create")))
    return tuple(sheets)


def write_xlsform(definition: FormDefinition) -> bytes:
    """`definition` as an `.xlsx` XLSForm workbook (bytes). `XlsformWriteError` if a text holds
    characters a workbook cannot store (control characters)."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    bold = Font(bold=True)
    for sheet in xlsform_sheets(definition):
        page = book.create_sheet(sheet.name)
        for column_number, header in enumerate(sheet.columns, start=1):
            page.cell(row=1, column=column_number, value=header).font = bold
        for row_number, row in enumerate(sheet.rows, start=2):
            for column_number, header in enumerate(sheet.columns, start=1):
                value = row.get(header)
                if value is None or value == "":
                    continue
                if ILLEGAL_CHARACTERS_RE.search(value):
                    raise XlsformWriteError(
                        f"{sheet.name} row {row_number}, column {header!r}: {value!r} holds "
                        "control characters a workbook cannot store"
                    )
                cell = page.cell(row=row_number, column=column_number)
                cell.value = value
                cell.data_type = "s"  # text, even when it starts with '=' or looks like a number
        page.freeze_panes = "A2"
    output = io.BytesIO()
    book.save(output)
    return output.getvalue()


def xlsform_filename(form_id: str, version: int | None) -> str:
    """The download's file name: `household_visit-v3.xlsx`, or `household_visit-draft.xlsx`."""
    return f"{form_id}-{'draft' if version is None else f'v{version}'}.xlsx"


def _sheet(name: str, rows: list[dict[str, str]], *, first: tuple[str, ...]) -> Sheet:
    columns = list(first)
    for row in rows:
        columns.extend(column for column in row if column not in columns)
    return Sheet(name, tuple(columns), tuple(rows))


def _survey_rows(
    fields: Iterable[Mapping[str, Any]],
    path: tuple[str, ...],
    inline_lists: dict[str, list[dict[str, Any]]],
) -> Iterable[dict[str, str]]:
    for field in fields:
        list_name = _list_name(field, path, inline_lists)
        row = TYPE_WRITERS[field["type"]](field, list_name)
        for key, value in field.items():
            row.update(FIELD_COLUMNS[key](value, field))
        if isinstance(field.get("choices"), list):
            row[fieldsync_column("choices")] = "inline"
        yield row
        if field["type"] == "repeat":
            yield from _survey_rows(field.get("fields", ()), (*path, field["name"]), inline_lists)
            yield {"type": "end_repeat"}


_INLINE_LIST = re.compile(r"[^a-z0-9_]")


def _list_name(
    field: Mapping[str, Any],
    path: tuple[str, ...],
    inline_lists: dict[str, list[dict[str, Any]]],
) -> str | None:
    choices = field.get("choices")
    if choices is None or isinstance(choices, str):
        return choices
    base = _INLINE_LIST.sub("_", "_".join((*path, field["name"])).lower())
    name, n = f"inline_{base}", 1
    while name in inline_lists:
        n += 1
        name = f"inline_{base}_{n}"
    inline_lists[name] = list(choices)
    return name


def _choice_rows(lists: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for list_name, choices in lists.items():
        for choice in choices:
            row = {"list_name": list_name, "name": choice["code"]}
            row.update(_language_columns("label", choice["label"]))
            row.update(choice.get("attributes", {}))
            rows.append(row)
    return rows


def _settings_row(data: Mapping[str, Any]) -> dict[str, str]:
    # pyxform takes one plain title (Chinese, the default language); every language of it goes in
    # fieldsync's own columns, which pyxform ignores (`form_title::en` would break its XForm).
    row = {"form_id": data["form_id"], "form_title": data["title"]["zh"]}
    row.update(_language_columns(TITLE_COLUMN, data["title"]))
    if "version" in data:
        row["version"] = str(data["version"])
    row["default_language"] = LANGUAGE_COLUMNS["zh"]
    row["namespaces"] = FIELDSYNC_NAMESPACE
    return row


def _entity_row(entity: Mapping[str, Any]) -> dict[str, str]:
    return {key: _text(value) for key, value in entity.items()}
