"""A fast reader of an .xlsx XLSForm's sheets into pyxform's `DefinitionData`, with the same
rules as pyxform's own `xlsx_to_dict` (header cleaning, runs of empty rows and columns, cell
values as strings) but without openpyxl's per-cell objects: pyxform's reader spends ~90 µs a cell
in openpyxl, seconds for a 5,000-row choices sheet.

Only the sheets pyxform reads are parsed (survey, choices, settings, entities, external_choices,
osm; or the only sheet). `read_xlsx` returns None for anything it does not expect (the caller
then uses pyxform's reader), so correctness never depends on it.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from defusedxml.ElementTree import iterparse  # type: ignore[import-untyped]
from openpyxl.utils.datetime import from_excel
from pyxform import constants
from pyxform.xls2json_backends import (
    DefinitionData,
    get_excel_column_headers,
    get_excel_rows,
    is_empty,
    xlsx_value_to_str,
)

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_COLUMN = re.compile(r"([A-Z]+)")
_DATE_FORMAT_IDS = frozenset({*range(14, 23), 45, 46, 47})
_DATE_CODE = re.compile(r"[dmyhs]", re.IGNORECASE)
_QUOTED_OR_COLOUR = re.compile(r'"[^"]*"|\[[^\]]*\]')


class _Cell:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def read_xlsx(content: bytes) -> DefinitionData | None:
    """The workbook's sheets as pyxform reads them, or None when this reader is not sure."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return _read(archive)
    except Exception:  # anything unexpected: pyxform's reader decides
        return None


def _read(archive: zipfile.ZipFile) -> DefinitionData | None:
    names = set(archive.namelist())
    sheets = _sheet_paths(archive)
    if sheets is None:
        return None
    strings = _shared_strings(archive) if "xl/sharedStrings.xml" in names else []
    dates = _date_styles(archive) if "xl/styles.xml" in names else frozenset()
    result: dict[str, Any] = {"sheet_names": [title for title, _ in sheets]}
    for title, path in sheets:
        key = title.lower()
        if key not in constants.SUPPORTED_SHEET_NAMES:
            if len(sheets) == 1:
                key = constants.SURVEY
            else:
                continue
        if path not in names:
            return None
        rows, header = _sheet(archive, path, strings, dates)
        result[key] = rows
        result[f"{key}_header"] = header
    return DefinitionData(**result)


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


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    strings: list[str] = []
    with archive.open("xl/sharedStrings.xml") as source:
        for _, element in iterparse(source):
            if element.tag == f"{_MAIN}si":
                # Rich text: the runs' texts; phonetic runs (rPh) are not part of the value.
                parts = [
                    t.text or ""
                    for t in element.iter(f"{_MAIN}t")
                    if not _inside_phonetic(element, t)
                ]
                strings.append("".join(parts))
                element.clear()
    return strings


def _inside_phonetic(si: Any, t: Any) -> bool:
    return any(t in list(ph.iter()) for ph in si.findall(f"{_MAIN}rPh"))


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


def _column_index(reference: str) -> int:
    letters = _COLUMN.match(reference)
    assert letters is not None
    index = 0
    for char in letters.group(1):
        index = index * 26 + ord(char) - 64
    return index - 1


def _sheet(
    archive: zipfile.ZipFile, path: str, strings: list[str], dates: frozenset[int]
) -> tuple[list[dict[str, Any]], list[dict[str, None]]]:
    rows: list[list[_Cell]] = []
    with archive.open(path) as source:
        expected_row = 1
        for _, element in iterparse(source):
            if element.tag != f"{_MAIN}row":
                continue
            number = int(element.get("r", expected_row))
            while expected_row < number:  # rows absent from the XML are empty rows
                rows.append([])
                expected_row += 1
            cells: list[_Cell] = []
            position = 0
            for cell in element.iter(f"{_MAIN}c"):
                reference = cell.get("r")
                index = _column_index(reference) if reference else position
                while len(cells) < index:
                    cells.append(_Cell(None))
                cells.append(_Cell(_value(cell, strings, dates)))
                position = index + 1
            rows.append(cells)
            expected_row = number + 1
            element.clear()
    if not rows:
        return [], []
    headers = get_excel_column_headers(first_row=(c.value for c in rows[0]))
    records = get_excel_rows(headers=headers, rows=rows[1:], cell_func=_clean)
    header_row = [{key: None for key in headers if key is not None}] if any(headers) else []
    return records, header_row


def _clean(cell: _Cell, row_n: int, col_key: str) -> str | None:
    value = cell.value
    if isinstance(value, str):
        value = value.strip()
    if not is_empty(value):
        return str(xlsx_value_to_str(value))
    return None


def _value(cell: Any, strings: list[str], dates: frozenset[int]) -> Any:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        node = cell.find(f"{_MAIN}is")
        return "".join(t.text or "" for t in node.iter(f"{_MAIN}t")) if node is not None else None
    raw = cell.findtext(f"{_MAIN}v")
    if raw is None:
        return None
    if kind == "s":
        return strings[int(raw)]
    if kind == "b":
        return raw == "1"
    if kind in ("str", "e"):
        return raw
    if kind == "d":
        return raw
    number = float(raw) if any(c in raw for c in ".eE") else int(raw)
    if int(cell.get("s", "0")) in dates:
        return from_excel(number)
    return number
