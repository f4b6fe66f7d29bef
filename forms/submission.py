"""Checking and binding a submission in one pass: what a server or a tablet does with every
filled form. The answers are read into one `SubmissionContext`, so each relevance expression and
calculation is evaluated once for validation and binding together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from forms.answers import SubmissionContext
from forms.bindings import EntityUpdate, updates_in
from forms.definition import FormDefinition
from forms.issues import ValidationIssue
from forms.validation import not_an_object, validate_in


@dataclass(frozen=True)
class CheckedSubmission:
    """Every problem with the answers, or (when there is none) the register updates they ask
    for; `updates` is empty whenever `issues` is not."""

    issues: list[ValidationIssue]
    updates: list[EntityUpdate]


def check_submission(
    definition: FormDefinition, data: object, *, today: date, now: datetime
) -> CheckedSubmission:
    """`validate_submission` then, for valid answers, `derive_register_updates` — the same
    results as calling both, at about the cost of one."""
    if not isinstance(data, dict):
        return CheckedSubmission(not_an_object(), [])
    with SubmissionContext(definition, data, today=today, now=now) as context:
        issues = validate_in(context)
        if issues:
            return CheckedSubmission(issues, [])
        return CheckedSubmission([], updates_in(context))
