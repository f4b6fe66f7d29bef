"""The warnings page: warnings raised by a real visit's push, filtered, with masked evidence;
refer (opens the monitoring case), handle, dismiss with a reason; refusals, scope, English."""

from __future__ import annotations

from sqlalchemy import func, select

from server.monitoring.models import MonitoringCase
from server.warnings.models import WarningStatus
from tests.console.conftest import text_of
from tests.sync.helpers import HOUSEHOLD_A
from tests.warnings.world import (  # noqa: F401 - the `world` fixture
    current,
    good_visit,
    push,
    world_fixture,
)


def _raise_two(world) -> None:
    push(world["tablet"], good_visit(annual_income=15000, water_status="insufficient"))


def _warning(rt, rule):
    return current(rt, HOUSEHOLD_A)[(rule, "")]


def test_the_list_shows_the_warnings_of_the_users_regions_filtered(world, console, rt):
    _raise_two(world)
    browser = console("sup_county")
    text = text_of(browser.page("/warnings"))
    assert "A-001" in text and "人均纯收入" in text and "5000" in text
    income = _warning(rt, "income_below_line")
    water = _warning(rt, "unsafe_water")
    html = browser.page("/warnings?rule=unsafe_water")
    assert f"w-{water.id}" in html and f"w-{income.id}" not in html
    assert f"w-{income.id}" not in browser.page("/warnings?status=dismissed")
    assert f"w-{income.id}" not in console("sup_b").page("/warnings")
    assert browser.get("/warnings?rule=nope").status_code == 422
    assert console("col_a1").get("/warnings").status_code == 403


def test_refer_opens_a_case_handle_and_dismiss_need_what_they_need(world, console, rt):
    _raise_two(world)
    browser = console("sup_a1")
    income = _warning(rt, "income_below_line")
    response = browser.post(
        f"/warnings/{income.id}/refer",
        {"text": "收入低于监测标准", "version": str(income.version), "causes": ["illness"]},
        form_page="/warnings",
    )
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:300]
    assert _warning(rt, "income_below_line").status is WarningStatus.REFERRED
    with rt.db.unit_of_work(write=False) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(MonitoringCase)
                .where(MonitoringCase.household_id == HOUSEHOLD_A)
            )
            == 1
        )
    water = _warning(rt, "unsafe_water")
    # Dismissing needs a reason: refused next to the form, nothing changes.
    response = browser.post(f"/warnings/{water.id}/dismiss", {"text": " "}, form_page="/warnings")
    assert response.status_code == 422
    assert f'id="p-{water.id}"' in response.get_data(as_text=True)
    assert _warning(rt, "unsafe_water").status is WarningStatus.OPEN
    response = browser.post(
        f"/warnings/{water.id}/dismiss", {"text": "已改水，核实安全"}, form_page="/warnings"
    )
    assert response.status_code == 302
    dismissed = _warning(rt, "unsafe_water")
    assert dismissed.status is WarningStatus.DISMISSED
    assert dismissed.status_reason == "已改水，核实安全"
    # Handling the referred one; a stale version afterwards is a conflict.
    assert (
        browser.post(
            f"/warnings/{income.id}/handle", {"text": "已纳入监测"}, form_page="/warnings"
        ).status_code
        == 302
    )
    assert _warning(rt, "income_below_line").status is WarningStatus.HANDLED
    assert (
        browser.post(
            f"/warnings/{income.id}/dismiss", {"text": "x", "version": "0"}, form_page="/warnings"
        ).status_code
        == 409
    )


def test_other_regions_may_not_act(world, console, rt):
    _raise_two(world)
    income = _warning(rt, "income_below_line")
    response = console("sup_b").post(
        f"/warnings/{income.id}/handle", {"text": "x"}, form_page="/warnings"
    )
    assert response.status_code == 403
    assert _warning(rt, "income_below_line").status is WarningStatus.OPEN
    response = console("sup_a1").post(
        f"/warnings/{income.id}/escalate", {"text": "x"}, form_page="/warnings"
    )
    assert response.status_code == 404


def test_the_warnings_page_in_english(world, console, rt):
    _raise_two(world)
    text = text_of(console("sup_county", lang="en").page("/warnings"))
    assert "Refer to the monitoring workflow" in text and "Mark handled" in text
