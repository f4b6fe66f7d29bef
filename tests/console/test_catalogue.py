"""The Chinese catalogue covers every message of the console, and pages use it."""

from __future__ import annotations

from server.console import catalog
from server.console.i18n import load_translations


def test_every_console_message_has_a_chinese_translation():
    assert catalog.missing() == [], "run python -m server.console.catalog and translate"


def test_the_catalogue_is_read_from_the_po_file():
    zh = load_translations("zh")
    assert zh.gettext("Log out") == "退出登录"
    assert (
        zh.gettext("Too many failed attempts. Try again in %(seconds)s seconds.").count(
            "%(seconds)s"
        )
        == 1
    )
    assert load_translations("en").gettext("Log out") == "Log out"


def test_extraction_finds_messages_in_code_and_templates():
    ids = {message.id for message in catalog.extract() if message.id}
    assert "Log in" in ids  # templates/console/login.html
    assert "Wrong username or password, or the account is disabled." in ids  # pages/auth.py
    assert "Dashboard" in ids  # nav.py, through lazy_gettext
