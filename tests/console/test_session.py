"""Console sessions: login and logout, the cookies' flags, CSRF, session fixation, language."""

from __future__ import annotations

from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.auth.models import Token
from server.console.session import COOKIE
from server.users.models import Role
from tests.conftest import COUNTY, TOWNSHIP_A
from tests.console.conftest import csrf_of, text_of


def _set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def test_pages_need_a_login_and_come_back_after_it(console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    browser = console()
    response = browser.get("/?tab=x")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    page = browser.page(response.headers["Location"])
    response = browser.client.post(
        "/login",
        data={
            "csrf_token": csrf_of(page),
            "username": "sup",
            "password": "correct-horse-battery",
            "next": "/?tab=x",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/?tab=x"
    assert "sup" in text_of(browser.page("/"))


def test_login_goes_nowhere_but_this_site(console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    browser = console()
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        page = browser.page("/login")
        response = browser.client.post(
            "/login",
            data={
                "csrf_token": csrf_of(page),
                "username": "sup",
                "password": "correct-horse-battery",
                "next": target,
            },
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/", target
        browser.client.delete_cookie(COOKIE)


def test_a_wrong_password_says_so_in_chinese_and_sets_no_session(console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    browser = console()
    response = browser.login("sup", "not-the-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in text_of(response.get_data(as_text=True))
    assert COOKIE not in _set_cookies(response)
    assert browser.get("/").status_code == 302


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(app, console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    plain = console().login("sup")
    cookie = _set_cookies(plain)[COOKIE]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie

    secure_client = app.test_client()
    page = secure_client.get("/login", base_url="https://localhost")
    response = secure_client.post(
        "/login",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
        data={
            "csrf_token": csrf_of(page.get_data(as_text=True)),
            "username": "sup",
            "password": "correct-horse-battery",
        },
    )
    assert response.status_code == 302
    cookies = _set_cookies(response)
    assert "Secure" in cookies[COOKIE] and "HttpOnly" in cookies[COOKIE]
    assert "Secure" in cookies["fieldsync_form"]


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(rt, console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    browser = console("sup")
    for fields in ({}, {"csrf_token": "forged"}):
        response = browser.client.post("/logout", data=fields)
        assert response.status_code == 403
        assert "reload the page" in text_of(response.get_data(as_text=True))
    assert browser.get("/").status_code == 200  # still logged in: logout did not happen
    # Nor can a login be forced on the browser without the form's token.
    fresh = console()
    response = fresh.client.post(
        "/login", data={"username": "sup", "password": "correct-horse-battery"}
    )
    assert response.status_code == 403
    assert COOKIE not in _set_cookies(response)


def test_logout_revokes_the_session_everywhere(rt, console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    browser = console("sup")
    stolen = browser.client.get_cookie(COOKIE).value
    response = browser.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert browser.get("/").status_code == 302
    # The token itself is revoked, not just the cookie removed: a copy of it no longer works.
    thief = console()
    thief.client.set_cookie(COOKIE, stolen)
    assert thief.get("/").status_code == 302
    with rt.db.unit_of_work(write=False) as session:
        revoked = session.scalar(select(func.count()).where(Token.revoked_at.is_not(None)))
    assert revoked == 1


def test_login_replaces_a_planted_session_and_renews_the_csrf_secret(console, create_user_):
    """Session fixation: a cookie set before login (by an attacker) is never adopted."""
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    browser = console()
    browser.client.set_cookie(COOKIE, "planted-by-someone-else")
    before = csrf_of(browser.page("/login"))
    response = browser.login("sup")
    assert response.status_code == 302
    issued = browser.client.get_cookie(COOKIE).value
    assert issued != "planted-by-someone-else"
    after = csrf_of(browser.page("/"))
    assert after != before
    # The old form token no longer validates after login.
    refused = browser.client.post("/logout", data={"csrf_token": before})
    assert refused.status_code == 403


def test_the_console_session_lasts_a_working_day_not_a_tablet_month(rt, console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    console("sup")
    with rt.db.unit_of_work(write=False) as session:
        token = session.scalars(select(Token)).one()
    lifetime = (token.expires_at - token.created_at).total_seconds()
    assert lifetime == rt.settings.console_session_ttl
    with rt.db.unit_of_work(write=False) as session:
        logins = session.scalar(select(func.count()).where(AuditEntry.action == "login"))
    assert logins == 1


def test_chinese_by_default_english_on_request_and_remembered(console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [TOWNSHIP_A])
    browser = console("sup")
    page = browser.page("/")
    assert (
        'lang="zh-Hans"' in page and "退出登录" in text_of(page) and "Log out" not in text_of(page)
    )
    browser.use_language("en")
    page = browser.page("/")
    assert 'lang="en"' in page and "Log out" in text_of(page) and "退出登录" not in text_of(page)
    assert "青石镇" in text_of(page)  # the dashboard of the user's township, by its name
    # An unknown language changes nothing.
    browser.get("/language/xx")
    assert "Log out" in text_of(browser.page("/"))


def test_the_menu_shows_what_the_role_may_open(console, create_user_):
    create_user_("col", Role.COLLECTOR, [TOWNSHIP_A])
    create_user_("adm", Role.ADMIN)
    collector = text_of(console("col", lang="en").page("/"))
    admin = text_of(console("adm", lang="en").page("/"))
    assert "Dashboard" in collector and "Dashboard" in admin
    # An administrator's dashboard starts at the top of the region tree.
    assert "演示省" in admin and "Households under monitoring" in admin


def test_pages_are_not_cached_or_framed(console, create_user_):
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    response = console("sup").get("/")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_an_unknown_address_is_a_page_for_a_browser_and_json_for_the_api(console, client):
    browser = console()
    response = browser.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "未找到" in text_of(response.get_data(as_text=True))
    for path, accept in (("/api/v1/no-such", "text/html"), ("/no-such-page", "application/json")):
        response = client.get(path, headers={"Accept": accept})
        assert response.status_code == 404 and response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == "not_found"
