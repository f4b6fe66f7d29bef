"""CSV rows whose cells the database already wrote as text.

The general row path (`service.stream_rows`) reads typed values (UUIDs, enumerations, aware
datetimes) through SQLAlchemy's result processors and then turns each into its CSV text in
Python, cell by cell: on the 50k register that was 80-95 % of an export's time. Here the same
SELECT (same joins, scope and filters) is rewritten so that the database returns each plain cell
in exactly the text `formats.write_csv` would have written: UUIDs with dashes, enumeration
codes or their labels, booleans as true/false (是/否, yes/no), dates in ISO form, times as UTC
ISO 8601. Only what needs Python stays in Python: derived cells (region names, memoised),
revealed ciphertexts, JSON documents (parsed from their stored text and rewritten compactly,
memoised), choice lists and decimals (SQLite keeps them as floats).

Used for whole CSV exports (and ZIP members) of datasets read one row per source row;
incremental exports and exploded datasets (visits) keep the general path.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    Uuid,
    case,
    cast,
    false,
    func,
    literal_column,
    true,
    type_coerce,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy import text as sql
from sqlalchemy.exc import CompileError
from sqlalchemy.orm import Session

from server.db import UtcDateTime
from server.exports.columns import HIDDEN, Column, SqlJoin
from server.exports.formats import dumps

_BOOL = {"code": ("true", "false"), "zh": ("是", "否"), "en": ("yes", "no")}
Cell = Callable[[Any], Any]


def _plain(expr: Any, dialect: str) -> Any:
    """`expr` as text without result processing (UUIDs dashed, enumerations as their codes), or
    None when its type needs Python."""
    kind = expr.type
    if isinstance(kind, Uuid):
        if dialect == "postgresql":
            return cast(expr, Text)
        raw = type_coerce(expr, String())
        parts = [func.substr(raw, start, length) for start, length in _UUID_PARTS]
        joined: Any = parts[0]
        for part in parts[1:]:
            joined = joined.op("||")(literal_column("'-'")).op("||")(part)
        return case((raw.is_(None), None), else_=func.lower(joined))
    if isinstance(kind, SAEnum):
        return type_coerce(expr, String())
    if isinstance(kind, String):
        return expr
    return None


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _datetime_text(expr: Any, dialect: str) -> Any:
    """An aware UTC timestamp as Python's `isoformat()` writes it (microseconds only when not 0,
    offset `+00:00`)."""
    if dialect == "postgresql":
        # With the transaction's TimeZone at UTC (csv_text_rows sets it); isoformat() leaves
        # a fraction of 0 out and otherwise writes its six digits.
        whole = func.to_char(expr, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS.US'"))
        text = func.replace(whole, literal_column("'.000000'"), literal_column("''")).op("||")(
            literal_column("'+00:00'")
        )
        return case((expr.is_(None), None), else_=text)
    # SQLite stores `YYYY-MM-DD HH:MM:SS.ffffff` in UTC (server.db.UtcDateTime).
    raw = type_coerce(expr, String())
    fraction = case(
        (func.substr(raw, 21, 6).in_(["", "000000"]), literal_column("''")),
        else_=literal_column("'.'").op("||")(func.substr(raw, 21, 6)),
    )
    text = (
        func.substr(raw, 1, 10)
        .op("||")(literal_column("'T'"))
        .op("||")(func.substr(raw, 12, 8))
        .op("||")(fraction)
        .op("||")(literal_column("'+00:00'"))
    )
    return case((raw.is_(None), None), else_=text)


def _text_cell(
    column: Column, expr: Any, labels: str, reveal: bool, dialect: str, target: str = "csv"
) -> Any:
    """The SQL giving `column`'s CSV text from its source `expr` (`target` "xlsx": its XLSX cell
    value, which is the same text but for booleans, dates, times and numbers, kept typed), or
    None (Python needed)."""
    if target == "xlsx":
        typed = _xlsx_typed_cell(column, expr, dialect)
        if typed is not _TEXT:
            return typed
    if column.cipher and reveal:
        return None
    if column.derive is not None:
        derived = None if column.sql is None else column.sql(expr)
        if isinstance(derived, SqlJoin) and dialect != "postgresql":
            return None  # SQLite: a memoised Python lookup is cheaper than the join per row
        return derived
    kind = column.kind
    if column.sensitive and kind in ("choice", "choices") and not reveal:
        return case((expr.is_(None), None), else_=literal_column(f"'{HIDDEN}'"))
    if kind == "choice":
        plain = _plain(expr, dialect)
        if plain is None or labels == "code" or column.choices is None:
            return plain
        whens = [(plain == member.value, member.label(labels)) for member in column.choices]
        return case(*whens, else_=plain)
    if kind == "boolean":
        yes, no = _BOOL[labels]
        return case((expr == true(), yes), (expr == false(), no), else_=None)
    if kind == "datetime" and isinstance(expr.type, UtcDateTime):
        return _datetime_text(expr, dialect)
    if kind == "date":
        return cast(expr, Text) if dialect == "postgresql" else type_coerce(expr, String())
    if kind == "integer":
        return expr
    if kind == "decimal" and dialect == "postgresql":
        return cast(expr, Text)  # numeric's text is str() of the Decimal psycopg would load
    if kind == "text":
        return _plain(expr, dialect)
    return None  # choices, json, decimal: Python


_TEXT = object()  # _xlsx_typed_cell: the cell is the CSV text


def _xlsx_typed_cell(column: Column, expr: Any, dialect: str) -> Any:
    """The SQL giving an XLSX cell that is not the CSV text: booleans as they are read, dates as
    dates, UTC times as naive datetimes (Excel has no time zones), numbers as numbers; None when
    Python must convert it; `_TEXT` for the other cells (their CSV text)."""
    if column.derive is not None:
        return _TEXT
    kind = column.kind
    if kind == "boolean":
        return None
    if kind == "datetime":
        if not isinstance(expr.type, UtcDateTime):
            return None
        if dialect == "postgresql":
            return type_coerce(func.timezone(literal_column("'UTC'"), expr), DateTime())
        # Stored as `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: read without the UTC decorator.
        return type_coerce(expr, DateTime())
    if kind in ("date", "integer", "decimal"):
        return expr if isinstance(expr.type, (Date, Integer, Numeric)) else None
    return _TEXT


def _json_text(expr: Any, dialect: str) -> Any:
    """A JSON document column read as text: on SQLite as stored (parsed and rewritten compactly
    in Python); on PostgreSQL empty documents as they are and others, whose jsonb text has other
    spacing, behind a `"` (which makes COPY quote them, see `_copy_rows`) for Python to rewrite."""
    if dialect != "postgresql":
        return type_coerce(expr, String())
    return case(
        (expr.is_(None), None),
        (func.jsonb_typeof(expr) == "null", None),
        (expr == literal_column("'{}'::jsonb"), literal_column("'{}'")),
        (expr == literal_column("'[]'::jsonb"), literal_column("'[]'")),
        else_=literal_column("'\"'").op("||")(cast(expr, Text)),
    )


def _pg_json_cell(raw: Any) -> Any:
    if not raw or raw[0] != '"':
        return raw or None
    value = json.loads(raw[1:])
    return None if value is None else dumps(value)


def _memo(cell: Cell) -> Cell:
    """`cell` remembering its results for the first values seen (few distinct values repeat
    over a whole export: village codes, empty documents)."""
    seen: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            out = cell(value)
            if len(seen) < MEMO_SIZE:
                seen[value] = out
            return out
        except TypeError:  # unhashable
            return cell(value)

    return remembered


MEMO_SIZE = 4096


def _json_cell(raw: Any) -> Any:
    value = json.loads(raw) if raw else None
    return None if value is None else dumps(value)


def csv_text_rows(
    session: Session,
    statement: Select[Any],
    columns: tuple[Column, ...],
    labels: str,
    reveal: bool,
    python_cell: Callable[[Column], Cell | None],
    batch: int,
    target: str = "csv",
) -> Iterator[Sequence[Any]]:
    """The rows of `statement` (a dataset's query, one row per output row) as CSV-ready cells in
    `columns` order (`target` "xlsx": XLSX-ready cells, see `_xlsx_typed_cell`).
    `python_cell(column)` gives the Python conversion of a column the database cannot write
    (from its value as the general path reads it)."""
    dialect = session.get_bind().dialect.name
    by_name = {str(c.key): c for c in statement.selected_columns}
    exprs: list[Any] = []
    steps: list[tuple[int, Cell]] = []
    # Whether every Python cell reads text (then PostgreSQL may COPY the rows out as CSV).
    text_only = True
    # A Python step other than rewriting quoted JSON: no row passes as it is.
    every_row = False
    joins: dict[Any, Any] = {}  # outer joins of derived cells (SqlJoin)
    for index, column in enumerate(columns):
        name = column.cipher if (column.cipher and reveal) else column.source_name
        source = by_name[name]
        expr = getattr(source, "element", source)
        text = _text_cell(column, expr, labels, reveal, dialect, target)
        if isinstance(text, SqlJoin):
            joins.setdefault(text.target, text.onclause)
            text = text.value
        if column.kind == "json" and column.derive is None and text is None:
            exprs.append(_json_text(expr, dialect).label(f"c{index}"))
            steps.append((index, _memo(_pg_json_cell if dialect == "postgresql" else _json_cell)))
        elif text is None:
            exprs.append(source.label(f"c{index}") if hasattr(source, "label") else source)
            text_only = text_only and isinstance(expr.type, String)
            cell = python_cell(column)
            if cell is not None:
                every_row = True
                steps.append((index, _memo(cell) if column.derive is not None else cell))
        else:
            exprs.append(text.label(f"c{index}"))
    rewritten = statement.with_only_columns(*exprs, maintain_column_froms=True)
    for joined, onclause in joins.items():
        rewritten = rewritten.outerjoin(joined, onclause)
    if dialect == "postgresql":
        # A server-side cursor is planned for its first rows (nested loops); this one is read
        # to the end: plan it for all of them (hash joins), for this transaction only.
        session.execute(sql("SET LOCAL cursor_tuple_fraction = 1.0"))
        session.execute(sql("SET LOCAL TimeZone = 'UTC'"))
        session.execute(sql("SET LOCAL DateStyle = 'ISO, YMD'"))
        if target == "csv" and text_only and len(columns) > 1:
            copied = _copy_rows(session, rewritten, steps, every_row)
            if copied is not None:
                yield from copied
                return
    result = session.connection().execute(
        rewritten, execution_options={"stream_results": True, "yield_per": batch}
    )
    try:
        for part in result.partitions():
            if not steps:
                yield from part
                continue
            for row in part:
                cells = list(row)
                for index, cell in steps:
                    cells[index] = cell(cells[index])
                yield cells
    finally:
        result.close()


def _copy_rows(
    session: Session, statement: Select[Any], steps: list[tuple[int, Cell]], every_row: bool
) -> Iterator[bytes] | None:
    """PostgreSQL: the rows of `statement` through `COPY (…) TO STDOUT (FORMAT csv)`, as CSV lines
    (bytes, without their line end). A row PostgreSQL wrote without any quote is the line
    `csv.writer` would write (both quote only a field holding a comma, quote or line break;
    PostgreSQL also an empty text) and passes as it is; a row with a quote (and every row when
    `steps` must change a cell: these make their cells quoted, see `_json_text`) is read back
    with the csv module, its steps applied, and written again as `formats.write_csv` would
    (`every_row`: every row is, for steps changing unquoted cells too).
    None when the statement cannot be written with its values inline."""
    try:
        compiled = statement.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
    except (CompileError, NotImplementedError):
        return None
    copy_sql = f"COPY ({compiled}) TO STDOUT (FORMAT csv)"
    dbapi = session.connection().connection.dbapi_connection
    assert dbapi is not None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="")

    def rewrite(line: bytes) -> bytes:
        (cells,) = csv.reader([line.decode()])
        for index, cell in steps:
            cells[index] = cell(cells[index])
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue().encode()

    def lines() -> Iterator[bytes]:
        quote = b'"'
        with dbapi.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            # PostgreSQL sends one row per message, ending in its line feed.
            for block in copy:
                line = bytes(block)[:-1]
                yield rewrite(line) if every_row or quote in line else line

    return lines()
