"""`fieldsync scheduler --list` shows the registry; a bad schedule stops the command with one
error line before anything runs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from server.cli import CliState, main


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_list_shows_every_job_with_its_schedule_and_next_run(cli):
    result = cli("scheduler", "--list")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert {"purge_auth", "summary_snapshot", "overdue_followups", "probe"} <= set(lines)
    assert "every 3600" in lines["purge_auth"] and "next 20" in lines["purge_auth"]
    assert "never (off)" in lines["always_fails"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_bad_schedule_is_refused_with_one_error_line(settings):
    state = CliState(settings.replace(job_schedules="purge_auth=every often"))
    result = CliRunner().invoke(main, ["scheduler"], obj=state)
    state.close()
    assert result.exit_code == 1
    assert "error: schedule 'every often'" in result.output
