"""In a real browser: an administrator creates a user, grants a region through the region picker,
resets the password, disables and enables the account, and the new user logs in and sees only
that region; a supervisor gets the 403 page for users; provisioning a tablet shows its QR code.
The users and devices pages pass axe-core at desktop and tablet width without sideways overflow."""

from __future__ import annotations

import uuid

import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from server.demo.county import TOWNSHIP_CODES, VILLAGE_CODES
from server.devices.models import DeviceEnrolment
from tests.console.browser.conftest import (
    WAIT_SECONDS,
    axe_violations,
    horizontal_overflow,
    log_in,
    page_text,
    screenshot,
    wait_for,
)

FIRST_PASSWORD = "first-password-2026"
NEW_PASSWORD = "second-password-2026"
VILLAGE = VILLAGE_CODES[TOWNSHIP_CODES[0]][0]  # 上坪村 of 青石镇


def _click_link(browser: WebDriver, text: str) -> None:
    browser.find_element(By.LINK_TEXT, text).click()


def _accept_confirmation(browser: WebDriver) -> None:
    WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.alert_is_present())
    browser.switch_to.alert.accept()


def _patiently(browser: WebDriver) -> WebDriverWait:
    """A wait that looks again when the page it looked at was replaced meanwhile."""
    return WebDriverWait(
        browser, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,)
    )


def _wait_for_position(browser: WebDriver, name: str) -> None:
    """Wait until the region picker stands at the region `name`."""

    def is_there(driver: WebDriver) -> bool:
        here = driver.find_elements(By.CSS_SELECTOR, "[aria-current=location]")
        return any(element.text == name for element in here)

    _patiently(browser).until(is_there)


def _wait_for_text(browser: WebDriver, text: str) -> None:
    _patiently(browser).until(lambda driver: text in page_text(driver))


def _log_out(browser: WebDriver) -> None:
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait_for(browser, "#username")


def _fits_and_passes_axe(browser: WebDriver, what: str) -> None:
    for width, height in ((1366, 768), (768, 1024)):
        browser.set_window_size(width, height)
        assert axe_violations(browser) == [], f"{what} at {width}px"
        overflow = horizontal_overflow(browser)
        assert overflow <= 0, f"{what}: {overflow}px of horizontal overflow at {width}px"
    browser.set_window_size(1366, 768)


def test_an_admin_creates_a_user_who_then_logs_in_to_their_region(site, browser):
    log_in(browser, site, "admin")
    _click_link(browser, "用户")
    wait_for(browser, "#new-username")
    assert "collector1" in page_text(browser) and "新建用户" in page_text(browser)
    _fits_and_passes_axe(browser, "users")
    screenshot(browser, "users")

    browser.find_element(By.ID, "new-username").send_keys("wang.fang")
    browser.find_element(By.ID, "new-display_name").send_keys("王芳")
    Select(browser.find_element(By.ID, "new-role")).select_by_value("collector")
    browser.find_element(By.ID, "new-password").send_keys(FIRST_PASSWORD)
    browser.find_element(By.ID, "new-password_again").send_keys(FIRST_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, ".user-create button[type=submit]").click()
    _wait_for_text(browser, "已创建用户 wang.fang")
    assert browser.current_url.endswith("/users/wang.fang")
    assert "未授予任何辖区" in page_text(browser)

    # Down the region tree to 青石镇, then grant its first village.
    for name in ("演示省", "演示市", "云溪县", "青石镇"):
        _click_link(browser, name)
        _wait_for_position(browser, name)
    assert "演示省 › 演示市 › 云溪县 › 青石镇" in page_text(browser)
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='授予上坪村']").click()
    _wait_for_text(browser, f"已授予辖区 {VILLAGE}")
    grants = browser.find_element(By.CSS_SELECTOR, "table.grants").text
    assert "上坪村" in grants and VILLAGE in grants
    _fits_and_passes_axe(browser, "user page")
    screenshot(browser, "user")

    browser.find_element(By.ID, "reset-password").send_keys(NEW_PASSWORD)
    browser.find_element(By.ID, "reset-password-again").send_keys(NEW_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action$='/password'] button").click()
    _wait_for_text(browser, "已修改 wang.fang 的密码")

    browser.find_element(By.CSS_SELECTOR, "form[action$='/disable'] button").click()
    _accept_confirmation(browser)
    _wait_for_text(browser, "已停用 wang.fang")
    assert "启用账号" in page_text(browser)
    browser.find_element(By.CSS_SELECTOR, "form[action$='/enable'] button").click()
    _wait_for_text(browser, "wang.fang 可以重新登录了")

    _log_out(browser)
    log_in(browser, site, "wang.fang", NEW_PASSWORD)
    text = page_text(browser)
    # Their dashboard is their village's, and nothing of the other township shows.
    assert "wang.fang" in text and "上坪村" in text
    assert "白水乡" not in text and TOWNSHIP_CODES[1] not in browser.page_source
    assert "用户" not in browser.find_element(By.CSS_SELECTOR, "nav.menu").text


