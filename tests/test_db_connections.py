"""Pooled PostgreSQL connections: tested before use only after lying idle (`PING_AFTER_IDLE_S`),
and the token check's one statement runs outside any transaction (`Database.autocommit_reads`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc, text

from server import db as db_module
from server.app import create_app
from server.db import Database
from server.runtime import Runtime
from server.users.models import Role
from server.users.service import create_user
from tests.conftest import PASSWORD, cheap_settings

pytestmark = pytest.mark.postgresql


@pytest.fixture
def database(postgres_database: str) -> Iterator[Database]:
    database = Database(postgres_database)
    try:
        yield database
    finally:
        database.dispose()


def _backend_pid(database: Database) -> int:
    with database.unit_of_work(write=False) as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
            ).scalar()
    finally:
        admin.dispose()


def test_an_idle_connection_found_dead_is_replaced_before_use(
    database: Database, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _backend_pid(database)
    _terminate(postgres_database, dead)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)  # every returned one counts as idle
    assert _backend_pid(database) != dead  # pinged, found dead, the pool started afresh


def test_a_connection_used_a_moment_ago_is_not_pinged(
    database: Database, postgres_database: str
) -> None:
    """The price of not pinging: a server-side end in that moment fails one use, then the pool
    has started afresh."""
    dead = _backend_pid(database)
    _terminate(postgres_database, dead)
    with pytest.raises(exc.OperationalError):
        _backend_pid(database)
    assert _backend_pid(database) != dead


def test_autocommit_reads_holds_no_transaction_open(
    database: Database, postgres_database: str
) -> None:
    admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    state = text("SELECT state FROM pg_stat_activity WHERE pid = :pid")
    try:
        with admin.connect() as watcher:
            with database.autocommit_reads() as session:
                pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                assert watcher.execute(state, {"pid": pid}).scalar_one() == "idle"
            with database.unit_of_work(write=False) as session:
                pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                assert watcher.execute(state, {"pid": pid}).scalar_one() == "idle in transaction"
            # The connection went back to the pool in its ordinary mode: transactions again.
            with database.unit_of_work() as session:
                session.execute(text("CREATE TEMP TABLE t (x int)"))
                session.execute(text("INSERT INTO t VALUES (1)"))
                pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                assert watcher.execute(state, {"pid": pid}).scalar_one() == "idle in transaction"
    finally:
        admin.dispose()


def test_a_request_on_a_connection_the_database_dropped_is_503_then_the_next_one_works(
    postgres_database: str, tmp_path: Path
) -> None:
    """Through the app: the request that meets the dead connection is answered `unavailable`
    (retry later, nothing applied), never a 500, and the pool has started afresh for the next."""
    app = create_app(cheap_settings(postgres_database, tmp_path))
    rt: Runtime = app.extensions["fieldsync"]
    client = app.test_client()
    try:
        with rt.db.unit_of_work() as session:
            create_user(
                session, rt.passwords, username="dropped", password=PASSWORD, role=Role.ADMIN
            )
        token = client.post(
            "/api/v1/auth/login", json={"username": "dropped", "password": PASSWORD}
        ).get_json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
        _terminate(postgres_database, _backend_pid(rt.db))  # the connection just returned
        dropped = client.get("/api/v1/auth/me", headers=headers)
        assert dropped.status_code == 503
        assert dropped.get_json()["error"]["code"] == "unavailable"
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    finally:
        rt.db.dispose()
