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
from forms.plan import SubmissionPlan
from forms.register import ENTITIES
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
    results as calling both, at about the cost of one — and last `register_bound_issues`: a
    value the form allows but its register column cannot hold is a field-level issue."""
    if not isinstance(data, dict):
        return CheckedSubmission(not_an_object(), [])
    with SubmissionContext(definition, data, today=today, now=now) as context:
        issues = validate_in(context)
        if issues:
            return CheckedSubmission(issues, [])
        updates = updates_in(context)
        issues = register_bound_issues(context.plan, updates)
        if issues:
            return CheckedSubmission(issues, [])
        return CheckedSubmission([], updates)


def register_bound_issues(
    plan: SubmissionPlan, updates: list[EntityUpdate]
) -> list[ValidationIssue]:
    """Every bound value of `updates` that does not fit its register column
    (`forms.register.RegisterField.problem`), at the path of the answer it came from."""
    issues: list[ValidationIssue] = []
    for u in updates:
        specs = ENTITIES[u.type].fields
        answer_names: dict[str, str] | None = None
        for name, value in u.fields.items():
            spec = specs.get(name)
            if spec is None or spec.fits(value):
                continue
            problem = spec.problem(value)
            if problem is None:
                continue
            if answer_names is None:
                entity = plan.entities_by_name.get(u.entity)
                bound = entity.bound if entity is not None else ()
                answer_names = {register: f.name for f, register in bound}
            code, message = problem
            path = f"{u.path}.{answer_names.get(name, name)}"
            issues.append(ValidationIssue(path, code, message))
    return issues
