"""The `fieldsync` command line on both databases: schema commands, user management (with its
errors printed as `error: …` and exit status 1, never a traceback) and the development server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine, select

from server import migrate
from server.audit.models import AuditEntry
from server.cli import CliState, main
from server.config import PROJECT_ROOT, Settings
from tests.conftest import (
    COUNTY,
    PASSWORD,
    TOWNSHIP_A,
    VILLAGE_A1,
    VILLAGE_B1,
    bearer,
    run_with_stdout_closed,
)
from tests.patience import PATIENCE, wait_until


def _user_rows(cli):
    """`users list` as {username: (role, active, regions)}."""
    result = cli("users", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["username", "role", "active", "regions"]
    table = {}
    for row in rows:
        username, role, active, *codes = row.split()
        table[username] = (role, active, [] if codes == ["-"] else codes)
    return table


def _create(cli, username, role="collector", *regions, password=PASSWORD):
    region_args = [arg for code in regions for arg in ("--region", code)]
    return cli("users", "create", username, "--role", role, *region_args, "--password", password)


def _login(client, username, password=PASSWORD):
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


# -- db ----------------------------------------------------------------------------------------


def _fresh_sqlite_cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'folder' / 'fieldsync.db'}"
    settings = Settings(database_url=url, instance_dir=tmp_path, testing=True)
    state = CliState(settings)
    return url, state, lambda *args: CliRunner().invoke(main, list(args), obj=state)


def test_a_command_on_a_sqlite_file_that_does_not_exist_leaves_no_file_behind(tmp_path):
    # A mistyped DATABASE_URL must not leave empty databases (and their folders) about.
    _, state, run = _fresh_sqlite_cli(tmp_path)
    result = run("users", "list")
    assert result.exit_code == 1
    assert "no database at" in result.stderr and "fieldsync db upgrade" in result.stderr
    assert str(tmp_path / "new" / "folder" / "fieldsync.db") in result.stderr
    assert not (tmp_path / "new").exists()
    status = run("db", "status")
    assert status.exit_code == 0, status.output
    assert "current: (no database at" in status.output
    assert f"head:    {migrate.head_revision()}" in status.output
    assert not (tmp_path / "new").exists()
    state.close()


def test_db_upgrade_on_a_fresh_sqlite_file_creates_its_folder_and_a_current_schema(tmp_path):
    url, state, run = _fresh_sqlite_cli(tmp_path)
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "folder" / "fieldsync.db").is_file()
    engine = create_engine(url)
    try:
        assert migrate.migration_state(engine).is_current
    finally:
        engine.dispose()
    status = run("db", "status")
    assert f"current: {migrate.head_revision()}" in status.output
    assert "up to date" in status.output
    state.close()


def test_db_status_of_an_empty_database_asks_for_an_upgrade(tmp_path):
    _, state, run = _fresh_sqlite_cli(tmp_path)
    database = tmp_path / "new" / "folder" / "fieldsync.db"
    database.parent.mkdir(parents=True)
    database.touch()  # a SQLite database with nothing in it
    result = run("db", "status")
    assert result.exit_code == 0, result.output
    assert "current: (empty database)" in result.output
    assert "run `fieldsync db upgrade`" in result.output
    state.close()


def test_commands_refuse_a_database_that_is_not_migrated(tmp_path):
    _, state, run = _fresh_sqlite_cli(tmp_path)
    result = run("users", "list")
    assert result.exit_code == 1
    assert "run `fieldsync db upgrade` first" in result.stderr
    state.close()


def test_without_injected_settings_the_cli_reads_database_url_from_the_environment(tmp_path):
    database = tmp_path / "from-env" / "fieldsync.db"
    env = {"DATABASE_URL": f"sqlite:///{database}", "INSTANCE_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert database.is_file()


def test_a_malformed_setting_is_an_error_not_a_traceback(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}", "PASSWORD_HASH_TIME_COST": "many"}
    result = CliRunner().invoke(main, ["users", "list"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: PASSWORD_HASH_TIME_COST must be")
    assert "Traceback" not in result.output


def test_upgrading_an_already_current_database_changes_nothing(cli, db_url):
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    engine = create_engine(db_url)
    try:
        assert migrate.migration_state(engine).is_current
    finally:
        engine.dispose()


# -- users -------------------------------------------------------------------------------------


def test_users_create_then_list_shows_role_active_and_regions(cli, regions):
    result = _create(cli, "wang.fang", "collector", VILLAGE_B1, VILLAGE_A1)
    assert result.exit_code == 0, result.output
    _create(cli, "admin", "admin")
    assert _user_rows(cli) == {
        "admin": ("admin", "yes", []),
        "wang.fang": ("collector", "yes", [VILLAGE_A1, VILLAGE_B1]),
    }


def test_created_user_logs_in_with_the_given_password(cli, regions, client):
    _create(cli, "li.ming", "supervisor", COUNTY)
    response = _login(client, "li.ming")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["regions"] == [COUNTY]


def test_password_stdin_reads_one_line_without_its_newline(cli, regions, client):
    stdin = f"{PASSWORD}\nignored second line\n"
    result = cli(
        "users", "create", "li.ming", "--role", "collector", "--password-stdin", input=stdin
    )
    assert result.exit_code == 0, result.output
    assert _login(client, "li.ming").status_code == 200
    assert _login(client, "li.ming", f"{PASSWORD}\n").status_code == 401


@pytest.mark.parametrize(
    "flags", [[], ["--password", PASSWORD, "--password-stdin"]], ids=["neither", "both"]
)
def test_users_create_needs_exactly_one_password_source(cli, regions, flags):
    result = cli("users", "create", "li.ming", "--role", "collector", *flags, input=PASSWORD)
    assert result.exit_code == 2
    assert "exactly one of --password and --password-stdin" in result.output
    assert "li.ming" not in _user_rows(cli)


def test_users_create_with_an_unknown_region_is_an_error_and_creates_nobody(cli, regions):
    result = _create(cli, "li.ming", "collector", "990102009009")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: unknown region codes",
        "  regions: no region 990102009009",
    ]
    assert "li.ming" not in _user_rows(cli)


def test_users_create_of_an_existing_username_is_an_error(cli, regions):
    _create(cli, "li.ming")
    result = _create(cli, "li.ming", "admin")
    assert result.exit_code == 1
    assert "error: user 'li.ming' already exists" in result.stderr
    assert _user_rows(cli)["li.ming"][0] == "collector"


def test_users_create_of_a_username_differing_only_in_case_is_an_error(cli, regions):
    # Two accounts "li.ming" and "Li.Ming" would be told apart by no one reading a log or a
    # list, and a tablet that capitalises the first letter would log in as the wrong one.
    _create(cli, "li.ming")
    result = _create(cli, "Li.Ming", "admin")
    assert result.exit_code == 1
    assert "error: user 'li.ming' already exists" in result.stderr
    assert set(_user_rows(cli)) == {"li.ming"}


def test_users_create_with_a_short_password_lists_the_problem(cli, regions):
    result = _create(cli, "li.ming", password="short")
    assert result.exit_code == 1
    assert "password: at least 8 characters" in result.stderr
    assert "Traceback" not in result.output


def test_users_grant_and_revoke_change_the_listed_regions(cli, regions):
    _create(cli, "li.ming", "collector", VILLAGE_A1)
    assert cli("users", "grant", "li.ming", "--region", VILLAGE_B1).exit_code == 0
    assert _user_rows(cli)["li.ming"][2] == [VILLAGE_A1, VILLAGE_B1]
    assert cli("users", "revoke", "li.ming", "--region", VILLAGE_A1).exit_code == 0
    assert _user_rows(cli)["li.ming"][2] == [VILLAGE_B1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["grant", "nobody", "--region", VILLAGE_A1], "error: no user named 'nobody'"),
        (["grant", "li.ming", "--region", "990102009009"], "error: unknown region codes"),
        (
            ["revoke", "li.ming", "--region", TOWNSHIP_A],
            "error: li.ming has no grant on " + TOWNSHIP_A,
        ),
        (["disable", "nobody"], "error: no user named 'nobody'"),
    ],
    ids=["grant-unknown-user", "grant-unknown-region", "revoke-missing-grant", "disable-unknown"],
)
def test_user_changes_that_cannot_apply_are_errors_with_exit_status_1(cli, regions, args, message):
    _create(cli, "li.ming")
    result = cli("users", *args)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == message
    assert _user_rows(cli)["li.ming"] == ("collector", "yes", [])


def test_disabled_user_is_listed_inactive_and_cannot_log_in(cli, regions, client):
    _create(cli, "li.ming")
    assert _login(client, "li.ming").status_code == 200
    result = cli("users", "disable", "li.ming")
    assert result.exit_code == 0, result.output
    assert _user_rows(cli)["li.ming"][1] == "no"
    response = _login(client, "li.ming")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_disabling_a_user_ends_the_tokens_they_hold(cli, regions, client, login):
    _create(cli, "li.ming")
    token = login("li.ming")
    cli("users", "disable", "li.ming")
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def _audit_rows(rt, action):
    with rt.db.unit_of_work(write=False) as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        ).all()
        return [(row.user_id, row.object_type, row.object_id, row.details) for row in rows]


def test_an_enabled_user_logs_in_again_and_the_change_is_audited(cli, regions, client, rt):
    _create(cli, "li.ming")
    cli("users", "disable", "li.ming")
    result = cli("users", "enable", "li.ming")
    assert result.exit_code == 0, result.output
    assert result.output == "enabled li.ming\n"
    assert _user_rows(cli)["li.ming"][1] == "yes"
    assert _login(client, "li.ming").status_code == 200
    assert _audit_rows(rt, "user_enabled") == [(None, "user", "li.ming", {})]


def test_enabling_an_active_user_changes_and_records_nothing(cli, regions, rt):
    _create(cli, "li.ming")
    assert cli("users", "enable", "li.ming").exit_code == 0
    assert _audit_rows(rt, "user_enabled") == []


def test_set_password_from_stdin_replaces_the_password_and_ends_every_token(
    cli, regions, client, login, rt
):
    _create(cli, "li.ming")
    tokens = [login("li.ming"), login("li.ming")]
    new_password = "a-new-long-password"
    result = cli("users", "set-password", "li.ming", "--password-stdin", input=new_password + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == "new password set for li.ming; 2 login token(s) ended\n"
    assert _login(client, "li.ming").status_code == 401
    assert _login(client, "li.ming", new_password).status_code == 200
    for token in tokens:
        assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    audited = _audit_rows(rt, "password_set")
    assert audited == [(None, "user", "li.ming", {"tokens_ended": 2})]
    assert new_password not in repr(audited)


@pytest.mark.parametrize(
    "args, message",
    [
        (["set-password", "nobody", "--password", PASSWORD], "error: no user named 'nobody'"),
        (["set-password", "li.ming", "--password", "short"], "error: invalid password"),
        (["enable", "nobody"], "error: no user named 'nobody'"),
    ],
    ids=["unknown-user", "short-password", "enable-unknown"],
)
def test_password_and_enable_errors_change_nothing(cli, regions, client, args, message):
    _create(cli, "li.ming")
    result = cli("users", *args)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == message
    assert _login(client, "li.ming").status_code == 200


def test_set_password_needs_exactly_one_password_source(cli, regions):
    _create(cli, "li.ming")
    result = cli("users", "set-password", "li.ming")
    assert result.exit_code == 2
    assert "exactly one of --password and --password-stdin" in result.output


def _command_env(database: Path, instance_dir: Path) -> dict[str, str]:
    """The environment of a `fieldsync` subprocess on `database`: its instance folder (and so its
    secrets) in the test's own folder, never the repository's."""
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "INSTANCE_DIR": str(instance_dir),
        "SECRET_KEY": "a-test-secret-key-of-at-least-32-characters",
        "LOG_LEVEL": "WARNING",
    }


# -- serve -------------------------------------------------------------------------------------


def test_serve_refuses_a_database_that_is_not_migrated(tmp_path):
    _, state, run = _fresh_sqlite_cli(tmp_path)
    result = run("serve", "--port", "1")
    assert result.exit_code == 1
    assert "run `fieldsync db upgrade` first" in result.stderr
    state.close()


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_serve_refuses_a_port_outside_the_tcp_range(tmp_path, port):
    # The socket layer takes 99999 modulo 65536: the server would listen on a port nobody asked for.
    _, state, run = _fresh_sqlite_cli(tmp_path)
    result = run("serve", "--port", port)
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.output
    assert "0<=x<=65535" in result.output
    state.close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_answers_http_on_the_given_port(tmp_path, sqlite_template):
    database = tmp_path / "serve.db"
    database.write_bytes(Path(sqlite_template).read_bytes())
    port = _free_port()
    env = _command_env(database, tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-c", "from server.cli import main; main()", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def answer() -> requests.Response | None:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"serve exited with {process.returncode}: {output}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        except requests.RequestException:
            return None

    try:
        response = wait_until(answer, what=f"fieldsync serve answering on port {port}")
        assert response is not None and response.status_code == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=PATIENCE)
    assert f"fieldsync listening on http://127.0.0.1:{port}/" in output


@pytest.mark.slow
def test_serve_on_a_port_in_use_says_so_first_and_how_to_choose_another(tmp_path, sqlite_template):
    database = tmp_path / "serve.db"
    database.write_bytes(Path(sqlite_template).read_bytes())
    env = _command_env(database, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = ["serve", "--port", str(port)]
        result = subprocess.run(
            [sys.executable, "-c", "from server.cli import main; main()", *serve],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stdout == ""  # never "listening on…"
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: port {port} on 127.0.0.1 is in use by another program")
    assert f"--port {port + 1}" in line and f"make run PORT={port + 1}" in line


def test_forms_install_publishes_the_bundled_forms_once(cli):
    first = cli("forms", "install")
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        "household_register: version 1 (published)",
        "household_visit: version 1 (published)",
        "monitoring_application: version 1 (published)",
    ]
    again = cli("forms", "install", "household_visit")
    assert again.output.splitlines() == ["household_visit: version 1 (already current)"]


def test_forms_install_refuses_an_unknown_form(cli):
    result = cli("forms", "install", "no_such_form")
    assert result.exit_code == 2 and "no bundled form no_such_form" in result.output


# -- start-up and output ------------------------------------------------------------------------

# What a `--help` must not load: each costs tenths of a second on a busy machine.
HEAVY_MODULES = (
    "flask",
    "werkzeug",
    "sqlalchemy",
    "alembic",
    "marshmallow",
    "pyxform",
    "openpyxl",
    "requests",
    "argon2",
    "cryptography",
    "apispec",
)


def _modules_imported_by(*argv):
    """The top-level packages a Python process imports while running `argv` (from -X importtime)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, result.stdout


