"""`fieldsync cases …`: list and show cases, read and set the workflow's settings."""

from __future__ import annotations

from tests.conftest import COUNTY, VILLAGE_A1
from tests.monitoring.cases_world import (
    open_case_of,
    world_fixture,  # noqa: F401 - the `world` fixture
)


def test_cases_list_and_show_tell_where_a_case_waits(cli, rt, world):
    case_id = open_case_of(rt, world["household"])
    listed = cli("cases", "list", "--stage", "verification")
    assert listed.exit_code == 0, listed.output
    assert str(case_id) in listed.output and "入户核查" in listed.output
    assert cli("cases", "list", "--stage", "county_review").output.strip() == "no cases"
    shown = cli("cases", "show", str(case_id))
    assert shown.exit_code == 0, shown.output
    assert "self_application" in shown.output and "waiting for" in shown.output


def test_cases_config_set_applies_below_the_region_and_is_refused_out_of_bounds(cli, regions):
    assert cli("cases", "config", "set", "notice_days", "7", "--region", COUNTY).exit_code == 0
    got = cli("cases", "config", "get", "--region", VILLAGE_A1)
    assert f"notice_days = 7  (set on {COUNTY}" in got.output
    assert "notice_min_days = 5  (default" in got.output
    refused = cli("cases", "config", "set", "notice_days", "0", "--region", COUNTY)
    assert refused.exit_code != 0 and "notice_days must be 1 to 60" in refused.output
