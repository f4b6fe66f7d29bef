"""Browser tests: the real console served by the real app over HTTP, driven in headless Chromium
(Debian's `chromium` and `chromium-driver`; `make test` installs them when it can, `.ci/run`
requires them). Without them these tests skip and say why, unless FIELDSYNC_TEST_BROWSER=required,
which makes that a failure (as in CI).

One demo county per module (`site`), served by a threaded server on a free port; one browser per
test (`browser`), 1366×768 unless a test resizes it. `axe_violations()` runs axe-core (bundled with
the `selenium-axe-python` package) in the page. Screenshots go to a temporary folder, or to
FIELDSYNC_SCREENSHOTS_DIR when set (`make screenshots` writes docs/screenshots/)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import BaseWSGIServer, make_server

from server import migrate
from server.app import create_app
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.service import load_demo_county
from server.runtime import Runtime
from tests.conftest import cheap_settings

CHROMIUM = os.environ.get("FIELDSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FIELDSYNC_CHROMEDRIVER", "/usr/bin/chromedriver")
# Generous: a busy shared machine can take seconds to render what takes milliseconds at rest.
WAIT_SECONDS = 60
PASSWORDS = {account.username: account.password for account in DEMO_ACCOUNTS}


def _browser_missing() -> str:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return (
                f"{path} is not installed: the browser tests need Debian's chromium and "
                "chromium-driver packages (make test installs them when run as root)"
            )
    return ""


@pytest.fixture(scope="session", autouse=True)
def _require_browser() -> None:
    reason = _browser_missing()
    if not reason:
        return
    if os.environ.get("FIELDSYNC_TEST_BROWSER", "").lower() == "required":
        pytest.fail(f"FIELDSYNC_TEST_BROWSER=required but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Site:
    """The demo county served over HTTP."""

    url: str
    app: Flask
    rt: Runtime


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("console-site")
    database_url = f"sqlite:///{folder / 'fieldsync.db'}"
    migrate.upgrade(database_url)
    app = create_app(cheap_settings(database_url, folder))
    rt: Runtime = app.extensions["fieldsync"]
    with rt.db.unit_of_work() as session:
        load_demo_county(session, rt.codec, rt.passwords)
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console-site", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", app, rt)
    finally:
        server.shutdown()
        thread.join()
        rt.db.dispose()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1366,768",
        "--lang=en-US",  # the console must not follow the browser: Chinese stays the default
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, css: str) -> Any:
    """The first element matching `css`, waiting (patiently) for it to appear."""
    return WebDriverWait(driver, WAIT_SECONDS).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def follow(driver: WebDriver, element: Any, css: str) -> Any:
    """Click `element` (a link or submit button), wait for the next page to replace this one,
    then for `css` on it (a selector the old page may have had too)."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait_for_new_page(driver, old)
    return wait_for(driver, css)


def horizontal_overflow(driver: WebDriver) -> int:
    """How many pixels the page is wider than the window (0 or less: no sideways scrolling)."""
    return int(
        driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


def log_in(driver: WebDriver, site: Site, username: str, password: str | None = None) -> None:
    """Log in through the login form and wait for the dashboard."""
    driver.get(f"{site.url}/login")
    wait_for(driver, "#username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password or PASSWORDS[username])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(driver, "nav.menu")


def _gone(exc: WebDriverException) -> bool:
    """Whether `exc` says the element belonged to a page that has since been replaced (Chromium
    says it either way: a stale element, or a node that "does not belong to the document")."""
    return isinstance(exc, StaleElementReferenceException) or "does not belong to the document" in (
        exc.msg or ""
    )


def page_text(driver: WebDriver) -> str:
    """The page's visible text; "" while a new page is replacing the old one (so that a wait on
    the text simply waits on)."""
    try:
        text: str = driver.find_element(By.TAG_NAME, "body").text
    except WebDriverException as exc:
        if _gone(exc) or isinstance(exc, NoSuchElementException):
            return ""
        raise
    return text


def wait_for_new_page(driver: WebDriver, old: Any) -> None:
    """Wait until the page that held the element `old` has been replaced (after a click that
    submits a form or follows a link)."""

    def replaced(_driver: WebDriver) -> bool:
        try:
            old.is_enabled()
        except WebDriverException as exc:
            if _gone(exc):
                return True
            raise
        return False

    WebDriverWait(driver, WAIT_SECONDS).until(replaced)


_AXE_SOURCE: str | None = None


def axe_violations(driver: WebDriver, impacts: tuple[str, ...] = ("serious", "critical")) -> list:
    """axe-core's violations of the current page at the given impacts (rule id, impact, nodes)."""
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = (
            resources.files("selenium_axe_python").joinpath("axe-core/axe.min.js").read_text()
        )
    driver.execute_script(_AXE_SOURCE)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations)).catch(e => done([{id: 'axe-error', "
        "impact: 'critical', nodes: [String(e)]}]));"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [n.get("target") if isinstance(n, dict) else n for n in v["nodes"]][:5],
        }
        for v in result
        if v.get("impact") in impacts
    ]


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the page as `<name>.png` (docs/screenshots/ under `make screenshots`)."""
    folder = Path(os.environ.get("FIELDSYNC_SCREENSHOTS_DIR") or _temporary_shots())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _temporary_shots() -> str:
    return str(Path(os.environ.get("TMPDIR", "/tmp")) / "fieldsync-console-screenshots")
