"""In a real browser: a township supervisor and the county supervisor take a case through its
review steps, the county supervisor resolves a conflict and dismisses a quarantined submission;
the review pages pass axe-core at desktop and tablet width without sideways overflow.

The demo county has no cases, conflicts or quarantined submissions: they are made here the way
real work makes them, through the API of the same served app (a cadre's referral and a
verification visit from collector1's tablet, two tablets pushing different incomes, a push of a
visit on a form version that does not exist)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from server.demo.county import TOWNSHIP_CODES, VILLAGE_CODES
from server.households.models import Household, Member
from server.users.models import Role
from server.users.service import create_user
from sync_protocol.clock import Hlc
from tests.console.browser.conftest import (
    PASSWORDS,
    Site,
    axe_violations,
    horizontal_overflow,
    log_in,
    page_text,
    screenshot,
    wait_for,
    wait_for_new_page,
)
from tests.sync.helpers import SAMPLE, Tablet, visit

TOWNSHIP = TOWNSHIP_CODES[0]
VILLAGE = VILLAGE_CODES[TOWNSHIP][0]
TOWN_SUPERVISOR = "township_reviewer"
TOWN_PASSWORD = "township-reviewer-2026"


def _tablet(site: Site, username: str) -> Tablet:
    client = site.app.test_client()
    device_id = str(uuid.uuid4())
    response = client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": PASSWORDS[username], "device_id": device_id},
    )
    assert response.status_code == 200, response.get_json()
    return Tablet(client, response.get_json()["token"], device_id)


def _households(site: Site) -> list[tuple[uuid.UUID, str, int, uuid.UUID]]:
    """(id, number, rev, a member) of two not-monitored households of the first village."""
    with site.rt.db.unit_of_work(write=False) as session:
        rows = session.execute(
            select(Household.id, Household.household_no, Household.rev)
            .where(
                Household.village_code == VILLAGE, Household.monitoring_status == "not_monitored"
            )
            .order_by(Household.household_no)
            .limit(2)
        ).all()
        found = []
        for household_id, number, rev in rows:
            member = session.scalars(
                select(Member.id).where(Member.household_id == household_id).limit(1)
            ).one()
            found.append((household_id, str(number), int(rev), member))
    return found


def _visit(household_id: uuid.UUID, member_id: uuid.UUID, **answers: Any) -> dict[str, Any]:
    member = {**SAMPLE["members"][0], "member_id": str(member_id)}  # type: ignore[index]
    return visit(household_id, members=[member], **answers)


@pytest.fixture(scope="module")
def work(site: Site) -> dict[str, Any]:
    with site.rt.db.unit_of_work() as session:
        create_user(
            session,
            site.rt.passwords,
            username=TOWN_SUPERVISOR,
            password=TOWN_PASSWORD,
            role=Role.SUPERVISOR,
            regions=[TOWNSHIP],
        )
    (case_household, case_no, _, case_member), (other, _, rev, other_member) = _households(site)
    tablet = _tablet(site, "collector1")
    # A cadre's screening opens the case; the verification visit after it moves it on.
    referred = tablet.client.post(
        "/api/v1/monitoring/referrals",
        json={
            "household_id": str(case_household),
            "causes": ["illness"],
            "note": "户主住院，医疗支出大",
        },
        headers=tablet.headers,
    )
    assert referred.status_code == 201, referred.get_json()
    checked = tablet.submission(_visit(case_household, case_member))
    checked["collected_at"] = datetime.now(UTC).isoformat()
    assert tablet.push([checked]).get_json()["results"][0]["status"] == "accepted"
    # Two tablets, the same revision seen, different incomes: a conflict.
    second = _tablet(site, "collector1")
    base = {f"household/{other}": rev}
    early = tablet.submission(_visit(other, other_member, annual_income=20000), base_revs=base)
    second.clock.observe(Hlc.parse(early["hlc"]))
    late = second.submission(_visit(other, other_member, annual_income=25000), base_revs=base)
    assert second.push([late]).get_json()["results"][0]["status"] == "accepted"
    result = tablet.push([early]).get_json()["results"][0]
    assert any(c["field"] == "annual_income" for c in result.get("conflicts", [])), result
    # A visit on a form version the server does not have: quarantined.
    refused = tablet.submission(_visit(other, other_member), version=99)
    assert tablet.push([refused]).get_json()["results"][0]["status"] == "rejected"
    return {"case_no": case_no, "refused": refused["instance_id"]}


def _log_in_as_township_reviewer(browser: WebDriver, site: Site) -> None:
    browser.get(f"{site.url}/login")
    wait_for(browser, "#username").send_keys(TOWN_SUPERVISOR)
    browser.find_element(By.ID, "password").send_keys(TOWN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(browser, "nav.menu")


def _set(browser: WebDriver, css: str, value: str) -> None:
    """Set a date field (typing into one depends on the browser's locale)."""
    browser.execute_script("arguments[0].value = arguments[1]", wait_for(browser, css), value)


def _submit(browser: WebDriver, form_css: str) -> None:
    """Submit the form and wait for the page it leads to (not the flash of the one before)."""
    button = browser.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]")
    _click_and_wait(browser, button)


def _click_and_wait(browser: WebDriver, element: Any) -> None:
    element.click()
    wait_for_new_page(browser, element)
    wait_for(browser, "p.flash.ok")


