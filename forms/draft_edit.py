"""The common edits of a draft definition as plain-data operations: a question's labels (zh/en),
whether it is required, its relevance, and its choices (add, rename, remove). The console's
draft editor uses them; the result is checked like any other draft (`load_definition`).

Works on the draft's JSON data (a draft may be incomplete or invalid) and never changes its
input: every edit returns a new dict. Never decides whether the edited draft is valid.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from forms.choice_lists import REGISTER_PREFIX, find_external_choice_list


class DraftEditError(ValueError):
    """The edit names something the draft does not have (a question path)."""


@dataclass(frozen=True)
class ChoiceEdit:
    """One row of a question's choices after editing: `original` is the code it had (None for a
    new choice); a different `code` renames it; `remove` drops it."""

    code: str
    zh: str
    en: str
    original: str | None = None
    remove: bool = False

    @property
    def is_blank(self) -> bool:
        return self.original is None and not (self.code or self.zh or self.en)


@dataclass(frozen=True)
class FieldEdit:
    """The edited aspects of one question. `required` True/False, or `required_when` an
    expression (which wins); empty `relevant` removes the condition; `choices` None leaves the
    choices as they are."""

    label_zh: str
    label_en: str
    required: bool = False
    required_when: str = ""
    relevant: str = ""
    choices: tuple[ChoiceEdit, ...] | None = None


def iter_questions(raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of the draft with its dotted path (`members.name`), depth first, in order.
    Entries that are not objects with a text `name` are skipped (the checks report them)."""

    def walk(fields: Any, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if not isinstance(fields, list):
            return
        for item in fields:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            path = f"{prefix}{item['name']}"
            yield path, item
            yield from walk(item.get("fields"), f"{path}.")

    yield from walk(raw.get("fields"), "")


def find_question(raw: dict[str, Any], path: str) -> dict[str, Any]:
    """The field at `path`; DraftEditError when there is none."""
    for found_path, item in iter_questions(raw):
        if found_path == path:
            return item
    raise DraftEditError(f"the draft has no question {path!r}")


def choice_list_name(question: dict[str, Any]) -> str | None:
    """The name of the shared choice list the question uses (None: inline choices or none)."""
    choices = question.get("choices")
    return choices if isinstance(choices, str) else None


def has_editable_choices(question: dict[str, Any]) -> bool:
    """Whether the question answers from choices that the editor may change: inline ones or a
    list of the form or the library; never a register list (its codes are the register's)."""
    choices = question.get("choices")
    if isinstance(choices, list):
        return True
    return isinstance(choices, str) and not choices.startswith(REGISTER_PREFIX)


def choices_of(raw: dict[str, Any], question: dict[str, Any]) -> list[dict[str, Any]]:
    """The question's choices as stored (`{"code", "label": {...}}` items): inline, from the
    draft's `choice_lists`, or from a bundled list of that name; [] when it has none."""
    choices = question.get("choices")
    if isinstance(choices, list):
        return [c for c in choices if isinstance(c, dict)]
    if isinstance(choices, str):
        lists = raw.get("choice_lists")
        if isinstance(lists, dict) and isinstance(lists.get(choices), list):
            return [c for c in lists[choices] if isinstance(c, dict)]
        bundled = find_external_choice_list(choices)
        if bundled is not None:
            return [choice.to_dict() for choice in bundled]
    return []


def label_of(item: dict[str, Any], language: str) -> str:
    label = item.get("label")
    if isinstance(label, dict):
        text = label.get(language)
        return text if isinstance(text, str) else ""
    return label if isinstance(label, str) else ""


def apply_field_edit(raw: dict[str, Any], path: str, edit: FieldEdit) -> dict[str, Any]:
    """A copy of the draft `raw` with `edit` applied to the question at `path`.

    Labels keep their other languages. Choices of a shared list are edited in the draft's
    `choice_lists` (every question using the list sees the change; a bundled list is copied into
    the draft first); inline choices in place. Blank new choice rows are ignored.
    Raises DraftEditError for an unknown path."""
    draft = copy.deepcopy(raw)
    question = find_question(draft, path)
    label = question.get("label")
    others = dict(label) if isinstance(label, dict) else {}
    question["label"] = {**others, "zh": edit.label_zh, "en": edit.label_en}
    if edit.required_when.strip():
        question["required"] = edit.required_when.strip()
    elif edit.required:
        question["required"] = True
    else:
        question.pop("required", None)
    if edit.relevant.strip():
        question["relevant"] = edit.relevant.strip()
    else:
        question.pop("relevant", None)
    if edit.choices is not None:
        if not has_editable_choices(question):
            raise DraftEditError(f"the choices of question {path!r} cannot be edited here")
        edited = _edited_choices(choices_of(draft, question), edit.choices)
        name = choice_list_name(question)
        if name is None:
            question["choices"] = edited
        else:
            lists = draft.get("choice_lists")
            if not isinstance(lists, dict):
                lists = draft["choice_lists"] = {}
            lists[name] = edited
    return draft


def _edited_choices(
    current: list[dict[str, Any]], edits: tuple[ChoiceEdit, ...]
) -> list[dict[str, Any]]:
    by_code = {c.get("code"): c for c in current}
    result = []
    for edit in edits:
        if edit.remove or edit.is_blank:
            continue
        before = by_code.get(edit.original) if edit.original is not None else None
        choice = copy.deepcopy(before) if before is not None else {}
        label = choice.get("label")
        others = dict(label) if isinstance(label, dict) else {}
        choice["code"] = edit.code.strip()
        choice["label"] = {**others, "zh": edit.zh, "en": edit.en}
        result.append(choice)
    return result
