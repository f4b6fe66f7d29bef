"""A fast reader of an .xlsx XLSForm's sheets into pyxform's `DefinitionData`, with the same
rules as pyxform's own `xlsx_to_dict` (header cleaning, runs of empty rows and columns, cell
values as strings) but without openpyxl's per-cell objects: pyxform's reader spends ~90 µs a cell
in openpyxl, seconds for a 5,000-row choices sheet.

Only the sheets pyxform reads are parsed (survey, choices, settings, entities, external_choices,
osm; or the only sheet). `read_xlsx` returns None for anything it does not expect (the caller
then uses pyxform's reader), so correctness never depends on it.

The sheets and the shared strings (the bulk of a workbook) are read by expat's event handlers,
without building elements: defusedxml's ElementTree parser is pure Python around expat and cost
half of a whole import. A member that declares a DTD is not read here at all (Excel never writes
one; an entity declaration is how XML bombs start): pyxform's reader, which uses defusedxml,
decides about it. The small parts (workbook, relationships, styles) go through defusedxml.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from defusedxml.ElementTree import iterparse  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel
from pyxform import constants
from pyxform.xls2json_backends import (
    DefinitionData,
    get_excel_column_headers,
    is_empty,
    xlsx_value_to_str,
)

_MAIN_URI = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_MAIN = f"{{{_MAIN_URI}}}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DATE_FORMAT_IDS = frozenset({*range(14, 23), 45, 46, 47})
_DATE_CODE = re.compile(r"[dmyhs]", re.IGNORECASE)
_QUOTED_OR_COLOUR = re.compile(r'"[^"]*"|\[[^\]]*\]')
# expat's names for the spreadsheet elements (namespace URI, a space, the local name).
_ROW, _CELL, _VALUE, _TEXT, _INLINE, _SI, _PHONETIC, _FORMULA, _MERGE = (
    f"{_MAIN_URI} {name}" for name in ("row", "c", "v", "t", "is", "si", "rPh", "f", "mergeCell")
)
_SPACES = re.compile(r"\s+")
FORMULA_LIMIT = 200
"""Formula cells noted per sheet (the importer reports the first 50)."""


@dataclass
class WorkbookFacts:
    """What pyxform does not tell: per (lower-case) sheet name, header text → column letter,
    the formula cells (reference → cached value or None) and the merged ranges."""

    letters: dict[str, dict[str, str]] = field(default_factory=dict)
    formulas: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    merged: dict[str, list[str]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


class _Unsure(Exception):
    """What this reader does not read itself (pyxform's reader decides)."""


def read_xlsx(content: bytes) -> DefinitionData | None:
    """The workbook's sheets as pyxform reads them, or None when this reader is not sure."""
    read = read_xlsx_and_facts(content)
    return read[0] if read is not None else None


def read_xlsx_and_facts(content: bytes) -> tuple[DefinitionData, WorkbookFacts] | None:
    """The sheets as pyxform reads them and, from the same pass, the facts the importer
    locates its issues with (header letters, formula cells, merged ranges of the sheets
    pyxform reads); None when this reader is not sure."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return _read(archive)
    except Exception:  # anything unexpected: pyxform's reader decides
        return None


def _read(archive: zipfile.ZipFile) -> tuple[DefinitionData, WorkbookFacts] | None:
    names = set(archive.namelist())
    sheets = _sheet_paths(archive)
    if sheets is None:
        return None
    strings = _shared_strings(archive) if "xl/sharedStrings.xml" in names else []
    cleaned = [_clean_value(text) for text in strings]
    dates = _date_styles(archive) if "xl/styles.xml" in names else frozenset()
    result: dict[str, Any] = {"sheet_names": [title for title, _ in sheets]}
    facts = WorkbookFacts()
    for title, path in sheets:
        key = title.lower()
        if key not in constants.SUPPORTED_SHEET_NAMES:
            if len(sheets) == 1:
                key = constants.SURVEY
            else:
                continue
        if path not in names:
            return None
        reader = _SheetReader(strings, cleaned, dates)
        _expat(archive, path, reader.start, reader.end, reader.text)
        result[key], result[f"{key}_header"] = reader.records()
        fact_key = title.strip().lower()
        facts.titles[fact_key] = title
        facts.letters[fact_key] = {
            _SPACES.sub(" ", str(value).strip()): get_column_letter(index)
            for index, value in enumerate(reader.header, start=1)
            if value is not None and str(value).strip()
        }
        if fact_key in constants.SUPPORTED_SHEET_NAMES:
            if reader.formulas:
                facts.formulas[fact_key] = reader.formulas
            if reader.merged:
                facts.merged[fact_key] = reader.merged
    return DefinitionData(**result), facts


def _sheet_paths(archive: zipfile.ZipFile) -> list[tuple[str, str]] | None:
    targets: dict[str, str] = {}
    with archive.open("xl/_rels/workbook.xml.rels") as rels:
        for _, element in iterparse(rels):
            if element.tag == f"{_PACKAGE_REL}Relationship":
                target = element.get("Target", "")
                targets[element.get("Id", "")] = (
                    target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                )
    sheets: list[tuple[str, str]] = []
    with archive.open("xl/workbook.xml") as workbook:
        for _, element in iterparse(workbook):
            if element.tag == f"{_MAIN}sheet":
                rel = element.get(f"{_REL}id", "")
                if rel not in targets:
                    return None
                sheets.append((element.get("name", ""), targets[rel]))
    return sheets


def _expat(
    archive: zipfile.ZipFile,
    path: str,
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None],
    text: Callable[[str], None],
) -> None:
    """Run expat's handlers over one archive member; a DTD stops it (`_Unsure`)."""

    def refuse(*_: Any) -> None:
        raise _Unsure(f"{path} declares a DTD")

    def refuse_external(*_: Any) -> int:
        raise _Unsure(f"{path} refers to an external entity")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    with archive.open(path) as source:
        parser.ParseFile(source)


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    """The shared strings; of rich text the runs' texts (phonetic runs, `rPh`, are not part of
    the value)."""
    strings: list[str] = []
    parts: list[str] = []
    state = {"in_text": False, "phonetic": 0}

    def start(name: str, _attributes: dict[str, str]) -> None:
        if name == _TEXT:
            state["in_text"] = not state["phonetic"]
        elif name == _PHONETIC:
            state["phonetic"] += 1
        elif name == _SI:
            parts.clear()

    def end(name: str) -> None:
        if name == _TEXT:
            state["in_text"] = False
        elif name == _PHONETIC:
            state["phonetic"] -= 1
        elif name == _SI:
            strings.append("".join(parts))

    def text(data: str) -> None:
        if state["in_text"]:
            parts.append(data)

    _expat(archive, "xl/sharedStrings.xml", start, end, text)
    return strings


def _date_styles(archive: zipfile.ZipFile) -> frozenset[int]:
    """Indexes of the cell styles (`s`) whose number format shows a date or time."""
    custom: dict[int, str] = {}
    formats: list[int] = []
    with archive.open("xl/styles.xml") as source:
        in_xfs = False
        for event, element in iterparse(source, events=("start", "end")):
            if element.tag == f"{_MAIN}numFmt" and event == "end":
                custom[int(element.get("numFmtId", "0"))] = element.get("formatCode", "")
            elif element.tag == f"{_MAIN}cellXfs":
                in_xfs = event == "start"
            elif element.tag == f"{_MAIN}xf" and in_xfs and event == "end":
                formats.append(int(element.get("numFmtId", "0")))
    dates = set()
    for index, number_format in enumerate(formats):
        if number_format in _DATE_FORMAT_IDS:
            dates.add(index)
        elif number_format in custom:
            code = _QUOTED_OR_COLOUR.sub("", custom[number_format])
            if _DATE_CODE.search(code) and "General" not in code:
                dates.add(index)
    return frozenset(dates)


_LETTERS_INDEX: dict[str, int] = {}


def _column_index(reference: str) -> int:
    """0-based column of a cell reference (`C7` → 2), cached by its letters."""
    letters = reference.rstrip("0123456789")
    index = _LETTERS_INDEX.get(letters)
    if index is None:
        if not letters or not letters.isascii() or not letters.isupper():
            raise ValueError(f"cell reference {reference!r}")
        index = 0
        for char in letters:
            index = index * 26 + ord(char) - 64
        index -= 1
        _LETTERS_INDEX[letters] = index
    return index


_MAX_ADJACENT_EMPTY_ROWS = 60  # pyxform's `get_excel_rows`


class _SheetReader:
    """expat handlers collecting one sheet's rows of cell values: the first row's values as
    they are (pyxform cleans headers itself), the others cleaned as pyxform cleans cells."""

    def __init__(
        self, strings: list[str], cleaned: list[str | None], dates: frozenset[int]
    ) -> None:
        self.strings, self.cleaned, self.dates = strings, cleaned, dates
        self.rows: list[list[Any]] = []
        self.header: list[Any] = []
        self.values: list[Any] = []
        self.expected_row = 1
        self.position = 0
        self.cell: dict[str, str] = {}
        self.value: list[str] | None = None
        self.inline: list[str] | None = None
        self.collect: list[str] | None = None
        self.has_formula = False
        self.phonetic = 0
        self.inline_cleaned: dict[str, str | None] = {}
        self.number_cleaned: dict[tuple[str, bool], str | None] = {}
        self.formulas: list[tuple[str, str | None]] = []
        self.merged: list[str] = []

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if name == _CELL:
            self.cell = attributes
            self.value = self.inline = None
            self.has_formula = False
        elif name == _VALUE:
            self.value = self.collect = []
        elif name == _TEXT:
            # phonetic runs (rPh) are not part of the value, as for shared strings
            self.collect = None if self.phonetic else self.inline
        elif name == _PHONETIC:
            self.phonetic += 1
        elif name == _INLINE:
            self.inline = []
        elif name == _ROW:
            number = int(attributes.get("r", self.expected_row))
            # Rows absent from the XML are empty rows; more than 60 in a row end the sheet for
            # pyxform (`_records`), so a gap is filled with at most 61: a styled last row
            # (`r="1048576"`, as LibreOffice writes it) is not a million empty rows.
            gap = min(number - self.expected_row, _MAX_ADJACENT_EMPTY_ROWS + 1)
            self.rows.extend([] for _ in range(max(gap, 0)))
            self.expected_row = number + 1
            self.values = []
            self.position = 0
        elif name == _FORMULA:
            self.has_formula = True
        elif name == _MERGE and "ref" in attributes:
            self.merged.append(attributes["ref"])

    def end(self, name: str) -> None:
        if name == _CELL:
            self.end_cell()
        elif name in (_VALUE, _TEXT):
            self.collect = None
        elif name == _PHONETIC:
            self.phonetic -= 1
        elif name == _ROW:
            self.rows.append(self.values)

    def text(self, data: str) -> None:
        if self.collect is not None:
            self.collect.append(data)

    def end_cell(self) -> None:
        attributes, values = self.cell, self.values
        reference = attributes.get("r")
        index = _column_index(reference) if reference else self.position
        if index > len(values):
            values.extend([None] * (index - len(values)))
        kind = attributes.get("t", "n")
        # An empty `<v/>` (a formula never calculated) holds no value.
        raw = "".join(self.value) or None if self.value is not None else None
        if self.rows:
            if kind == "s":
                value = self.cleaned[int(raw)] if raw is not None else None
            elif kind == "inlineStr" and self.inline is not None:
                # openpyxl and some tools store every text in its cell: cleaned once per text
                text = "".join(self.inline)
                if text in self.inline_cleaned:
                    value = self.inline_cleaned[text]
                else:
                    value = self.inline_cleaned[text] = _clean_value(text)
            elif kind == "n" and raw is not None:
                # numbers: cleaned once per (text, whether its style shows a date)
                key = (raw, int(attributes.get("s", "0")) in self.dates)
                if key in self.number_cleaned:
                    value = self.number_cleaned[key]
                else:
                    value = self.number_cleaned[key] = _clean_value(self.raw_value(kind, raw))
            else:
                value = _clean_value(self.raw_value(kind, raw))
        else:
            first = self.raw_value(kind, raw)
            if index < len(self.header):
                self.header[index] = first
            else:
                self.header.extend([None] * (index - len(self.header)))
                self.header.append(first)
            value = _clean_value(first)
        if index < len(values):  # the same cell twice: the later one
            values[index] = value
        else:
            values.append(value)
        self.position = index + 1
        if self.has_formula and reference and len(self.formulas) < FORMULA_LIMIT:
            self.formulas.append((reference, raw))

    def records(self) -> tuple[list[dict[str, Any]], list[dict[str, None]]]:
        """The sheet's records and header as pyxform's `xlsx_to_dict` gives them."""
        if not self.rows:
            return [], []
        headers = get_excel_column_headers(first_row=iter(self.header if self.rows[0] else []))
        records = _records(headers, self.rows[1:])
        header_row = [{key: None for key in headers if key is not None}] if any(headers) else []
        return records, header_row

    def raw_value(self, kind: str, raw: str | None) -> Any:
        if kind == "inlineStr":
            return "".join(self.inline) if self.inline is not None else None
        if raw is None:
            return None
        if kind == "s":
            return self.strings[int(raw)]
        if kind == "b":
            return raw == "1"
        if kind in ("str", "e", "d"):
            return raw
        number = float(raw) if any(c in raw for c in ".eE") else int(raw)
        if int(self.cell.get("s", "0")) in self.dates:
            return from_excel(number)
        return number


def _records(headers: list[str | None], rows: list[list[Any]]) -> list[dict[str, Any]]:
    """pyxform's `get_excel_rows` over already-cleaned values: empty rows inside the data are
    kept (row numbers stay right), a run of 60 empty rows ends the sheet, trailing empty rows
    are dropped."""
    columns = [(n, key) for n, key in enumerate(headers) if key is not None]
    adjacent_empty = 0
    result: list[dict[str, Any]] = []
    for values in rows:
        width = len(values)
        record = {key: values[n] for n, key in columns if n < width and values[n] is not None}
        if not record:
            if adjacent_empty == _MAX_ADJACENT_EMPTY_ROWS:
                break
            adjacent_empty += 1
        else:
            adjacent_empty = 0
        result.append(record)
    if adjacent_empty:
        result = result[: len(result) - adjacent_empty]
    return result


def _clean_value(value: Any) -> str | None:
    """pyxform's cell cleaning: strings stripped, empty values None, others as strings."""
    if isinstance(value, str):
        value = value.strip()
    if is_empty(value):
        return None
    return str(xlsx_value_to_str(value))
