"""`fieldsync-tablet` without a server: every failure is `error: …` with exit status 1 and no
traceback; the happy path against the real server is in test_e2e_sync.py."""

from __future__ import annotations

import json
import re
import socket
import sys

import pytest
from click.testing import CliRunner

from forms.bundled import load_bundled_form
from sync_protocol.client import TabletClient
from sync_protocol.replica import CachedForm
from sync_protocol.tablet_cli import DEFAULT_ATTEMPTS, cli
from sync_protocol.transport import RetryPolicy
from tests.conftest import run_with_stdout_closed


@pytest.fixture
def db(tmp_path):
    """A tablet file with the household_visit form cached (as if fetched earlier)."""
    path = tmp_path / "tablet.db"
    with TabletClient(path, "http://127.0.0.1:9") as client, client.replica.transaction():
        definition = {**load_bundled_form("household_visit").to_dict(), "version": 1}
        client.replica.save_form(
            CachedForm("household_visit", 1, "hash", definition["title"], definition, True)
        )
    return path


def _run(db, *args, stdin=None):
    return CliRunner().invoke(cli, ["--db", str(db), "--retries", "1", *args], input=stdin)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_error(result, text):
    assert result.exit_code == 1, result.output
    assert f"error: {text}" in result.output
    assert "Traceback" not in result.output


def test_sync_before_login_is_a_clear_error(db):
    _assert_error(_run(db, "sync"), "not logged in")


def test_an_unknown_form_is_a_clear_error(db):
    _assert_error(_run(db, "fill", "no_such_form", "--sample"), "form 'no_such_form'")


@pytest.mark.parametrize("how", [["--sample"], ["answers.json"]])
def test_a_form_not_on_the_tablet_names_the_command_that_fetches_forms(db, tmp_path, how):
    (tmp_path / "answers.json").write_text("{}")
    args = [str(tmp_path / arg) if arg.endswith(".json") else arg for arg in how]
    result = _run(db, "fill", "household_register", *args)
    _assert_error(result, "form 'household_register' is not on this tablet")
    commands = re.findall(r"`fieldsync-tablet ([a-z-]+)`", result.output)
    assert commands, result.output
    for command in commands:  # every command the message names exists
        assert _run(db, command, "--help").exit_code == 0, command


def test_a_command_help_opens_no_tablet_file(tmp_path):
    path = tmp_path / "never.db"
    result = CliRunner().invoke(cli, ["--db", str(path), "show", "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert not path.exists()


def test_the_default_retries_are_the_client_policy_default():
    assert RetryPolicy.max_attempts == DEFAULT_ATTEMPTS


@pytest.mark.parametrize("args", [["show", "--outbox"], ["show"], ["status"], ["--help"]])
def test_a_closed_output_pipe_ends_the_command_quietly(db, args):
    """`fieldsync-tablet … | head`: once the reader is gone, no error and no traceback."""
    _run(db, "fill", "household_visit", "--sample", "--village", "990102001001")
    entry = "from sync_protocol.tablet_cli import main; main()"
    status, errors = run_with_stdout_closed([sys.executable, "-c", entry, "--db", str(db), *args])
    assert status != 0
    assert errors == ""


def test_invalid_answers_list_every_problem(db, tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"household_id": "not-a-uuid", "annual_income": -1}))
    result = _run(db, "fill", "household_visit", str(answers))
    _assert_error(result, "answers for household_visit are not valid")
    assert "data.annual_income" in result.output and "data.visit_date" in result.output


def test_answers_that_are_not_json_are_a_clear_error(db, tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text("{not json")
    _assert_error(_run(db, "fill", "household_visit", str(answers)), "")


def test_an_unreachable_server_is_a_clear_error(db):
    result = _run(
        db,
        "--server",
        f"http://127.0.0.1:{_closed_port()}",
        "login",
        "ana",
        "--password-stdin",
        stdin="pw\n",
    )
    _assert_error(result, "POST /api/v1/auth/login: no answer")


def test_fill_needs_answers_or_sample(db):
    result = _run(db, "fill", "household_visit")
    assert result.exit_code == 2 and "either ANSWERS.json or --sample" in result.output


def test_show_and_status_work_offline(db):
    assert _run(db, "show").exit_code == 0
    result = _run(db, "status")
    assert result.exit_code == 0 and "device_id: " in result.output
    assert "forms: 1" in result.output
