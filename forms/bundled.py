"""The forms shipped with fieldsync (`forms/library/*.json`) and their sample answers
(`forms/library/samples/<form_id>.json`), found and loaded from the installed package.

Reads packaged files only; never the database, never a user-supplied path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from forms.definition import FormDefinition
from forms.definition_schema import load_definition

LIBRARY_DIR = Path(__file__).parent / "library"
SAMPLES_DIR = LIBRARY_DIR / "samples"
BUNDLED_FORM_IDS = ("household_register", "household_visit", "monitoring_application")
_FORM_ID = re.compile(r"[a-z][a-z0-9_]{1,63}")


def bundled_form_path(form_id: str) -> Path:
    """The path of bundled form `form_id`; KeyError if fieldsync ships no such form."""
    if form_id not in BUNDLED_FORM_IDS:
        raise KeyError(form_id)
    return LIBRARY_DIR / f"{form_id}.json"


def load_bundled_form(form_id: str) -> FormDefinition:
    """Bundled form `form_id`, loaded and checked (KeyError if unknown, DefinitionError if the
    packaged file is broken, which the tests prevent)."""
    raw = json.loads(bundled_form_path(form_id).read_text(encoding="utf-8"))
    return load_definition(raw)


def load_bundled_forms() -> dict[str, FormDefinition]:
    """Every bundled form by form id, loaded and checked."""
    return {form_id: load_bundled_form(form_id) for form_id in BUNDLED_FORM_IDS}


def load_sample_answers(form_id: str) -> dict[str, object]:
    """The sample answers (`data`) shipped for bundled form `form_id` (KeyError if none)."""
    if not _FORM_ID.fullmatch(form_id) or form_id not in BUNDLED_FORM_IDS:
        raise KeyError(form_id)
    path = SAMPLES_DIR / f"{form_id}.json"
    if not path.is_file():
        raise KeyError(form_id)
    loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
