"""Validation of one submission's answers against the exact definition version it was filled in.

Collects every problem as a ValidationIssue with a `data.…` path; never stops at the first, never
raises on bad data, never changes the data.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

from forms.answer_types import AnswerProblem, is_valid_uuid
from forms.answers import Frame, SubmissionContext
from forms.definition import FieldType, FormDefinition
from forms.expressions import Condition, ExpressionError, Program, Value
from forms.expressions.values import to_number
from forms.issues import IssueCode, ValidationIssue
from forms.plan import Choices, FieldPlan, Limits

_STEP_CONTEXT = decimal.Context(prec=800, Emax=10_000, Emin=-10_000)
"""Exact enough for any answer (|x| ≤ 10¹⁵, 17 digits) divided by any step a definition allows."""


def validate_submission(
    definition: FormDefinition,
    data: object,
    *,
    today: date | None = None,
    now: datetime | None = None,
    strict_relevance: bool = False,
) -> list[ValidationIssue]:
    """Every problem with `data` (a submission's answers) under `definition`; empty when valid.

    `today`/`now` are the clock for `today()`, `now()` and `age()`; pass the submission's
    `collected_at` so that the server judges relevance as the tablet did (default: the system
    clock). Rules:

    - Unanswered means missing, null or ''. Required fields (or entity id fields) that are
      relevant and unanswered give `required`; a required repeat needs at least one instance.
    - Answers to fields that are not relevant are ignored (not validated, not bound); with
      `strict_relevance=True` they are reported as `not_relevant` instead.
    - Keys the definition does not know give `unknown_field`; values given for notes and
      calculated fields are ignored (calculations are recomputed by `derive_register_updates`).
    - A constraint is only checked on an answered, otherwise valid value; an evaluation error
      counts as a failed constraint.
    """
    if not isinstance(data, dict):
        return not_an_object()
    with SubmissionContext(
        definition,
        data,
        today=today or date.today(),
        now=now or datetime.now(UTC),
    ) as context:
        return validate_in(context, strict_relevance=strict_relevance)


# Reading an enum member is a descriptor call in Python 3.11: the loop over every field compares
# with these constants instead.
_REPEAT = FieldType.REPEAT
_SELECT_MULTIPLE = FieldType.SELECT_MULTIPLE


def not_an_object() -> list[ValidationIssue]:
    """The one issue of answers that are not a JSON object at all."""
    return [ValidationIssue("data", IssueCode.INVALID_TYPE, "answers must be a JSON object")]


def validate_in(
    context: SubmissionContext, *, strict_relevance: bool = False
) -> list[ValidationIssue]:
    """`validate_submission` on answers already read into a context (which keeps the relevance
    and values it computed, so binding the same context afterwards evaluates nothing twice)."""
    validator = _Validator(context, strict_relevance)
    validator.instance(context.root)
    return validator.issues


class _Validator:
    # Walks the plan of each scope; a field's path is only spelled out when it has an issue.

    def __init__(self, context: SubmissionContext, strict_relevance: bool) -> None:
        self.context = context
        self.strict_relevance = strict_relevance
        self.issues: list[ValidationIssue] = []

    def report(self, frame: Frame, f: FieldPlan, code: IssueCode, message: str) -> None:
        self.issues.append(ValidationIssue(f"{frame.path}.{f.name}", code, message))

    def instance(self, frame: Frame) -> None:
        instance = frame.instance
        fields = frame.plan.fields
        if not fields.keys() >= instance.keys():  # some key is no field: report each, in order
            for key in instance:
                if key not in fields:
                    self.issues.append(
                        ValidationIssue(
                            f"{frame.path}.{key}", IssueCode.UNKNOWN_FIELD, "no such field"
                        )
                    )
        # The path every field takes is inline here, the rest in the methods below: this loop
        # runs for every field of every submission.
        context = self.context
        relevance = frame.relevance
        parsed = frame.parsed
        for f in frame.plan.checked:  # notes and calculations take no answer: nothing to check
            name = f.name
            raw = instance.get(name)
            if f.relevant is not None and not (relevance.get(name) or context.relevant(frame, f)):
                if self.strict_relevance and not (raw is None or raw == ""):
                    self.report(
                        frame, f, IssueCode.NOT_RELEVANT, "answer given to a non-relevant field"
                    )
                continue
            if f.type is _REPEAT:
                self.repeat(frame, f, raw)
                continue
            if raw is None or raw == "":
                if self.is_required(frame, f):
                    self.report(frame, f, IssueCode.REQUIRED, "an answer is required")
                continue
            # `SubmissionContext.answer`, inlined: most answers are read here first.
            if name in parsed:
                value = parsed[name]
            else:
                reader = f.reader
                value = parsed[name] = None if reader is None else reader(raw)
            if isinstance(value, AnswerProblem):
                self.report(frame, f, value.code, value.message)
                continue
            if f.is_id and not is_valid_uuid(raw):
                self.report(frame, f, IssueCode.INVALID_ID, "an entity id must be a UUID")
                continue
            if f.type is _SELECT_MULTIPLE and value == () and self.is_required(frame, f):
                self.report(frame, f, IssueCode.REQUIRED, "select at least one choice")
                continue
            if f.limits is not None and not self.limits(frame, f, f.limits, raw, value):
                continue
            if f.choices is not None and not self.choices(frame, f, f.choices, value):
                continue
            if f.constraint is not None:
                self.constraint(frame, f, f.constraint, value)

    def is_required(self, frame: Frame, f: FieldPlan) -> bool:
        if f.required_when is None:
            return f.required
        try:
            return f.required_when(frame.memo.environment or self.context.environment(frame))
        except ExpressionError:
            return False

    def repeat(self, frame: Frame, f: FieldPlan, raw: object) -> None:
        if raw is not None and not isinstance(raw, list):
            self.report(frame, f, IssueCode.INVALID_TYPE, "a repeat must be a list of objects")
            return
        items = raw or []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.issues.append(
                    ValidationIssue(
                        f"{frame.path}.{f.name}[{index}]",
                        IssueCode.INVALID_TYPE,
                        "expected an object",
                    )
                )
        count = len(items)
        declared = f.field
        minimum = declared.min_count or 0
        if minimum == 0 and self.is_required(frame, f):
            minimum = 1
        reported = False
        if count < minimum:
            self.report(frame, f, IssueCode.TOO_FEW_REPEATS, f"at least {minimum} required")
            reported = True
        if declared.max_count is not None and count > declared.max_count:
            self.report(
                frame, f, IssueCode.TOO_MANY_REPEATS, f"at most {declared.max_count} allowed"
            )
            reported = True
        if f.count is not None and not reported:
            self.repeat_count(frame, f, f.count, count)
        for instance in self.context.instances(frame, f):
            self.instance(instance)

    def repeat_count(self, frame: Frame, f: FieldPlan, program: Program, count: int) -> None:
        """The repeat's `count`, when it evaluates to a number, is how many instances it needs
        (truncated to a whole number; below zero is zero)."""
        try:
            result = program(frame.memo.environment or self.context.environment(frame))
        except ExpressionError:
            return
        number = to_number(result) if not isinstance(result, bool) else None
        if number is None or not math.isfinite(number):
            return
        expected = max(0, int(number))
        if count < expected:
            self.report(
                frame, f, IssueCode.TOO_FEW_REPEATS, f"exactly {expected} required (its count)"
            )
        elif count > expected:
            self.report(
                frame, f, IssueCode.TOO_MANY_REPEATS, f"exactly {expected} allowed (its count)"
            )

    def limits(self, frame: Frame, f: FieldPlan, limits: Limits, raw: object, value: Value) -> bool:
        ok = True
        if limits.low is not None and value < limits.low:
            self.report(frame, f, IssueCode.BELOW_MIN, limits.below_message)
            ok = False
        if limits.high is not None and value > limits.high:
            self.report(frame, f, IssueCode.ABOVE_MAX, limits.above_message)
            ok = False
        if limits.step is not None and not _on_step(value, limits.origin, limits.step):
            self.report(frame, f, IssueCode.OFF_STEP, limits.step_message)
            ok = False
        if isinstance(raw, str):
            if limits.min_length is not None and len(raw) < limits.min_length:
                self.report(
                    frame, f, IssueCode.TOO_SHORT, f"at least {limits.min_length} characters"
                )
                ok = False
            if limits.max_length is not None and len(raw) > limits.max_length:
                self.report(frame, f, IssueCode.TOO_LONG, f"at most {limits.max_length} characters")
                ok = False
            if limits.matches is not None and not limits.matches(raw):
                self.report(frame, f, IssueCode.PATTERN_MISMATCH, "does not have the expected form")
                ok = False
        return ok

    def choices(self, frame: Frame, f: FieldPlan, choices: Choices, value: Value) -> bool:
        allowed: frozenset[str] | set[str] = choices.codes
        if choices.filter is not None:
            allowed = self.filtered(frame, choices.filter, choices.columns)
        selected = value if isinstance(value, tuple) else (value,)
        if allowed.issuperset(selected):
            if choices.every and len(selected) != len(allowed):
                missing = ", ".join(repr(code) for code in sorted(allowed - set(selected)))
                self.report(
                    frame, f, IssueCode.INVALID_RANK, f"rank every choice; missing {missing}"
                )
                return False
            return True
        unknown = [code for code in selected if code not in allowed]
        listed = ", ".join(repr(code) for code in unknown)
        self.report(frame, f, IssueCode.INVALID_CHOICE, f"not a valid choice here: {listed}")
        return False

    def filtered(
        self,
        frame: Frame,
        choice_filter: Condition,
        choices: Sequence[tuple[str, Mapping[str, Value]]],
    ) -> set[str]:
        """The codes `choice_filter` keeps in `frame`, each choice judged in list order."""
        allowed = set()
        for code, columns in choices:
            environment = self.context.environment(frame, choice=columns)
            try:
                keep = choice_filter(environment)
            except ExpressionError:
                keep = False
            if keep:
                allowed.add(code)
        return allowed

    def constraint(self, frame: Frame, f: FieldPlan, constraint: Condition, value: Value) -> None:
        environment = self.context.environment(frame, current=value)
        try:
            ok = constraint(environment)
        except ExpressionError:
            ok = False
        if not ok:
            self.report(frame, f, IssueCode.CONSTRAINT_FAILED, f.constraint_message)


def _on_step(value: Value, origin: decimal.Decimal, step: decimal.Decimal) -> bool:
    """Whether the number `value` is `origin` plus a whole multiple of `step`, exactly (a float
    is taken as the decimal it was written as: 0.3 is on the grid of 0.1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True  # only numbers have a step; the type check reported anything else
    exact = decimal.Decimal(value) if isinstance(value, int) else decimal.Decimal(repr(value))
    try:
        return _STEP_CONTEXT.remainder(_STEP_CONTEXT.subtract(exact, origin), step).is_zero()
    except decimal.DecimalException:
        return False
