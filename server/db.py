"""Database plumbing: the declarative base with its naming convention, column types shared by the
models, the engine setup for SQLite and PostgreSQL, and the unit of work — the only place that
commits. Services receive a session and flush; they never commit.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    DateTime,
    Engine,
    MetaData,
    Uuid,
    any_,
    create_engine,
    event,
    exc,
    literal,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from server import json_codec

try:
    import fcntl
except ImportError:  # not a POSIX system: SQLite's own waiting is all there is
    fcntl = None  # type: ignore[assignment]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JsonDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite forgets the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_type(enum_cls: type[Enum], name: str) -> SAEnum:
    """Store an enumeration by its code in a VARCHAR with a CHECK constraint (portable, and adding a
    member is a constraint change rather than a type migration)."""
    return SAEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it once, at class creation)
        datetime: UtcDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JsonDocument,
        list[Any]: JsonDocument,
    }


def upsert_insert(session: Session, model: Any) -> postgresql.Insert | sqlite.Insert:
    """`INSERT` into `model` in the session's own dialect, whose `on_conflict_do_nothing` and
    `on_conflict_do_update` the two databases spell alike."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def among(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`, spelled for the database: on PostgreSQL `= ANY(array)` with the values
    as one parameter — the statement's text is then the same however many values there are, so
    the server parses and plans it once per connection (an IN list of a thousand parameters is a
    new statement each time, and costs more to build and plan than the lookup itself);
    elsewhere an IN list. For a filter of many thousands of ids beside joins, PostgreSQL checks
    `= ANY` element by element: join the unnested array instead (`warnings.set_based` does)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(ColumnElement[bool], column == any_(literal(list(values), ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(list(values)))


# PostgreSQL's SQLSTATEs for a transaction it ended so that another could go on: a deadlock it
# broke, or a serialisation failure. Nothing of it was applied; run again, it will go through.
_RETRYABLE_STATES = frozenset({"40P01", "40001"})


def is_retryable(error: exc.DBAPIError) -> bool:
    """Whether the database ended the transaction only to break a deadlock (or a serialisation
    conflict): the same work, run again from the start, is expected to succeed."""
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE_STATES


def utcnow() -> datetime:
    return datetime.now(UTC)


class WriterQueue:
    """SQLite writers of one database file, taking turns in order.

    SQLite lets one transaction write at a time, and a writer that finds the database locked
    polls it with growing sleeps (up to 100 ms each), so its turn often starts long after the
    previous writer finished: two workers pushing at once lost a sixth of their throughput to
    it. Here a writer first waits for an exclusive `flock` on a companion file, which the kernel
    hands over the moment it is released, to a thread of this process or of any other. A thread
    already holding the turn (a nested unit of work) is not made to wait for itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held = threading.local()

    @contextmanager
    def turn(self) -> Iterator[None]:
        depth: int = getattr(self._held, "depth", 0)
        if depth or fcntl is None:
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth = depth
            return
        with self.path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)


class Database:
    """One engine and session factory per app. Never connects at construction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.kind = "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        self._writer_queue: WriterQueue | None = None
        if self.kind == "sqlite" and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self._writer_queue = WriterQueue(Path(f"{self.url.database}-writers"))
        self.engine = _make_engine(url, self.kind, echo=echo)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # The same pool, each connection in autocommit while checked out (see `autocommit_reads`).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def autocommit_reads(self) -> Iterator[Session]:
        """A session for reads that need no transaction around them: one statement (every
        request's token check), or reads written for each statement to see the database as it is
        when that statement starts — what PostgreSQL's READ COMMITTED gives inside a transaction
        too (a pull page). On PostgreSQL its statements run in autocommit, which spares the BEGIN
        and the COMMIT, two round trips per request. On SQLite (no round trips, and a transaction
        there is one snapshot) it is a read unit of work. Nothing written here is atomic."""
        if self.kind != "postgresql":
            with self.unit_of_work(write=False) as session:
                yield session
            return
        session = Session(self._autocommit, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[Session]:
        """A session inside one transaction, committed once when the block ends without error.

        An exception rolls everything back, except an `AppError` whose `keeps_changes` is true
        (e.g. a refused login must still count as an attempt): that one commits, then propagates.
        `write=True` takes SQLite's write lock up front (BEGIN IMMEDIATE) so that two writers
        never deadlock upgrading a read lock, after waiting its turn in the `WriterQueue`;
        PostgreSQL ignores it.
        """
        from server.errors import AppError

        queue = self._writer_queue if write else None
        with queue.turn() if queue is not None else nullcontext():
            session = self.sessionmaker()
            try:
                if write and self.kind == "sqlite":
                    session.connection(execution_options={"fieldsync_write": True})
                yield session
                session.commit()
            except AppError as exc:
                if exc.keeps_changes:
                    session.commit()
                else:
                    session.rollback()
                raise
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def dispose(self) -> None:
        self.engine.dispose()


# Connections each process keeps open: one per request it serves at once (gunicorn.conf.py's
# threads) and a few spare, so that no request pays for opening one (and, on SQLite, for its
# pragmas). Beyond it, up to POOL_OVERFLOW more are opened for a burst and closed after use.
POOL_SIZE = 10
POOL_OVERFLOW = 10
# A pooled PostgreSQL connection is tested (a "ping" round trip) before use only when it has lain
# unused for this long: one used a moment ago is alive but for a server restart in between, and
# a request then fails once and the pool starts afresh. Pinging on every checkout cost a round
# trip per unit of work: two on most requests, which is a sixth of a small one.
PING_AFTER_IDLE_S = 5.0


def _make_engine(url: str, kind: str, *, echo: bool) -> Engine:
    json_options: dict[str, Any] = {
        "json_serializer": json_codec.dumps,
        "json_deserializer": json_codec.loads,
    }
    if kind != "sqlite":
        engine = create_engine(
            url, echo=echo, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, **json_options
        )
        _ping_when_idle(engine)
        return engine

    if make_url(url).database not in (None, "", ":memory:"):
        json_options.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30}, **json_options)

    @event.listens_for(engine, "connect")
    def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (the documented
        # recipe for correct SQLite transactions), then set the pragmas we rely on.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("fieldsync_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping`, for connections idle for `PING_AFTER_IDLE_S` or more only: a dead one
    invalidates the pool (as pre-ping does) and the checkout is retried on a new connection."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.InvalidatePoolError(f"connection found dead before use: {error}") from error
