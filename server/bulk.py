"""Reading and writing thousands of rows at once at the driver level, for the sync hot path.

A push reads and writes every entity of up to a thousand households; converting every value of
every row through SQLAlchemy's result and parameter machinery costs more than the database work.
Here rows travel as plain tuples, and each column's conversion is SQLAlchemy's own for the dialect
(`TableCodec`), applied only to the columns a caller actually reads or writes. New rows go to
PostgreSQL with COPY; the rest is one executemany per statement (pipelined by psycopg). The
statements are plain SQL over the models' table and column names; no value is ever spliced into
SQL text.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, DateTime, Table
from sqlalchemy.engine import Dialect

Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _remembering_last(convert: Convert) -> Convert:
    """`convert`, answering again from memory for the same object as last time: the rows a unit
    of work writes share one timestamp, and formatting it costs more than the rest of a row."""
    last: tuple[Any, Any] = (_same, None)  # (value, converted); a pair, so threads never mix

    def converted(value: Any) -> Any:
        nonlocal last
        seen, result = last
        if seen is not value:
            result = convert(value)
            last = (value, result)
        return result

    return converted


class TableCodec:
    """How one table's columns travel to and from the driver of one dialect: the conversions an
    ORM or Core statement would apply, as one function per column."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table
        self.dialect = dialect
        self.columns = tuple(column.name for column in table.columns)
        self._readers: dict[str, Convert] = {}
        self._writers: dict[str, Convert] = {}
        for column in table.columns:
            writer: Convert = column.type.dialect_impl(dialect).bind_processor(dialect) or _same
            stored_as = getattr(column.type, "impl", column.type)
            if isinstance(stored_as, DateTime) and writer is not _same:
                writer = _remembering_last(writer)
            self._writers[column.name] = writer

    def reader(self, column: str) -> Convert:
        """Driver value → Python value of `column`. Known once `select_in` has read the column
        (some conversions depend on what the driver reports); asking before is an error."""
        reader = self._readers.get(column)
        if reader is None:
            raise LookupError(f"{self.table.name}.{column} has not been read through select_in")
        return reader

    def learn(self, columns: Sequence[str], description: Sequence[Sequence[Any]]) -> None:
        """Build the readers of `columns` from a cursor's description: some conversions depend
        on the type the driver reports (e.g. PostgreSQL numerics)."""
        for name, described in zip(columns, description, strict=True):
            if name not in self._readers:
                implementation = self.table.c[name].type.dialect_impl(self.dialect)
                reader = implementation.result_processor(self.dialect, described[1])
                self._readers[name] = reader or _same

    def writer(self, column: str) -> Convert:
        """Python value → driver value of `column`."""
        return self._writers[column]

    def written(self, columns: Sequence[str], values: Sequence[Any]) -> tuple[Any, ...]:
        """`values` of `columns`, converted for the driver."""
        writers = self._writers
        return tuple(writers[c](v) for c, v in zip(columns, values, strict=True))


# Per engine (its dialect carries the engine's JSON functions), per table.
_codecs: weakref.WeakKeyDictionary[Dialect, dict[str, TableCodec]] = weakref.WeakKeyDictionary()


def codec_for(table: Table, dialect: Dialect) -> TableCodec:
    """The codec of `table` for `dialect`, built once per engine (a pure function of both)."""
    codecs = _codecs.setdefault(dialect, {})
    codec = codecs.get(table.name)
    if codec is None:
        codec = codecs[table.name] = TableCodec(table, dialect)
    return codec


def _is_postgres(codec: TableCodec) -> bool:
    return codec.dialect.name == "postgresql"


