"""In a real browser: the dashboard of the demo county, drilling down to a township and a village
by clicking, back up by the breadcrumb, another year chosen; axe-core clean and no sideways
overflow at desktop and tablet width."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from server.demo.county import COUNTY_CODE, TOWNSHIP_CODES
from tests.console.browser.conftest import (
    axe_violations,
    follow,
    horizontal_overflow,
    log_in,
    page_text,
    screenshot,
    wait_for,
)


def test_drill_down_from_the_county_to_a_village_and_back(site, browser):
    log_in(browser, site, "supervisor")
    wait_for(browser, "#child-regions")
    assert "云溪县" in page_text(browser)
    screenshot(browser, "dashboard")

    township = browser.find_element(By.CSS_SELECTOR, "#child-regions tbody a")
    township_name = township.text
    follow(browser, township, f"a[href*='region={COUNTY_CODE}']")
    assert township_name in browser.find_element(By.TAG_NAME, "h1").text
    assert f"region={TOWNSHIP_CODES[0]}" in browser.current_url

    village = browser.find_element(By.CSS_SELECTOR, "#child-regions tbody a")
    village_name = village.text
    follow(browser, village, "#activity")
    assert village_name in browser.find_element(By.TAG_NAME, "h1").text
    assert not browser.find_elements(By.ID, "child-regions")  # a village has no rows below

    Select(browser.find_element(By.ID, "year")).select_by_index(1)
    follow(browser, browser.find_element(By.CSS_SELECTOR, ".year-form button"), "#activity")
    assert "year=" in browser.current_url and village_name in page_text(browser)

    follow(
        browser,
        browser.find_element(By.CSS_SELECTOR, f".crumbs a[href*='region={COUNTY_CODE}']"),
        "#child-regions",
    )
    assert "云溪县" in browser.find_element(By.TAG_NAME, "h1").text


def test_a_collector_chooses_one_of_their_villages_and_is_refused_the_county(site, browser):
    log_in(browser, site, "collector1")
    villages = browser.find_elements(By.CSS_SELECTOR, "main tbody a")
    assert len(villages) == 4  # the four villages of their township, each a root of theirs
    name = villages[0].text
    follow(browser, villages[0], ".stats")
    assert name in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(f"{site.url}/?region={COUNTY_CODE}")
    wait_for(browser, "h1")
    assert "无权操作" in page_text(browser)


def test_the_dashboard_passes_axe_at_desktop_and_tablet_width(site, browser):
    log_in(browser, site, "supervisor")
    for path in ("/", f"/?region={TOWNSHIP_CODES[0]}"):
        for width, height in ((1366, 768), (768, 1024)):
            browser.set_window_size(width, height)
            browser.get(site.url + path)
            wait_for(browser, "#activity")
            assert axe_violations(browser) == [], f"{path} at {width}px"
            assert horizontal_overflow(browser) <= 0, f"{path} overflows at {width}px"
