"""In a real browser: an administrator uploads an XLSForm, sees it listed and publishes it; an
upload with an error shows the problem next to its row; the draft editor checks an edit live,
without a reload; a supervisor runs an export in the background, watches it finish and downloads
the file. Every page passes axe-core at desktop and tablet width without sideways overflow."""

from __future__ import annotations

import csv
import http.client
import io
from pathlib import Path
from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from server.demo.county import VILLAGE_CODES
from tests.console.browser.conftest import (
    WAIT_SECONDS,
    Site,
    axe_violations,
    horizontal_overflow,
    log_in,
    page_text,
    screenshot,
    wait_for,
)
from tests.forms.test_form_xlsform_import import LABELS, workbook_bytes


def water_form(form_id: str, extra: list | None = None) -> bytes:
    survey: list[list[object]] = [
        ["type", "name", *LABELS, "required", "relevant"],
        ["text", "household_id", "农户编号", "Household id", "yes", None],
        ["select_one yesno", "has_water", "饮水安全", "Safe water", "yes", None],
        ["integer", "size", "家庭人口", "Household size", "no", "${has_water} = 'yes'"],
    ]
    if extra is not None:
        survey.append(extra)
    return workbook_bytes(
        {
            "survey": survey,
            "choices": [
                ["list_name", "name", *LABELS],
                ["yesno", "yes", "是", "Yes"],
                ["yesno", "no", "否", "No"],
            ],
            "settings": [["form_id", "form_title"], [form_id, "饮水核查"]],
        }
    )


def upload(browser: WebDriver, site: Site, path: Path) -> None:
    browser.get(site.url + "/forms")
    wait_for(browser, "#xlsform-file").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "form[enctype] button[type=submit]").click()


def check_layout(browser: WebDriver, what: str) -> None:
    """axe-core finds nothing serious, and nothing overflows sideways, at both widths."""
    for width, height in ((1366, 768), (768, 1024)):
        browser.set_window_size(width, height)
        assert axe_violations(browser) == [], f"{what} at {width}px"
        overflow = horizontal_overflow(browser)
        assert overflow <= 0, f"{what}: {overflow}px of horizontal overflow at {width}px"
    browser.set_window_size(1366, 768)


def test_an_admin_uploads_publishes_and_sees_located_problems(site, browser, tmp_path):
    log_in(browser, site, "admin")
    good = tmp_path / "water_check.xlsx"
    good.write_bytes(water_form("water_check"))
    upload(browser, site, good)
    wait_for(browser, "table.questions")
    assert "/forms/water_check/draft" in browser.current_url
    assert "饮水安全" in page_text(browser)
    check_layout(browser, "draft")
    screenshot(browser, "forms-draft")

    browser.get(site.url + "/forms")
    wait_for(browser, "table.forms-list")
    assert "water_check" in page_text(browser) and "尚未发布" in page_text(browser)
    check_layout(browser, "forms list")
    screenshot(browser, "forms")

    browser.find_element(By.LINK_TEXT, "water_check").click()
    wait_for(browser, "h1 code")
    browser.find_element(By.PARTIAL_LINK_TEXT, "发布…").click()
    wait_for(browser, "form[action$='/publish'] button[type=submit]")
    check_layout(browser, "publish confirmation")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/publish'] button[type=submit]").click()
    wait_for(browser, ".flash.ok")
    assert "已发布 water_check 第 1 版" in page_text(browser)
    check_layout(browser, "form detail")
    screenshot(browser, "forms-detail")
    browser.find_element(By.LINK_TEXT, "v1").click()
    wait_for(browser, "table.questions")
    assert "has_water" in page_text(browser)
    check_layout(browser, "version")

    bad = tmp_path / "water_bad.xlsx"
    bad.write_bytes(water_form("water_bad", ["integr", "people", "人数", "People", "no", None]))
    upload(browser, site, bad)
    table = wait_for(browser, "table.xlsform-issues")
    row = table.find_element(By.XPATH, ".//tr[td[normalize-space()='integr']]")
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[:3] == ["survey", "5", "type (A5)"] and "unknown question type" in cells[4]
    check_layout(browser, "upload problems")
    screenshot(browser, "forms-upload-problems")


def test_the_draft_editor_checks_an_edit_without_a_reload(site, browser, tmp_path):
    log_in(browser, site, "admin")
    workbook = tmp_path / "water_live.xlsx"
    workbook.write_bytes(water_form("water_live"))
    upload(browser, site, workbook)
    wait_for(browser, "table.questions")
    browser.get(site.url + "/forms/water_live/draft/questions/size")
    relevant = wait_for(browser, "#relevant")
    check_layout(browser, "question editor")
    browser.execute_script("window.notReloaded = true;")
    relevant.clear()
    relevant.send_keys("${nowhere} = 'yes'")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: "nowhere" in driver.find_element(By.ID, "problems").text
    )
    assert browser.execute_script("return window.notReloaded === true")
    screenshot(browser, "forms-question-live-check")
    relevant.clear()
    relevant.send_keys("${has_water} = 'no'")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: "nowhere" not in driver.find_element(By.ID, "problems").text
    )
    browser.find_element(By.CSS_SELECTOR, "#question-form button[type=submit]").click()
    wait_for(browser, ".flash.ok")
    assert browser.find_element(By.ID, "relevant").get_attribute("value") == "${has_water} = 'no'"


def test_a_supervisor_runs_an_export_in_the_background_and_downloads_it(site, browser):
    log_in(browser, site, "supervisor")
    browser.get(site.url + "/exports")
    wait_for(browser, "#export-form")
    assert "农户" in page_text(browser)
    check_layout(browser, "exports")
    screenshot(browser, "exports")
    browser.find_element(By.ID, "labels").send_keys("中文名称")
    browser.find_element(By.CSS_SELECTOR, "#export-form button[formaction]").click()
    wait_for(browser, ".flash.ok")
    # The list refreshes itself until the download link appears (no reload by hand).
    link = wait_for(browser, "#jobs a.download")
    assert "已完成" in browser.find_element(By.ID, "jobs").text
    check_layout(browser, "exports with a job")
    screenshot(browser, "exports-job-done")

    # The link fetched with the browser's session cookie.
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    address = urlsplit(link.get_attribute("href"))
    connection = http.client.HTTPConnection(address.netloc, timeout=WAIT_SECONDS)
    try:
        connection.request("GET", address.path, headers={"Cookie": cookies})
        response = connection.getresponse()
        assert response.status == 200
        assert response.headers["Content-Disposition"].startswith('attachment; filename="house')
        body = response.read()
    finally:
        connection.close()
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    villages = {code for codes in VILLAGE_CODES.values() for code in codes}
    assert rows and {row["village_code"] for row in rows} <= villages
    assert {row["category"] for row in rows} <= {"脱贫户", "监测户", "一般农户"}

    # Choosing another dataset shows its own filters at once.
    browser.get(site.url + "/exports")
    Select(wait_for(browser, "#dataset")).select_by_value("visits")
    wait_for(browser, "#form_id")
    assert "dataset=visits" in browser.current_url
