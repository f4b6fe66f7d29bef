"""The dashboard: the monitoring summary of the user's region as tables and bars, drill-down
through the region tree with a breadcrumb, the year selector, scope (403 outside the grants) and
bad input — through the real app on both databases."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest
from sqlalchemy import event

from server.households.loading import NewHousehold, load_households
from server.monitoring.summary import REPORT_TIMEZONE
from server.users.models import Role
from tests.conftest import (
    COUNTY,
    LOAD_CLOCK,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
)
from tests.console.conftest import text_of
from tests.exports.world import push_register
from tests.sync.helpers import Tablet, load_register
from tests.warnings.world import good_visit, push


def _monitored(village: str, members: int, monitoring_type: str = "marginal") -> NewHousehold:
    people = [(uuid.uuid4(), {"name": f"成员{i}", "relation": "other"}) for i in range(members)]
    return NewHousehold(
        uuid.uuid4(),
        {
            "village_code": village,
            "household_no": f"M-{uuid.uuid4().hex[:6]}",
            "monitoring_type": monitoring_type,
            "monitoring_status": "monitored",
        },
        people,
    )


@pytest.fixture
def county(rt, regions, create_user_):
    """Monitored households: two in A1 (3 and 2 persons), one in A2, one in B1 (sudden
    difficulty); supervisors of the county and of each township."""
    households = [
        _monitored(VILLAGE_A1, 3),
        _monitored(VILLAGE_A1, 2),
        _monitored(VILLAGE_A2, 1, "unstable_lifted"),
        _monitored(VILLAGE_B1, 4, "sudden_difficulty"),
    ]
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, households, clock=LOAD_CLOCK)
    create_user_("sup_county", Role.SUPERVISOR, [COUNTY])
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    return households


def _row(text: str, name: str) -> str:
    """The text following a region's name in the child-region table (its figures)."""
    return text.split(name, 1)[1][:60]


def test_the_county_dashboard_counts_monitored_households_per_township(console, county):
    page = console("sup_county").page("/")
    text = text_of(page)
    assert "云溪县" in text and "首页概览" in text
    # 4 households, 10 persons under monitoring in the county, all overdue for a visit.
    stats = re.findall(r'stat-value">([^<]+)<', page)
    assert stats == ["4", "10", "0", "0", "4", "0 / 0"]
    assert 'href="/?region=990102001000' in page and 'href="/?region=990102002000' in page
    assert _row(text, "青石镇").split()[:2] == ["3", "6"]
    assert _row(text, "白水乡").split()[:2] == ["1", "4"]
    # The year selector defaults to this year.
    this_year = datetime.now(REPORT_TIMEZONE).year
    assert f'<option value="{this_year}" selected>' in page


def test_drilling_down_to_a_village_keeps_the_breadcrumb(console, county):
    browser = console("sup_county")
    township = browser.page(f"/?region={TOWNSHIP_A}")
    text = text_of(township)
    assert f'href="/?region={COUNTY}' in township  # the breadcrumb leads back up
    assert _row(text, "上坪村").split()[:2] == ["2", "5"]
    assert _row(text, "下坪村").split()[:2] == ["1", "1"]
    village = text_of(browser.page(f"/?region={VILLAGE_A1}&year=2025"))
    assert "上坪村" in village and "2025" in village
    assert "边缘易致贫户" in village


def test_a_township_supervisor_starts_at_the_township_and_cannot_open_others(console, county):
    browser = console("sup_a")
    page = browser.page("/")
    text = text_of(page)
    assert "青石镇" in text and "上坪村" in text and "白水" not in text
    # The county is above the user's root: not a link.
    assert f"region={COUNTY}" not in page
    for other in (TOWNSHIP_B, VILLAGE_B1, COUNTY):
        refused = browser.page(f"/?region={other}", status=403)
        assert "无权操作" in text_of(refused)


def test_bad_region_or_year_is_refused_with_a_clear_page(console, county):
    browser = console("sup_county")
    for query in ("region=abc", "region=000000000000", "year=1800", "year=soon"):
        page = browser.page(f"/?{query}", status=422)
        assert "请更正输入" in text_of(page)
    browser.page("/?region=990102009000", status=404)


def test_a_user_with_two_roots_chooses_one(console, county, create_user_):
    create_user_("two_villages", Role.COLLECTOR, [VILLAGE_A2, VILLAGE_B1])
    text = text_of(console("two_villages").page("/"))
    assert "下坪村" in text and "白水村" in text and "上坪村" not in text


def test_visits_received_today_show_in_the_sync_activity(client, rt, console, county):
    load_register(rt)
    tablet = Tablet.login(client, "sup_county")
    push_register(tablet, VILLAGE_A1)
    page = console("sup_county").page(f"/?region={VILLAGE_A1}")
    today = datetime.now(REPORT_TIMEZONE).strftime("%m-%d")
    # The last bar is today's, with one accepted visit.
    activity = page.split('id="activity"', 1)[1]
    bars = dict(re.findall(r'bar-label">([^<]+)</span><meter[^>]*value="(\d+)"', activity))
    assert len(bars) == 14
    assert bars[today] == "1" and sum(int(n) for n in bars.values()) == 1


def test_the_dashboard_speaks_english_on_request(console, county):
    text = text_of(console("sup_county", lang="en").page("/"))
    assert "Households under monitoring" in text and "Marginal household" in text
    assert "Open cases" in text


def test_warnings_raised_by_a_visit_are_counted_by_rule(client, rt, console, county):
    load_register(rt)
    tablet = Tablet.login(client, "sup_county")
    push(tablet, good_visit(annual_income=15000, water_status="insufficient"))
    page = console("sup_county", lang="en").page(f"/?region={TOWNSHIP_A}")
    stats = re.findall(r'stat-value">([^<]+)<', page)
    assert stats[3] == "2"  # warnings waiting
    section = page.split("Warnings waiting, by rule", 1)[1].split("</figure>", 1)[0]
    bars = dict(re.findall(r'bar-label">([^<]+)</span><meter[^>]*value="(\d+)"', section))
    assert set(bars.values()) == {"1"} and len(bars) == 2
    assert _row(text_of(page), "上坪村").split()[3] == "2"  # the village's warnings column
    # Another township's dashboard does not count them.
    other = console("sup_county").page(f"/?region={TOWNSHIP_B}")
    assert re.findall(r'stat-value">([^<]+)<', other)[3] == "0"


def _statements(rt, browser, path: str) -> int:
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", listener)
    try:
        browser.page(path)
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", listener)
    return len(seen)


def test_the_dashboard_asks_the_same_number_of_queries_however_many_households(rt, console, county):
    browser = console("sup_county")
    browser.page("/")  # the session's first request warms what is cached per process
    before = {path: _statements(rt, browser, path) for path in ("/", f"/?region={VILLAGE_A1}")}
    more = [_monitored(village, 3) for village in (VILLAGE_A1, VILLAGE_A2, VILLAGE_B1) * 10]
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, more, clock=LOAD_CLOCK)
    after = {path: _statements(rt, browser, path) for path in before}
    assert after == before


def test_an_administrator_starts_where_the_region_tree_branches(console, county, create_user_):
    create_user_("adm", Role.ADMIN)
    page = console("adm").page("/")
    # Province and city have one child each: the dashboard opens at the county, below them.
    assert "云溪县" in page.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert 'href="/?region=990000000000' in page and 'href="/?region=990100000000' in page
