"""Reading and writing thousands of rows at once at the driver level, for the sync hot path.

A push reads and writes every entity of up to a thousand households; converting every value of
every row through SQLAlchemy's result and parameter machinery costs more than the database work.
Here rows travel as plain tuples, and each column's conversion is SQLAlchemy's own for the dialect
(`TableCodec`), applied only to the columns a caller actually reads or writes. On PostgreSQL many
rows go in one statement, as one array per column (`unnest`); on SQLite, as one executemany. The
statements are plain SQL over the models' table and column names; no value is ever spliced into
SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


class TableCodec:
    """How one table's columns travel to and from the driver of one dialect: the conversions an
    ORM or Core statement would apply, as one function per column."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table
        self.dialect = dialect
        self.columns = tuple(column.name for column in table.columns)
        self._readers: dict[str, Convert] = {}
        self._sql_types: dict[str, str] = {}
        self._writers = {
            column.name: column.type.dialect_impl(dialect).bind_processor(dialect) or _same
            for column in table.columns
        }

    def reader(self, column: str) -> Convert:
        """Driver value → Python value of `column` (known once the column has been selected)."""
        return self._readers[column]

    def sql_type(self, column: str) -> str:
        """The column's type as the database spells it (for casts)."""
        spelled = self._sql_types.get(column)
        if spelled is None:
            spelled = self._sql_types[column] = self.table.c[column].type.compile(
                dialect=self.dialect
            )
        return spelled

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


_codecs: dict[tuple[str, str, str], TableCodec] = {}


def codec_for(table: Table, dialect: Dialect) -> TableCodec:
    """The codec of `table` for `dialect`, built once per process (a pure function of both)."""
    key = (table.name, dialect.name, dialect.driver)
    codec = _codecs.get(key)
    if codec is None:
        codec = _codecs[key] = TableCodec(table, dialect)
    return codec


def _placeholder(dialect: Dialect) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _is_postgres(codec: TableCodec) -> bool:
    return codec.dialect.name == "postgresql"


def _unnest(codec: TableCodec, columns: Sequence[str]) -> str:
    """PostgreSQL: `unnest(%s::T1[], …) AS v(c1, …)`, a relation of rows passed as one array
    per column; one statement sends them all (executemany would send one per row)."""
    arrays = ", ".join(f"%s::{codec.sql_type(column)}[]" for column in columns)
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def _by_column(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(list(values) for values in zip(*rows, strict=True))


def _membership(dialect: Dialect, column: str, values: Iterable[Any]) -> tuple[str, Any]:
    """A condition `column` ∈ `values` with a single parameter, however many values: an array on
    PostgreSQL, a JSON array on SQLite (both use the column's index)."""
    if dialect.name == "postgresql":
        return f"{column} = ANY(%s)", list(values)
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def select_in(
    connection: Connection,
    codec: TableCodec,
    columns: Sequence[str],
    conditions: Sequence[tuple[str, Iterable[Any]]],
) -> list[tuple[Any, ...]]:
    """Raw rows (driver values, in `columns` order) of the codec's table where any of the
    `(column, values)` conditions holds; the values are converted for the driver here."""
    dialect = codec.dialect
    clauses, parameters = [], []
    for column, values in conditions:
        write = codec.writer(column)
        converted = [write(v) for v in values]
        if not converted:
            continue
        clause, parameter = _membership(dialect, column, converted)
        clauses.append(clause)
        parameters.append(parameter)
    if not clauses:
        return []
    statement = f"SELECT {', '.join(columns)} FROM {codec.table.name} WHERE {' OR '.join(clauses)}"
    result = connection.exec_driver_sql(statement, tuple(parameters))
    codec.learn(columns, result.cursor.description)
    return [tuple(row) for row in result.fetchall()]


def insert_rows(
    connection: Connection,
    codec: TableCodec,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    *,
    skip_existing: bool = False,
) -> None:
    """Insert `rows` (driver values in `columns` order) in one statement (PostgreSQL) or one
    executemany (SQLite); with `skip_existing`, rows whose key is already there are left out
    (`ON CONFLICT DO NOTHING`)."""
    if not rows:
        return
    into = f"INSERT INTO {codec.table.name} ({', '.join(columns)})"
    suffix = " ON CONFLICT DO NOTHING" if skip_existing else ""
    if _is_postgres(codec):
        statement = f"{into} SELECT {', '.join(columns)} FROM {_unnest(codec, columns)}{suffix}"
        connection.exec_driver_sql(statement, _by_column(rows))
        return
    marks = ", ".join(_placeholder(codec.dialect) for _ in columns)
    connection.exec_driver_sql(f"{into} VALUES ({marks}){suffix}", rows)


def update_rows(
    connection: Connection,
    codec: TableCodec,
    columns: Sequence[str],
    key: str,
    rows: list[tuple[Any, ...]],
) -> None:
    """Set `columns` of the rows whose `key` matches, in one statement (PostgreSQL) or one
    executemany (SQLite): each row holds driver values for `columns` followed by the key's. Keys
    must be unique among `rows`."""
    if not rows:
        return
    table = codec.table.name
    if _is_postgres(codec):
        assignments = ", ".join(f"{column} = v.{column}" for column in columns)
        statement = (
            f"UPDATE {table} SET {assignments} FROM {_unnest(codec, (*columns, key))} "
            f"WHERE {table}.{key} = v.{key}"
        )
        connection.exec_driver_sql(statement, _by_column(rows))
        return
    mark = _placeholder(codec.dialect)
    assignments = ", ".join(f"{column} = {mark}" for column in columns)
    connection.exec_driver_sql(f"UPDATE {table} SET {assignments} WHERE {key} = {mark}", rows)
