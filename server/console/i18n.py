"""Languages: Chinese (the default) and English, chosen by `?lang=` (remembered in a cookie), then
the cookie, never guessed from the browser (county offices share machines set up in any language).

Messages are written in English in the code and templates (`_("Households")`) and translated in
`translations/zh.po`, which is read as it is: no compiled `.mo` to keep in
step. `python -m server.console.catalog` extracts the messages and updates that file.
"""

from __future__ import annotations

from functools import cached_property
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, request
from flask_babel import Babel, Domain, get_locale

TRANSLATIONS = Path(__file__).parent / "translations"
DOMAIN = "messages"
DEFAULT = "zh"
# Code → the language's own name, as the language switch shows it.
LANGUAGES = {"zh": "中文", "en": "English"}
LANG_COOKIE = "fieldsync_lang"
# The HTML `lang` attribute of each language.
HTML_LANG = {"zh": "zh-Hans", "en": "en"}
TIMEZONE = "Asia/Shanghai"


def po_path(language: str) -> Path:
    return TRANSLATIONS / f"{language}.po"


def load_translations(language: str) -> NullTranslations:
    """The catalogue of `language` read from its `.po` file (English: the messages as written)."""
    path = po_path(language)
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


class _PoDomain(Domain):  # type: ignore[misc]  # Flask-Babel is untyped
    """Flask-Babel's domain, reading each language's `.po` once per process (static data)."""

    def __init__(self) -> None:
        super().__init__(domain=DOMAIN)
        self._loaded: dict[str, NullTranslations] = {}

    def get_translations(self) -> NullTranslations:
        language = str(get_locale() or DEFAULT)
        if language not in self._loaded:
            self._loaded[language] = load_translations(language)
        return self._loaded[language]


class _Babel(Babel):  # type: ignore[misc]  # Flask-Babel is untyped
    """Flask-Babel with the `.po`-reading domain as every request's default."""

    @cached_property
    def domain_instance(self) -> Domain:
        return _PoDomain()


def select_locale() -> str:
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(LANG_COOKIE, "")
    return remembered if remembered in LANGUAGES else DEFAULT


def current_language() -> str:
    return str(get_locale() or DEFAULT)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", TIMEZONE)
    _Babel(app, locale_selector=select_locale, default_domain=DOMAIN)
