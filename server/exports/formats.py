"""Writers: each turns a stream of cell lists (in the columns' order) into the bytes of one
format, chunk by chunk. CSV and JSON Lines stream as they go; XLSX is written by openpyxl's
write-only mode (its rows never held in memory), its sheet streamed into the ZIP as it grows;
a ZIP bundle streams one CSV member after another."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from server.exports.columns import Column

FORMATS = ("csv", "xlsx", "jsonl", "zip")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "zip": "application/zip",
}
BOM = codecs.BOM_UTF8
# Rows written before the buffered text is handed on as one chunk.
CHUNK_ROWS = 500
# XLSX rows appended before the sheet's new XML is compressed and handed on.
XLSX_CHUNK_ROWS = 2000
# Data rows of one XLSX sheet: Excel's 1,048,576 rows less the header.
XLSX_SHEET_ROWS = 1_048_575
_BOOL = {"code": ("true", "false"), "zh": ("是", "否"), "en": ("yes", "no")}


def json_value(value: Any) -> Any:
    """A cell as JSON: Decimal as a number, dates and times as ISO 8601."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=json_value)


def csv_cell(column: Column, labels: str) -> Callable[[Any], Any] | None:
    kind = column.kind
    if kind == "boolean":
        yes, no = _BOOL[labels]
        return lambda v: None if v is None else (yes if v else no)
    if kind == "datetime":
        return lambda v: None if v is None else _utc(v).isoformat()
    if kind == "choices":
        return lambda v: None if v is None else ";".join(str(x) for x in v)
    if kind == "json":
        return lambda v: None if v is None else dumps(v)
    return None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _converter(cells: list[Callable[[Any], Any] | None]) -> Callable[[list[Any]], list[Any]]:
    pairs = [(i, f) for i, f in enumerate(cells) if f is not None]
    if not pairs:
        return lambda row: row

    def convert(row: list[Any]) -> list[Any]:
        for i, f in pairs:
            row[i] = f(row[i])
        return row

    return convert


def csv_converter(columns: tuple[Column, ...], labels: str) -> Callable[[list[Any]], list[Any]]:
    """Turns a row of cell values (as `service.stream_rows` gives them) into its CSV texts."""
    return _converter([csv_cell(c, labels) for c in columns])


def headers(columns: tuple[Column, ...], header: str) -> list[str]:
    return [c.header(header) for c in columns]


def write_csv(
    columns: tuple[Column, ...],
    rows: Iterable[Any],
    *,
    labels: str = "code",
    header: str = "code",
    bom: bool = False,
    prepared: bool = False,
) -> Iterator[bytes]:
    """CSV of `rows`; `prepared`: their cells are CSV texts already, or the rows are whole CSV
    lines as bytes without their line end (`service.stream_csv_rows`), written as they are."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers(columns, header))
    head = buffer.getvalue().encode()
    yield (BOM + head) if bom else head
    buffer.seek(0)
    buffer.truncate()
    stream: Iterator[Any] = iter(rows) if prepared else map(csv_converter(columns, labels), rows)
    first = next(stream, None)
    if first is None:
        return
    stream = itertools.chain([first], stream)
    if isinstance(first, bytes):  # CSV lines written already (service.stream_csv_rows)
        while True:
            lines = b"\r\n".join(itertools.islice(stream, CHUNK_ROWS))
            if not lines:
                return
            yield lines + b"\r\n"
    writerows = writer.writerows
    while True:
        # The csv module iterates the chunk's rows itself (no Python loop per row); every row
        # writes at least its line end, so an empty buffer means the rows have run out.
        writerows(itertools.islice(stream, CHUNK_ROWS))
        data = buffer.getvalue()
        if not data:
            return
        yield data.encode()
        buffer.seek(0)
        buffer.truncate()


def _json_cells(columns: tuple[Column, ...]) -> Callable[[list[Any]], list[Any]]:
    return _converter([None for _ in columns])


def write_jsonl(
    columns: tuple[Column, ...], rows: Iterable[list[Any]], *, header: str = "code"
) -> Iterator[bytes]:
    keys = headers(columns, header)
    lines: list[str] = []
    for row in rows:
        lines.append(dumps(dict(zip(keys, row, strict=True))))
        if len(lines) == CHUNK_ROWS:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def xlsx_cell(column: Column, labels: str) -> Callable[[Any], Any] | None:
    """The function turning a cell value (as `service.stream_rows` gives it) into what openpyxl
    writes for it (None: the value as it is)."""
    kind = column.kind
    if kind == "datetime":
        # Excel has no time zones: times are written in UTC (the header says so in docs).
        return lambda v: None if v is None else _utc(v).replace(tzinfo=None)
    if kind == "date":
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    if kind in ("integer", "decimal"):
        return lambda v: _number(v)
    if kind == "boolean":
        return None
    if kind == "choices":
        return lambda v: None if v is None else ";".join(str(x) for x in v)
    if kind == "json":
        return lambda v: None if v is None else dumps(v)
    return lambda v: v if v is None or isinstance(v, str) else str(v)


def xlsx_converter(columns: tuple[Column, ...], labels: str) -> Callable[[list[Any]], list[Any]]:
    """Turns a row of cell values (as `service.stream_rows` gives them) into its XLSX cells."""
    return _converter([xlsx_cell(c, labels) for c in columns])


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


class _Drain(io.RawIOBase):
    """A write-only, unseekable stream whose written bytes are collected for the next chunk:
    zipfile then writes data descriptors and never seeks back."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