@pytest.mark.parametrize(
    ("entry", "argv"),
    [
        ("from server.cli import main; main()", ["--help"]),
        ("from server.cli import main; main()", ["users", "--help"]),
        ("from sync_protocol.tablet_cli import main; main()", ["--help"]),
        ("from sync_protocol.tablet_cli import main; main()", ["show", "--help"]),
    ],
)
def test_help_loads_no_framework_database_or_spreadsheet_library(entry, argv, tmp_path):
    names, output = _modules_imported_by("-c", entry, *argv)
    assert "Usage:" in output
    assert sorted(names & set(HEAVY_MODULES)) == []


def _best_of_three(argv):
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=120)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("script", ["fieldsync", "fieldsync-tablet"])
def test_help_starts_within_half_a_second_of_a_bare_python(script):
    installed = Path(sys.executable).parent / script
    if not installed.exists():
        pytest.skip(f"{script} is not installed next to {sys.executable}")
    bare = _best_of_three([sys.executable, "-c", "pass"])
    help_time = _best_of_three([str(installed), "--help"])
    assert help_time < bare + 0.5, f"{script} --help took {help_time:.2f} s (bare {bare:.2f} s)"


def test_a_command_that_checks_no_password_computes_no_argon2_hash(settings, rt):
    """The unknown-user dummy hash costs a few tenths of a second: the app makes it at start (so
    every login of an unknown user costs the same), a command that checks no password never."""
    assert "_dummy" in vars(rt.passwords)
    state = CliState(settings)
    try:
        result = CliRunner().invoke(main, ["users", "list"], obj=state)
        assert result.exit_code == 0, result.output
        assert "_dummy" not in vars(state.runtime().passwords)
    finally:
        state.close()


def test_the_role_choices_are_the_roles_of_the_user_model():
    from server.cli import ROLE_NAMES
    from server.users.models import Role

    assert tuple(Role.codes()) == ROLE_NAMES


@pytest.mark.parametrize("argv", [["--help"], ["users", "list"], ["db", "status"]])
def test_a_closed_output_pipe_ends_the_command_quietly(argv, tmp_path, sqlite_template):
    database = tmp_path / "pipe.db"
    database.write_bytes(Path(sqlite_template).read_bytes())
    env = _command_env(database, tmp_path)
    status, errors = run_with_stdout_closed(
        [sys.executable, "-c", "from server.cli import main; main()", *argv], env
    )
    assert status != 0
    assert errors == ""