def test_a_supervisor_gets_the_403_page_for_users(site, browser):
    log_in(browser, site, "supervisor")
    assert "用户" not in browser.find_element(By.CSS_SELECTOR, "nav.menu").text
    browser.get(site.url + "/users")
    wait_for(browser, "main h1")
    assert "无权操作" in page_text(browser)
    assert "collector1" not in page_text(browser)


def _latest_code(site) -> str:
    """The code of the newest enrolment, as the tablet reads it from the QR code."""
    with site.rt.db.unit_of_work(write=False) as session:
        made = session.scalars(
            select(DeviceEnrolment).order_by(DeviceEnrolment.created_at.desc())
        ).first()
        code: str = site.rt.codec.unseal(made.code_cipher, f"enrolment:{made.id}")
        return code


def test_provisioning_a_tablet_shows_its_qr_code_until_the_tablet_uses_it(site, browser):
    log_in(browser, site, "admin")
    _click_link(browser, "设备")
    wait_for(browser, "#enrol-username")

    browser.find_element(By.ID, "enrol-username").send_keys("collector1")
    browser.find_element(By.ID, "enrol-label").send_keys("青石镇 5 号平板")
    Select(browser.find_element(By.ID, "enrol-expires")).select_by_value("3600")
    browser.find_element(By.CSS_SELECTOR, "#enrol button[type=submit]").click()
    image = wait_for(browser, "figure.qr img")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script(
            "const img = arguments[0]; return img.complete && img.naturalWidth > 0;", image
        )
    )
    text = page_text(browser)
    assert "collector1 的平板" in text and "等待平板扫码" in text and site.url in text
    _fits_and_passes_axe(browser, "enrolment")
    screenshot(browser, "enrolment")

    # The tablet scans the code: the open page notices, says so and takes the picture away.
    tablet = str(uuid.uuid4())
    enrolled = requests.post(
        f"{site.url}/api/v1/auth/enrol",
        json={"code": _latest_code(site), "device_id": tablet, "label": "青石镇 5 号平板"},
        timeout=WAIT_SECONDS,
    )
    assert enrolled.status_code == 200, enrolled.text
    _wait_for_text(browser, "已被平板使用")
    assert browser.find_elements(By.CSS_SELECTOR, "figure.qr") == []

    # The new tablet is on the devices page; revoke it.
    _click_link(browser, "设备")
    row = wait_for(browser, f"code[title='{tablet}']").find_element(By.XPATH, "./ancestor::tr")
    assert "青石镇 5 号平板" in row.text and "collector1" in row.text
    _fits_and_passes_axe(browser, "devices")
    screenshot(browser, "devices")
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    _accept_confirmation(browser)
    _wait_for_text(browser, "已吊销该平板")
    row = wait_for(browser, f"code[title='{tablet}']").find_element(By.XPATH, "./ancestor::tr")
    assert "已吊销" in row.text and row.find_elements(By.CSS_SELECTOR, "button") == []


def test_a_code_revoked_before_use_shows_no_qr_code(site, browser):
    log_in(browser, site, "supervisor")
    browser.get(f"{site.url}/devices?enrol=collector2#enrol")
    wait_for(browser, "#enrol-username")
    browser.find_element(By.CSS_SELECTOR, "#enrol button[type=submit]").click()
    wait_for(browser, "figure.qr img")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/revoke'] button").click()
    _accept_confirmation(browser)
    _wait_for_text(browser, "已吊销注册码")
    assert browser.find_elements(By.CSS_SELECTOR, "figure.qr") == []
    assert "此注册码已不能使用" in page_text(browser)
