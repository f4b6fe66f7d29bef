"""In a real browser: find a household in the demo county by its head's name and by its village,
open its page, reveal its sensitive values as a supervisor, refer it; axe-core clean and no
sideways overflow at desktop and tablet width on the search and household pages."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.console.browser.conftest import (
    axe_violations,
    follow,
    horizontal_overflow,
    log_in,
    page_text,
    screenshot,
    wait_for,
)


def _first_head(browser) -> tuple[str, str]:
    """(household number, head's name) of the first listed household."""
    row = browser.find_element(By.CSS_SELECTOR, "#results tbody tr")
    cells = row.find_elements(By.TAG_NAME, "td")
    return cells[0].text, cells[1].text


def test_find_a_household_open_it_reveal_and_refer(site, browser):
    log_in(browser, site, "supervisor")
    follow(
        browser, browser.find_element(By.CSS_SELECTOR, "nav.menu a[href='/households']"), "#results"
    )
    _number, head = _first_head(browser)
    screenshot(browser, "households")

    browser.find_element(By.ID, "head_name").send_keys(head)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#household-search button"), "#results")
    assert head in page_text(browser)
    assert "head_name=" in browser.current_url

    village = Select(browser.find_element(By.ID, "region"))
    village.select_by_index(2)  # the first village of the first township
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#household-search button"), "#results")

    follow(browser, browser.find_element(By.CSS_SELECTOR, "#results tbody a"), "#values")
    text = page_text(browser)
    assert "当前信息" in text and "家庭成员" in text and "时间线" in text
    assert "登记导入" in text  # the demo register was loaded, not visited
    assert "***" in browser.find_element(By.ID, "members").text
    screenshot(browser, "household")

    follow(browser, browser.find_element(By.ID, "reveal"), "#values")
    assert "***" not in browser.find_element(By.ID, "members").text
    assert "reveal=1" in browser.current_url

    browser.find_element(By.CSS_SELECTOR, "#refer input[value=illness]").click()
    browser.find_element(By.ID, "note").send_keys("入户排查发现因病风险")
    flash = follow(
        browser, browser.find_element(By.CSS_SELECTOR, "#refer button[type=submit]"), ".flash.ok"
    )
    assert "已转入监测" in flash.text
    assert "入户核查" in browser.find_element(By.ID, "case").text


def test_a_collector_cannot_reveal(site, browser):
    log_in(browser, site, "collector2")
    browser.get(site.url + "/households")
    wait_for(browser, "#results")
    assert "白水" in page_text(browser)  # their township's villages
    follow(browser, browser.find_element(By.CSS_SELECTOR, "#results tbody a"), "#values")
    assert not browser.find_elements(By.ID, "reveal")


def test_register_pages_pass_axe_at_desktop_and_tablet_width(site, browser):
    log_in(browser, site, "supervisor")
    browser.get(site.url + "/households")
    wait_for(browser, "#results")
    household = browser.find_element(By.CSS_SELECTOR, "#results tbody a").get_attribute("href")
    for url in (site.url + "/households", household):
        for width, height in ((1366, 768), (768, 1024)):
            browser.set_window_size(width, height)
            browser.get(url)
            wait_for(browser, "main h1")
            assert axe_violations(browser) == [], f"{url} at {width}px"
            assert horizontal_overflow(browser) <= 0, f"{url} overflows at {width}px"
