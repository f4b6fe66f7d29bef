"""Validation of one submission's answers against the exact definition version it was filled in.

Collects every problem as a ValidationIssue with a `data.…` path; never stops at the first, never
raises on bad data, never changes the data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from forms.answer_types import (
    is_unanswered,
    is_valid_uuid,
    parse_iso_date,
    parse_rfc3339,
)
from forms.answers import FrameChain, SubmissionContext
from forms.definition import Choice, Field, FieldType, FormDefinition, Text
from forms.expressions import ExpressionError, Value
from forms.expressions.patterns import UnsafePatternError, compile_safe_pattern
from forms.expressions.values import to_boolean
from forms.issues import IssueCode, ValidationIssue


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
    context = SubmissionContext(
        definition,
        data,
        today=today or date.today(),
        now=now or datetime.now(UTC),
    )
    return validate_in(context, strict_relevance=strict_relevance)


def not_an_object() -> list[ValidationIssue]:
    """The one issue of answers that are not a JSON object at all."""
    return [ValidationIssue("data", IssueCode.INVALID_TYPE, "answers must be a JSON object")]


def validate_in(
    context: SubmissionContext, *, strict_relevance: bool = False
) -> list[ValidationIssue]:
    """`validate_submission` on answers already read into a context (which keeps the relevance
    and values it computed, so binding the same context afterwards evaluates nothing twice)."""
    validator = _Validator(context.definition, context, strict_relevance)
    validator.instance(context.root)
    return validator.issues


class _Validator:
    def __init__(
        self, definition: FormDefinition, context: SubmissionContext, strict_relevance: bool
    ) -> None:
        self.definition = definition
        self.context = context
        self.strict_relevance = strict_relevance
        self.issues: list[ValidationIssue] = []
        self.id_fields = {(entity.scope, entity.id_field) for entity in definition.entities}

    def report(self, path: str, code: IssueCode, message: str) -> None:
        self.issues.append(ValidationIssue(path, code, message))

    def instance(self, chain: FrameChain) -> None:
        frame = chain[-1]
        fields = self.definition.fields_in(frame.scope)
        for key in frame.instance:
            if key not in fields:
                self.report(f"{frame.path}.{key}", IssueCode.UNKNOWN_FIELD, "no such field")
        for f in fields.values():
            self.field(chain, f)

    def field(self, chain: FrameChain, f: Field) -> None:
        frame = chain[-1]
        path = f"{frame.path}.{f.name}"
        raw = frame.instance.get(f.name)
        if f.type in (FieldType.NOTE, FieldType.CALCULATED):
            return
        if not self.context.relevant(chain, f):
            if self.strict_relevance and not is_unanswered(raw):
                self.report(path, IssueCode.NOT_RELEVANT, "answer given to a non-relevant field")
            return
        if f.type is FieldType.REPEAT:
            self.repeat(chain, f, path, raw)
            return
        if is_unanswered(raw):
            if self.is_required(chain, f):
                self.report(path, IssueCode.REQUIRED, "an answer is required")
            return
        parsed = self.context.parsed(chain, f)
        if parsed.code is not None:
            self.report(path, parsed.code, parsed.message)
            return
        if (frame.scope, f.name) in self.id_fields and not is_valid_uuid(raw):
            self.report(path, IssueCode.INVALID_ID, "an entity id must be a UUID")
            return
        if (
            f.type is FieldType.SELECT_MULTIPLE
            and parsed.value == ()
            and self.is_required(chain, f)
        ):
            self.report(path, IssueCode.REQUIRED, "select at least one choice")
            return
        if self.limits(path, f, raw, parsed.value) and self.choices(chain, path, f, parsed.value):
            self.constraint(chain, path, f, parsed.value)

    def is_required(self, chain: FrameChain, f: Field) -> bool:
        if (chain[-1].scope, f.name) in self.id_fields:
            return True
        if isinstance(f.required, bool):
            return f.required
        try:
            return to_boolean(self.context.evaluate_in(chain, f.required))
        except ExpressionError:
            return False

    def repeat(self, chain: FrameChain, f: Field, path: str, raw: object) -> None:
        if raw is not None and not isinstance(raw, list):
            self.report(path, IssueCode.INVALID_TYPE, "a repeat must be a list of objects")
            return
        items = raw or []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.report(f"{path}[{index}]", IssueCode.INVALID_TYPE, "expected an object")
        count = len(items)
        minimum = f.min_count or 0
        if minimum == 0 and self.is_required(chain, f):
            minimum = 1
        if count < minimum:
            self.report(path, IssueCode.TOO_FEW_REPEATS, f"at least {minimum} required")
        if f.max_count is not None and count > f.max_count:
            self.report(path, IssueCode.TOO_MANY_REPEATS, f"at most {f.max_count} allowed")
        for frame in self.context.instances(chain, f):
            self.instance((*chain, frame))

    def limits(self, path: str, f: Field, raw: object, value: Value) -> bool:
        ok = True
        if f.type in (FieldType.INTEGER, FieldType.DECIMAL, FieldType.DATE, FieldType.DATETIME):
            low, high = _bound(f.type, f.minimum), _bound(f.type, f.maximum)
            if low is not None and value < low:  # type: ignore[operator]
                self.report(path, IssueCode.BELOW_MIN, f"must be at least {f.minimum}")
                ok = False
            if high is not None and value > high:  # type: ignore[operator]
                self.report(path, IssueCode.ABOVE_MAX, f"must be at most {f.maximum}")
                ok = False
        if f.type is FieldType.TEXT and isinstance(raw, str):
            if f.min_length is not None and len(raw) < f.min_length:
                self.report(path, IssueCode.TOO_SHORT, f"at least {f.min_length} characters")
                ok = False
            if f.max_length is not None and len(raw) > f.max_length:
                self.report(path, IssueCode.TOO_LONG, f"at most {f.max_length} characters")
                ok = False
            if f.pattern is not None and not _matches(f.pattern, raw):
                self.report(path, IssueCode.PATTERN_MISMATCH, "does not have the expected form")
                ok = False
        return ok

    def choices(self, chain: FrameChain, path: str, f: Field, value: Value) -> bool:
        if f.type not in (FieldType.SELECT_ONE, FieldType.SELECT_MULTIPLE):
            return True
        allowed = {choice.code for choice in self.allowed_choices(chain, f)}
        selected = value if isinstance(value, tuple) else (value,)
        unknown = [code for code in selected if code not in allowed]
        if unknown:
            listed = ", ".join(repr(code) for code in unknown)
            self.report(path, IssueCode.INVALID_CHOICE, f"not a valid choice here: {listed}")
            return False
        return True

    def allowed_choices(self, chain: FrameChain, f: Field) -> list[Choice]:
        choices = list(self.definition.choices_for(f))
        if f.choice_filter is None:
            return choices
        allowed = []
        for choice in choices:
            columns: dict[str, Value] = {**choice.attributes, "name": choice.code}
            try:
                keep = to_boolean(self.context.evaluate_in(chain, f.choice_filter, choice=columns))
            except ExpressionError:
                keep = False
            if keep:
                allowed.append(choice)
        return allowed

    def constraint(self, chain: FrameChain, path: str, f: Field, value: Value) -> None:
        if f.constraint is None:
            return
        try:
            ok = to_boolean(self.context.evaluate_in(chain, f.constraint, current=value))
        except ExpressionError:
            ok = False
        if not ok:
            message = (
                str(f.constraint_message)
                if isinstance(f.constraint_message, Text)
                else f"constraint not met: {f.constraint.source}"
            )
            self.report(path, IssueCode.CONSTRAINT_FAILED, message)


def _bound(field_type: FieldType, bound: object) -> object:
    if bound is None:
        return None
    if field_type is FieldType.DATE:
        return parse_iso_date(bound)
    if field_type is FieldType.DATETIME:
        return parse_rfc3339(bound)
    return bound


def _matches(pattern: str, text: str) -> bool:
    try:
        return compile_safe_pattern(pattern).fullmatch(text) is not None
    except UnsafePatternError:
        return False
