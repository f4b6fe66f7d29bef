"""The console's message catalogue: `python -m server.console.catalog` extracts every message from
the console's code and templates and merges them into each language's `.po` file (new messages
come in untranslated, messages no longer used are dropped). `missing()` lists what is not yet
translated; a test keeps it empty, so no page shows an English string in the Chinese console."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from server.console.i18n import DEFAULT, po_path

SOURCES = Path(__file__).parent
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.do"}}
TRANSLATED = (DEFAULT,)
HEADER = (
    "# The fieldsync web console's messages in Chinese.\n"
    "# Written in English in the code; update with `python -m server.console.catalog`."
)


def extract() -> Catalog:
    """Every message the console shows, from `server/console/` (code and templates)."""
    catalog = Catalog(project="fieldsync", charset="utf-8")
    for filename, lineno, message, comments, _context in extract_from_dir(
        SOURCES, METHODS, keywords=KEYWORDS, options_map=OPTIONS
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments)
    return catalog


def read(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project="fieldsync", charset="utf-8")
    with path.open("rb") as po:
        return read_po(po, locale=language)


def update() -> list[str]:
    """Merge the extracted messages into each translated language; return what is untranslated."""
    template = extract()
    for language in TRANSLATED:
        catalog = read(language)
        created = catalog.creation_date
        catalog.update(template, no_fuzzy_matching=True)
        # A stable header: only message changes show in a diff.
        catalog.creation_date = created
        catalog.revision_date = created
        catalog.fuzzy = False
        catalog.project, catalog.version = "fieldsync", "console"
        catalog.header_comment = HEADER
        catalog.last_translator = catalog.language_team = "fieldsync"
        catalog.msgid_bugs_address = ""
        path = po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as po:
            write_po(
                po,
                catalog,
                width=100,
                ignore_obsolete=True,
                sort_output=True,
                omit_header=False,
                include_lineno=False,
            )
    return missing()


def missing() -> list[str]:
    """`language: message` for each extracted message without a translation."""
    template = extract()
    gaps = []
    for language in TRANSLATED:
        catalog = read(language)
        for message in template:
            if not message.id:
                continue
            found = catalog.get(message.id)
            if found is None or not found.string or found.fuzzy:
                gaps.append(f"{language}: {message.id}")
    return gaps


if __name__ == "__main__":
    untranslated = update()
    for gap in untranslated:
        print(f"untranslated {gap}")
    sys.exit(1 if untranslated else 0)