def _driver(connection: Connection) -> Any:
    return connection.connection.driver_connection


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Updates sent inside the block are not waited for one by one: on PostgreSQL the server
    works through them (pipeline mode) while Python prepares what comes next, and the end of the
    block waits for all of them (raising the first error). No COPY inside. Nothing on SQLite."""
    if connection.dialect.name != "postgresql":
        yield
        return
    with _driver(connection).pipeline():
        yield


def _placeholder(codec: TableCodec) -> str:
    return "?" if codec.dialect.paramstyle == "qmark" else "%s"


def _membership(codec: TableCodec, column: str, values: list[Any]) -> tuple[str, Any]:
    """A condition `column` ∈ `values` with a single parameter, however many values: an array on
    PostgreSQL, a JSON array on SQLite (both use the column's index)."""
    if _is_postgres(codec):
        return f"{column} = ANY(%s)", values
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(values)


def select_in(
    connection: Connection,
    codec: TableCodec,
    columns: Sequence[str],
    conditions: Sequence[tuple[str, Iterable[Any]]],
) -> list[tuple[Any, ...]]:
    """Raw rows (driver values, in `columns` order) of the codec's table where any of the
    `(column, values)` conditions holds; the values are converted for the driver here."""
    clauses, parameters = [], []
    for column, values in conditions:
        write = codec.writer(column)
        converted = [write(v) for v in values]
        if converted:
            clause, parameter = _membership(codec, column, converted)
            clauses.append(clause)
            parameters.append(parameter)
    if not clauses:
        return []
    statement = f"SELECT {', '.join(columns)} FROM {codec.table.name} WHERE {' OR '.join(clauses)}"
    result = connection.exec_driver_sql(statement, tuple(parameters))
    codec.learn(columns, result.cursor.description)
    return [tuple(row) for row in result.fetchall()]


# Fewer rows than this go as one pipelined executemany, not COPY: COPY takes a round trip more
# (the server must answer the COPY before the rows go), and a small push writes its few rows
# while it holds its households' locks, so every round trip there is waited for by the next writer.
COPY_FROM_ROWS = 50


def insert_rows(
    connection: Connection,
    codec: TableCodec,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    *,
    skip_existing: bool = False,
) -> None:
    """Insert `rows` (driver values in `columns` order): with COPY on PostgreSQL when there are
    more than `COPY_FROM_ROWS`, one executemany otherwise; with `skip_existing`, rows whose key
    is already there are left out (`ON CONFLICT DO NOTHING`, an executemany on both)."""
    if not rows:
        return
    names = ", ".join(columns)
    if _is_postgres(codec) and not skip_existing and len(rows) > COPY_FROM_ROWS:
        cursor = _driver(connection).cursor()
        with cursor, cursor.copy(f"COPY {codec.table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join(_placeholder(codec) for _ in columns)
    suffix = " ON CONFLICT DO NOTHING" if skip_existing else ""
    statement = f"INSERT INTO {codec.table.name} ({names}) VALUES ({marks}){suffix}"
    connection.exec_driver_sql(statement, rows)


def update_rows(
    connection: Connection,
    codec: TableCodec,
    columns: Sequence[str],
    key: str,
    rows: list[tuple[Any, ...]],
) -> None:
    """Set `columns` of the rows whose `key` matches, one executemany (psycopg pipelines it;
    inside `pipelined`, without waiting for it): each row holds driver values for `columns`
    followed by the key's."""
    if not rows:
        return
    mark = _placeholder(codec)
    assignments = ", ".join(f"{column} = {mark}" for column in columns)
    statement = f"UPDATE {codec.table.name} SET {assignments} WHERE {key} = {mark}"
    _execute_many(connection, codec, statement, rows)


def add_to_rows(
    connection: Connection,
    codec: TableCodec,
    column: str,
    key: str,
    rows: list[tuple[Any, ...]],
) -> None:
    """Add an amount to `column` of the rows whose `key` matches (`column = column + n`, read and
    written under the row's lock by the database, so concurrent additions all count), one
    executemany like `update_rows`: each row holds the driver values of the amount and the key."""
    if not rows:
        return
    mark = _placeholder(codec)
    statement = f"UPDATE {codec.table.name} SET {column} = {column} + {mark} WHERE {key} = {mark}"
    _execute_many(connection, codec, statement, rows)


def _execute_many(
    connection: Connection, codec: TableCodec, statement: str, rows: list[tuple[Any, ...]]
) -> None:
    if _is_postgres(codec):  # psycopg's executemany: pipelined, and inside `pipelined` not waited
        with _driver(connection).cursor() as cursor:
            cursor.executemany(statement, rows)
        return
    connection.exec_driver_sql(statement, rows)
