"""Shared fixtures: real databases (SQLite always; PostgreSQL when a server answers), the real WSGI
app and client, and factories that build objects through the same services users go through.

Every behavioural test that takes `db_url` (or anything built on it) runs once per database. The
PostgreSQL run uses a database created for this test session and dropped at its end, so runs never
collide; each test starts from empty tables (real commits, no rollback tricks: HTTP requests commit
in their own units of work).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from server import migrate
from server.app import create_app
from server.cli import CliState, main
from server.config import Settings
from server.households.loading import NewHousehold, load_households
from server.models import metadata
from server.regions.service import add_region
from server.runtime import Runtime
from server.users.models import Role
from server.users.service import create_user

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct-horse-battery"

# The demo-like tree used by most tests: one county, two townships, three villages.
PROVINCE = "990000000000"
CITY = "990100000000"
COUNTY = "990102000000"
TOWNSHIP_A = "990102001000"
TOWNSHIP_B = "990102002000"
VILLAGE_A1 = "990102001001"
VILLAGE_A2 = "990102001002"
VILLAGE_B1 = "990102002001"


def _postgres_admin_url() -> tuple[str | None, str]:
    """The URL of a reachable PostgreSQL server to create test databases in, and why if none."""
    url = os.environ.get("FIELDSYNC_TEST_POSTGRES_URL", "").strip()
    if os.environ.get("FIELDSYNC_TEST_POSTGRES", "").lower() in {"0", "off", "no"}:
        return None, "PostgreSQL tests turned off by FIELDSYNC_TEST_POSTGRES=0"
    candidate = make_url(url or DEFAULT_POSTGRES_URL)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed (install the 'postgres' extra)"
    try:
        with socket.create_connection((candidate.host or "127.0.0.1", candidate.port or 5432), 2):
            pass
    except OSError as exc:
        reason = f"no PostgreSQL server at {candidate.host}:{candidate.port} ({exc})"
        if url:
            # Asked for explicitly (as CI does): a missing server is a failure, not a skip.
            pytest.exit(f"FIELDSYNC_TEST_POSTGRES_URL is set but {reason}", returncode=3)
        return None, reason
    return candidate.render_as_string(hide_password=False), ""


_PG_ADMIN_URL, _PG_SKIP_REASON = _postgres_admin_url()


def pytest_report_header(config: pytest.Config) -> str:
    if _PG_ADMIN_URL:
        return f"fieldsync: PostgreSQL tests ON ({make_url(_PG_ADMIN_URL).render_as_string()})"
    return f"fieldsync: PostgreSQL tests SKIPPED — {_PG_SKIP_REASON}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _PG_ADMIN_URL is None:
        terminalreporter.write_line(
            f"NOTE: PostgreSQL tests were SKIPPED: {_PG_SKIP_REASON}. "
            "Set FIELDSYNC_TEST_POSTGRES_URL to run them.",
            yellow=True,
        )


def postgres_available() -> bool:
    return _PG_ADMIN_URL is not None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    if _PG_ADMIN_URL is None:
        pytest.skip(_PG_SKIP_REASON)
    admin = make_url(_PG_ADMIN_URL)
    name = f"fieldsync_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "fieldsync.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return cheap_settings(db_url, tmp_path)


def cheap_settings(database_url: str, instance_dir: Path) -> Settings:
    """Test settings, also for apps built outside the fixtures (worker processes, state
    machines): quiet logs, and Argon2 at its cheapest (tests check behaviour, not cost)."""
    return Settings(
        database_url=database_url,
        instance_dir=instance_dir,
        attachment_dir=instance_dir / "attachments",
        testing=True,
        log_level="WARNING",
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["fieldsync"].db.dispose()


@pytest.fixture
def rt(app: Flask) -> Runtime:
    value: Runtime = app.extensions["fieldsync"]
    return value


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def regions(rt: Runtime) -> list[str]:
    """The small region tree above, created through the regions service."""
    tree = [
        (PROVINCE, "演示省"),
        (CITY, "演示市"),
        (COUNTY, "云溪县"),
        (TOWNSHIP_A, "青石镇"),
        (TOWNSHIP_B, "白水乡"),
        (VILLAGE_A1, "上坪村"),
        (VILLAGE_A2, "下坪村"),
        (VILLAGE_B1, "白水村"),
    ]
    with rt.db.unit_of_work() as session:
        for code, name in tree:
            add_region(session, code, name)
    return [code for code, _ in tree]


ID_NUMBER = "990102198001012345"
LOAD_MILLIS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
LOAD_CLOCK = f"{LOAD_MILLIS:013d}-00000-server"


@pytest.fixture
def village_households(rt: Runtime, regions: list[str]) -> dict[str, dict[str, uuid.UUID]]:
    """One household with one member (the head) in each of villages A1, A2 and B1, loaded into
    the register with `LOAD_CLOCK`: `{village: {"household": id, "member": id}}`."""
    ids: dict[str, dict[str, uuid.UUID]] = {}
    items = []
    for village in (VILLAGE_A1, VILLAGE_A2, VILLAGE_B1):
        household_id, member_id = uuid.uuid4(), uuid.uuid4()
        ids[village] = {"household": household_id, "member": member_id}
        head = {
            "name": "王建国",
            "id_number": ID_NUMBER,
            "relation": "head",
            "sex": "male",
            "birth_date": "1980-01-01",
            "phone": "13812345678",
        }
        items.append(
            NewHousehold(
                id=household_id,
                fields={
                    "village_code": village,
                    "household_no": village[-3:],
                    "category": "lifted",
                    "head_member_id": str(member_id),
                    "per_capita_income": 6400.5,
                },
                members=[(member_id, head)],
            )
        )
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, items, clock=LOAD_CLOCK)
    return ids


UserFactory = Callable[..., str]


@pytest.fixture
def create_user_(rt: Runtime, regions: list[str]) -> UserFactory:
    """`create_user_(username, role, regions=[...], password=PASSWORD)` → the username."""

    def factory(
        username: str,
        role: Role = Role.COLLECTOR,
        regions: list[str] | None = None,
        password: str = PASSWORD,
    ) -> str:
        with rt.db.unit_of_work() as session:
            create_user(
                session,
                rt.passwords,
                username=username,
                password=password,
                role=role,
                regions=regions or [],
            )
        return username

    return factory


Login = Callable[..., str]


@pytest.fixture
def login(client: FlaskClient) -> Login:
    """`login(username, password=PASSWORD, device_id=None)` → a bearer token (asserts success)."""

    def do_login(username: str, password: str = PASSWORD, device_id: str | None = None) -> str:
        body: dict[str, Any] = {"username": username, "password": password}
        if device_id:
            body["device_id"] = device_id
        response = client.post("/api/v1/auth/login", json=body)
        assert response.status_code == 200, response.get_json()
        token: str = response.get_json()["token"]
        return token

    return do_login


@pytest.fixture
def cli(settings: Settings) -> Iterator[Callable[..., Any]]:
    """`cli(*args, input=None)` runs the `fieldsync` command against the test database."""
    state = CliState(settings)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(main, list(args), obj=state, input=input, catch_exceptions=False)

    yield run
    state.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_with_stdout_closed(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Runs a command with its standard output a pipe nobody reads (`… | head` after head has
    exited): its exit status and what it wrote to standard error."""
    process = subprocess.Popen(
        argv,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read()
    process.stderr.close()
    return process.wait(timeout=120), errors