def _legend(book: Any, described: list[tuple[str, Column]]) -> None:
    legend = book.create_sheet(title="columns")
    legend.append(["sheet", "code", "中文", "English", "type", "sensitive"])
    for title, column in described:
        legend.append([title, column.name, column.zh, column.en, column.kind, column.sensitive])


class _Package(zipfile.ZipFile):
    """The workbook's ZIP, written into an unseekable drain, whose data sheets are streamed into
    it before openpyxl writes the other parts (`ExcelWriter` would copy those sheets in once
    more: the copies are left out)."""

    def __init__(self, drain: _Drain) -> None:
        super().__init__(drain, "w", compression=zipfile.ZIP_DEFLATED)
        self.streamed: set[str] = set()
        self.skipped: set[str] = set()

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        if arcname in self.streamed:
            self.skipped.add(arcname)
            return
        super().write(filename, arcname, *args, **kwargs)


def _sheet_title(title: str, number: int) -> str:
    """Sheet `number` (from 1) of a dataset: its name, then `name (2)`… (31 characters at most)."""
    if number == 1:
        return title[:31]
    suffix = f" ({number})"
    return title[: 31 - len(suffix)] + suffix


def write_xlsx(
    title: str,
    columns: tuple[Column, ...],
    rows: Iterable[list[Any]],
    *,
    labels: str = "code",
    header: str = "zh",
    prepared: bool = False,
) -> Iterator[bytes]:
    """A workbook with the sheet `title` holding `rows` (continued on `title (2)`, … past
    `XLSX_SHEET_ROWS`, Excel's limit), plus a sheet `columns` giving each column's code, Chinese
    and English headers and type; `prepared`: the rows' cells are XLSX cells already
    (`service.stream_xlsx_rows`).

    Streamed as it is written: openpyxl's write-only sheet writes its XML into a temporary file,
    whose new bytes go into the (deflated) sheet member of the ZIP after every `XLSX_CHUNK_ROWS`
    rows and on to the client. So the body starts at once and a client that goes away (the
    generator is closed) ends the reading of rows, as with CSV. Sheet members have a data
    descriptor and no ZIP64 record (Excel warns about those), so one sheet's XML must stay under
    2 GiB: at Excel's row limit, about 2 KB of XML a row."""
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    book = Workbook(write_only=True)
    drain = _Drain()
    package = _Package(drain)
    stream: Iterator[Any] = iter(rows) if prepared else map(xlsx_converter(columns, labels), rows)
    sheet: Any = None
    spool: Path | None = None
    try:
        more = True
        while more:
            number = len(book.worksheets) + 1
            sheet = book.create_sheet(title=_sheet_title(title, number))
            sheet.append(headers(columns, header))
            # openpyxl's temporary file of this sheet's XML (its write-only writer exists once a
            # row is appended), and the part name openpyxl gives the sheet at this position.
            spool = Path(sheet._writer.out)
            name = f"xl/worksheets/sheet{number}.xml"
            package.streamed.add(name)
            with spool.open("rb") as tail, package.open(name, "w") as member:
                append = sheet.append
                left = XLSX_SHEET_ROWS
                while left:
                    written = 0
                    for row in itertools.islice(stream, min(XLSX_CHUNK_ROWS, left)):
                        append(row)
                        written += 1
                    if not written:
                        more = False
                        break
                    left -= written
                    member.write(tail.read())
                    if drain.parts:
                        yield drain.take()
                sheet.close()
                member.write(tail.read())
            if more:  # the sheet is full: is there a row for the next one?
                first = next(stream, None)
                if first is None:
                    more = False
                else:
                    stream = itertools.chain([first], stream)
            yield drain.take()
        _legend(book, [(title, c) for c in columns])
        ExcelWriter(book, package).save()
        if package.skipped != package.streamed:
            raise RuntimeError("openpyxl did not name the data sheets as expected")
        yield drain.take()
    except GeneratorExit:
        if sheet is not None and not sheet.closed:
            sheet.close()  # ends openpyxl's writer of the sheet before its file goes
        raise
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # a client gone away: end the rows' query now
        for written_sheet in book.worksheets:
            writer = getattr(written_sheet, "_writer", None)
            if writer is not None:
                Path(writer.out).unlink(missing_ok=True)


def write_zip(
    members: Iterable[tuple[str, Iterable[bytes]]],
) -> Iterator[bytes]:
    """A ZIP of the named byte streams, streamed as it is written."""
    drain = _Drain()
    with zipfile.ZipFile(drain, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, chunks in members:
            with archive.open(name, "w", force_zip64=True) as member:
                for data in chunks:
                    member.write(data)
                    if len(drain.parts) > 16:
                        yield drain.take()
            yield drain.take()
    yield drain.take()
