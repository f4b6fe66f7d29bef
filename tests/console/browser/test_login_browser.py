"""In a real browser: log in, see the dashboard in Chinese, switch to English, log out; the
login page and dashboard pass axe-core at desktop and tablet width."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.console.browser.conftest import (
    axe_violations,
    horizontal_overflow,
    log_in,
    page_text,
    screenshot,
    wait_for,
)


def test_log_in_switch_language_and_log_out(site, browser):
    browser.get(site.url + "/")
    wait_for(browser, "#username")
    assert "/login" in browser.current_url
    assert "登录" in page_text(browser)
    screenshot(browser, "login")

    log_in(browser, site, "supervisor")
    text = page_text(browser)
    assert "supervisor" in text and "退出登录" in text and "首页概览" in text

    browser.find_element(By.CSS_SELECTOR, "a[lang=en]").click()
    wait_for(browser, "html[lang=en]")
    assert "Log out" in page_text(browser)

    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait_for(browser, "#username")
    assert "/login" in browser.current_url
    browser.get(site.url + "/")
    wait_for(browser, "#username")
    assert "/login" in browser.current_url


def test_a_wrong_password_is_shown_on_the_form(site, browser):
    browser.get(site.url + "/login")
    wait_for(browser, "#username").send_keys("supervisor")
    browser.find_element(By.ID, "password").send_keys("not-the-password")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    alert = wait_for(browser, "[role=alert]")
    assert "用户名或密码错误" in alert.text


def test_login_and_dashboard_pass_axe_at_desktop_and_tablet_width(site, browser):
    for width, height in ((1366, 768), (768, 1024)):
        browser.set_window_size(width, height)
        browser.get(site.url + "/login")
        wait_for(browser, "#username")
        assert axe_violations(browser) == [], f"login at {width}px"
    log_in(browser, site, "admin")
    for width, height in ((1366, 768), (768, 1024)):
        browser.set_window_size(width, height)
        browser.get(site.url + "/")
        wait_for(browser, "nav.menu")
        assert axe_violations(browser) == [], f"dashboard at {width}px"
        # Nothing overflows sideways at this width.
        overflow = horizontal_overflow(browser)
        assert overflow <= 0, f"{overflow}px of horizontal overflow at {width}px"