def test_two_levels_take_a_case_through_its_steps(site, browser, work):
    _log_in_as_township_reviewer(browser, site)
    browser.find_element(By.CSS_SELECTOR, "nav.menu a[href='/cases']").click()
    wait_for(browser, "nav.queues")
    # The township's own queue is empty: the case waits at the village review, the other tab.
    assert work["case_no"] not in page_text(browser)
    browser.find_element(By.PARTIAL_LINK_TEXT, "村级评议公示").click()
    wait_for(browser, "table.cases")
    browser.find_element(By.LINK_TEXT, work["case_no"]).click()
    wait_for(browser, ".step-form")
    text = page_text(browser)
    assert "户主住院，医疗支出大" in text and "入户核查" in text and "collector1" in text
    screenshot(browser, "case")

    today = datetime.now(UTC).date()
    _set(browser, "#s-deliberation", (today - timedelta(days=12)).isoformat())
    _set(browser, "#s-notice-start", (today - timedelta(days=10)).isoformat())
    _set(browser, "#s-notice-end", (today - timedelta(days=3)).isoformat())
    browser.find_element(By.ID, "s-comment").send_keys("村民代表大会评议通过，公示无异议")
    _submit(browser, ".step-form form")
    assert "乡镇初审" in page_text(browser)

    browser.find_element(By.ID, "s-comment").send_keys("乡镇核查属实")
    _submit(browser, ".step-form form")
    text = page_text(browser)
    assert "县级审定" in text and "乡镇核查属实" in text
    assert not browser.find_elements(By.CSS_SELECTOR, ".step-form")  # the county's step

    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait_for(browser, "#username")
    log_in(browser, site, "supervisor")
    browser.get(f"{site.url}/cases")
    wait_for(browser, "table.cases")
    browser.find_element(By.LINK_TEXT, work["case_no"]).click()
    wait_for(browser, ".step-form")
    Select(browser.find_element(By.ID, "s-type")).select_by_value("sudden_difficulty")
    browser.find_element(By.CSS_SELECTOR, "input[name=risk_causes][value=illness]").click()
    browser.find_element(By.ID, "s-comment").send_keys("县级比对审定")
    _submit(browser, ".step-form form")
    text = page_text(browser)
    assert "已批准" in text and "突发严重困难户" in text
    assert "township_reviewer" in text and "supervisor" in text


def test_resolve_a_conflict_and_dismiss_a_quarantined_submission(site, browser, work):
    log_in(browser, site, "supervisor")
    browser.get(f"{site.url}/conflicts?field=annual_income")
    wait_for(browser, "article.conflict")
    text = page_text(browser)
    assert "25000" in text and "20000" in text
    screenshot(browser, "conflicts")
    open_before = len(browser.find_elements(By.CSS_SELECTOR, "article.conflict"))
    _click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, "button[name=choose][value=loser]")
    )
    assert "20000" in browser.find_element(By.CSS_SELECTOR, "p.flash.ok").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "article.conflict")) == open_before - 1
    browser.get(f"{site.url}/conflicts?status=resolved&field=annual_income")
    wait_for(browser, "p.resolution")
    assert "supervisor" in browser.find_element(By.CSS_SELECTOR, "p.resolution").text

    browser.get(f"{site.url}/quarantine")
    wait_for(browser, "article.quarantined")
    assert work["refused"] in page_text(browser)
    screenshot(browser, "quarantine")
    browser.find_element(By.ID, f"reason-{work['refused']}").send_keys("旧版表单，已重新采集")
    _click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.dismiss button"))
    assert work["refused"] not in page_text(browser)
    # The Reviewed filter shows it again, with who dismissed it and why.
    Select(browser.find_element(By.ID, "f-review_status")).select_by_value("dismissed")
    show = browser.find_element(By.CSS_SELECTOR, "form.filters button")
    show.click()
    wait_for_new_page(browser, show)
    wait_for(browser, "article.quarantined")
    text = page_text(browser)
    assert work["refused"] in text and "旧版表单，已重新采集" in text and "supervisor" in text
    assert not browser.find_elements(By.CSS_SELECTOR, "form.dismiss")


def test_review_pages_pass_axe_at_desktop_and_tablet_width(site, browser, work):
    log_in(browser, site, "supervisor")
    browser.get(f"{site.url}/cases?stage=")
    wait_for(browser, "table.cases")
    case_link = browser.find_element(By.CSS_SELECTOR, "table.cases a").get_attribute("href")
    pages = [
        "/cases?stage=",
        case_link,
        "/warnings?status=",
        "/conflicts?status=",
        "/quarantine",
        "/quarantine?review_status=all",
    ]
    for width, height in ((1366, 768), (768, 1024)):
        browser.set_window_size(width, height)
        for path in pages:
            browser.get(path if path.startswith("http") else site.url + path)
            wait_for(browser, "main h1")
            assert axe_violations(browser) == [], f"{path} at {width}px"
            overflow = horizontal_overflow(browser)
            assert overflow <= 0, f"{overflow}px of horizontal overflow on {path} at {width}px"
    browser.set_window_size(1366, 768)
    for path, name in (("/cases?stage=", "cases"), ("/warnings?status=", "warnings")):
        browser.get(site.url + path)
        wait_for(browser, "main h1")
        screenshot(browser, name)
