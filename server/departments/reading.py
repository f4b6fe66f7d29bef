"""Reading a department's file (CSV in UTF-8, UTF-8 with BOM or GB18030/GBK, or XLSX) into rows
through its source's mapping. Pure: no Flask, no database. Every problem is located (row number,
column) and every one is collected before the file is refused as a whole; identity numbers appear
in errors masked only, never in clear.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from server.departments.mapping import DATE_FORMATS, ColumnMapping, fact_value
from server.sensitive import mask_id_number, normalize_id_number

# Larger files are refused before they are read: a department list of a county is a few MB.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_REPORTED_ERRORS = 50
ID_NUMBER_RE = re.compile(r"[0-9]{17}[0-9X]|[0-9]{15}")
_ZIP_MAGIC = b"PK\x03\x04"


class _TooManyErrors(Exception):
    pass


class FileRefused(Exception):
    """A file that cannot be imported; `errors` are `{path, code, message}` items, `path` saying
    where (`file`, `header`, `row 12`, `row 12: 参保状态`)."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class FileRow(NamedTuple):
    """One row as read (a named tuple: a file has hundreds of thousands of them)."""

    row: int  # 1-based line of the file (the header is row 1)
    id_number: str  # normalised; callers hash it and never keep it
    as_of: date | None
    values: dict[str, bool | Decimal | str]  # fact code → value


def _refuse(message: str, path: str, code: str = "invalid_value") -> FileRefused:
    return FileRefused(message, [{"path": path, "code": code, "message": message}])


def read_rows(content: bytes, mapping: ColumnMapping) -> list[FileRow]:
    """Every row of `content` as the mapping reads it, or FileRefused (nothing partial)."""
    if len(content) > MAX_FILE_BYTES:
        raise FileRefused(
            f"the file is {len(content)} bytes; at most {MAX_FILE_BYTES} are imported",
            [
                {
                    "path": "file",
                    "code": "too_large",
                    "message": f"larger than {MAX_FILE_BYTES} bytes",
                }
            ],
        )
    if not content.strip():
        raise _refuse("the file is empty", "file")
    if content.startswith(_ZIP_MAGIC):
        return _read_table(_xlsx_rows(content, mapping), mapping)
    if b"\x00" in content[:65536]:
        raise _refuse("the file is neither CSV text nor an XLSX workbook", "file", "invalid_type")
    return _read_table(_csv_rows(_decode(content, mapping.encoding)), mapping)


def _decode(content: bytes, encoding: str) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        content, encoding = content[3:], "utf-8"
    tried = ("utf-8", "gb18030") if encoding == "auto" else (encoding,)
    for name in tried:
        try:
            return content.decode(name)
        except UnicodeDecodeError as exc:
            failure = exc
    line = content.count(b"\n", 0, failure.start) + 1
    message = (
        f"the file is not {' or '.join(tried)} text: undecodable bytes at row {line} "
        f"(byte {failure.start})"
    )
    raise FileRefused(
        message, [{"path": f"row {line}", "code": "invalid_value", "message": message}]
    )


def _csv_rows(text: str) -> Iterator[tuple[int, Sequence[str]]]:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:4096].split("\n", 1)[0], delimiters=",\t;"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        for record in reader:
            yield reader.line_num, record
    except csv.Error as exc:
        raise _refuse(
            f"not valid CSV at row {reader.line_num}: {exc}", f"row {reader.line_num}"
        ) from exc


def _xlsx_rows(content: bytes, mapping: ColumnMapping) -> Iterator[tuple[int, Sequence[str]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise _refuse(
            f"not a readable XLSX workbook: {type(exc).__name__}", "file", "invalid_type"
        ) from exc
    try:
        sheet: Any
        if mapping.sheet is not None:
            if mapping.sheet not in book.sheetnames:
                raise _refuse(f"the workbook has no sheet {mapping.sheet!r}", "sheet")
            sheet = book[mapping.sheet]
        else:
            sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell_text(v) for v in values]
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_table(
    records: Iterable[tuple[int, Sequence[str]]], mapping: ColumnMapping
) -> list[FileRow]:
    iterator = iter(records)
    header_row: Sequence[str] | None = None
    for _number, record in iterator:
        if any(cell.strip() for cell in record):
            header_row = record
            break
    if header_row is None:
        raise _refuse("the file has no header row", "header")
    header = [cell.strip() for cell in header_row]
    while header and not header[-1]:
        header.pop()
    position = {name: index for index, name in reversed(list(enumerate(header)))}
    missing = [name for name in mapping.required_columns() if name not in position]
    if missing:
        raise FileRefused(
            f"the header lacks mapped columns: {', '.join(missing)}",
            [
                {
                    "path": f"header: {name}",
                    "code": "required",
                    "message": f"column {name!r} is mapped but not in the file",
                }
                for name in missing
            ],
        )
    id_at = position[mapping.id_number]
    date_at = position[mapping.date] if mapping.date is not None else None
    fact_at = [
        (column, position[column.column] if column.column is not None else None)
        for column in mapping.facts
    ]
    width = len(header)
    errors: list[dict[str, str]] = []
    rows: list[FileRow] = []
    date_cache: dict[str, date] = {}

    def problem(path: str, message: str) -> None:
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append({"path": path, "code": "invalid_value", "message": message})
        else:
            raise _TooManyErrors

    try:
        for number, record in iterator:
            if len(record) < width:
                if not any(cell.strip() for cell in record):
                    continue  # a blank line
                problem(
                    f"row {number}",
                    f"{len(record)} fields where the header has {width} (a truncated row?)",
                )
                continue
            id_number = normalize_id_number(record[id_at])
            if not ID_NUMBER_RE.fullmatch(id_number):
                shown = mask_id_number(id_number) if id_number else "empty"
                problem(f"row {number}: {mapping.id_number}", f"not an identity number ({shown})")
                continue
            as_of = None
            if date_at is not None:
                text = record[date_at].strip()
                if text:
                    as_of = date_cache.get(text)
                    if as_of is None:
                        as_of = _parse_date(text, mapping.date_format)
                        if as_of is None:
                            problem(f"row {number}: {mapping.date}", f"not a date: {text[:20]!r}")
                            continue
                        date_cache[text] = as_of
            values: dict[str, bool | Decimal | str] = {}
            bad = False
            for column, at in fact_at:
                if at is None:
                    assert column.constant is not None
                    values[column.spec.code] = column.constant
                    continue
                text = record[at].strip()
                if not text:
                    continue  # the list says nothing about this fact for this person
                try:
                    values[column.spec.code] = fact_value(column, text)
                except ValueError as exc:
                    problem(f"row {number}: {column.column}", str(exc))
                    bad = True
            if not bad:
                rows.append(FileRow(number, id_number, as_of, values))
    except _TooManyErrors:
        pass
    if errors:
        more = "" if len(errors) < MAX_REPORTED_ERRORS else f" (the first {MAX_REPORTED_ERRORS})"
        raise FileRefused(
            f"the file has {len(errors)} bad rows{more}; nothing was imported", errors
        )
    return rows


def _parse_date(text: str, date_format: str | None) -> date | None:
    for candidate in (date_format,) if date_format else DATE_FORMATS:
        try:
            return datetime.strptime(text[:10] if not date_format else text, candidate).date()
        except ValueError:
            continue
    return None
