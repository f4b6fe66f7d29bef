"""Console fixtures: a browser-like client that logs in through the login form (CSRF included)
and reads pages as HTML. Pages are tested through the real app, on both databases."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "the page has no CSRF field"
    return unescape(match.group(1))


def text_of(html: str) -> str:
    """The page's visible text, tags removed and spaces collapsed (for `in` assertions)."""
    without_scripts = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", without_scripts))).strip()


@dataclass
class ConsoleBrowser:
    """A Flask test client used like a browser: GET pages, POST forms with their CSRF token."""

    client: FlaskClient
    lang: str = "zh"

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def page(self, path: str, status: int = 200) -> str:
        response = self.client.get(path)
        assert response.status_code == status, (response.status_code, response.data[:500])
        return response.get_data(as_text=True)

    def post(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        form_page: str | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        """POST `data` to `path` with the CSRF token of `form_page` (default: `path` itself, or
        the dashboard when `path` is not a page)."""
        source = self.client.get(form_page or "/")
        fields = {"csrf_token": csrf_of(source.get_data(as_text=True)), **(data or {})}
        return self.client.post(path, data=fields, **kwargs)

    def login(self, username: str, password: str = PASSWORD) -> TestResponse:
        page = self.client.get("/login")
        response = self.client.post(
            "/login",
            data={
                "csrf_token": csrf_of(page.get_data(as_text=True)),
                "username": username,
                "password": password,
            },
        )
        return response

    def use_language(self, code: str) -> None:
        response = self.client.get(f"/language/{code}")
        assert response.status_code == 302
        self.lang = code


ConsoleFactory = Callable[..., ConsoleBrowser]


@pytest.fixture
def console(app: Flask) -> ConsoleFactory:
    """`console(username=None, lang="zh")` → a fresh browser-like client, logged in as `username`
    when given (asserting the login worked)."""

    def make(username: str | None = None, lang: str = "zh") -> ConsoleBrowser:
        browser = ConsoleBrowser(app.test_client())
        if lang != "zh":
            browser.use_language(lang)
        if username is not None:
            response = browser.login(username)
            assert response.status_code == 302, text_of(response.get_data(as_text=True))[:300]
        return browser

    return make
