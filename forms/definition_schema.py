"""The marshmallow schemas that read a form definition's JSON into the typed model, and
`load_definition`, the one way in: shape (here), then meaning (`definition_checks`).

Never touches the register's stored data, the network or the database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, post_load, validate
from marshmallow import fields as ma

from forms.choice_lists import find_external_choice_list
from forms.definition import (
    AttachmentMedia,
    Choice,
    Entity,
    Field,
    FieldType,
    FormDefinition,
    Text,
)
from forms.definition_checks import check_definition, indexed_fields
from forms.expressions import Expression, ExpressionSyntaxError, parse_expression
from forms.issues import DefinitionError, IssueCode, ValidationIssue

FORM_ID_LENGTH = 64  # the forms and submissions tables' form_id columns
FORM_ID = rf"^[a-z][a-z0-9_]{{1,{FORM_ID_LENGTH - 1}}}$"
FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ENTITY_NAME = r"^[a-z][a-z0-9_]{0,31}$"
CHOICE_CODE = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
CHOICE_LIST_NAME = r"^(?:(?:register|library)\.)?[a-z][a-z0-9_]{0,63}$"
BINDING = r"^[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,63}$"
MAX_LABEL_LENGTH = 2_000
LANGUAGE_TAG = r"^[a-z]{2,3}(?:-[a-z0-9]{2,8}){0,3}$"
"""A lower-case BCP 47 tag: a 2–3 letter language, then up to three subtags (`pt-br`,
`zh-hant`, `sr-latn-rs`)."""
MAX_LANGUAGES = 32
"""Languages a text may have besides zh and en."""
CHOICES_FILE = r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,122}\.(?:csv|xml|geojson)$"
MAX_STEP = 10**15
MAX_DEFINITION_DEPTH = 24
"""JSON nesting levels in a definition (enough for repeats four deep)."""
MAX_FIELDS = 2_000
MAX_CHOICES = 20_000


class BilingualText(ma.Field):
    """`{"zh", "en", "<tag>"…}` (zh and en required, other keys lower-case BCP 47 language tags),
    or a plain string meaning the same text in zh and en."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Text:
        return _text(value)


def _text(value: object) -> Text:
    """A label (see `BilingualText`); ValidationError if it is none."""
    if isinstance(value, str):
        return Text(zh=_label_text(value), en=_label_text(value))
    if isinstance(value, dict) and {"zh", "en"} <= set(value):
        others = []
        for tag in sorted(set(value) - {"zh", "en"}):
            if not isinstance(tag, str) or not _LANGUAGE_TAG.fullmatch(tag):
                raise ValidationError(
                    f"{str(tag)[:40]!r} is not a lower-case language tag such as fr, sw or pt-br"
                )
            others.append((tag, _label_text(value[tag])))
        if len(others) > MAX_LANGUAGES:
            raise ValidationError(f"at most {MAX_LANGUAGES} languages besides zh and en")
        return Text(zh=_label_text(value["zh"]), en=_label_text(value["en"]), others=tuple(others))
    raise ValidationError('expected a string or {"zh": ..., "en": ..., "<language>": ...}')


_LANGUAGE_TAG = re.compile(LANGUAGE_TAG)


def _label_text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("a label must be non-empty text")
    if len(value) > MAX_LABEL_LENGTH:
        raise ValidationError(f"a label must be at most {MAX_LABEL_LENGTH} characters")
    return value


class ExpressionText(ma.Field):
    """An expression's source, parsed on load (syntax, functions, limits)."""

    def __init__(
        self, *, allow_current: bool = False, allow_choice_properties: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.allow_current = allow_current
        self.allow_choice_properties = allow_choice_properties

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Expression:
        if not isinstance(value, str):
            raise ValidationError("an expression must be a string")
        try:
            return parse_expression(
                value,
                allow_current=self.allow_current,
                allow_choice_properties=self.allow_choice_properties,
            )
        except ExpressionSyntaxError as err:
            raise ValidationError(str(err)) from None


class RequiredFlag(ma.Field):
    """`true`/`false`, or an expression deciding when an answer is required."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool | Expression:
        if isinstance(value, bool):
            return value
        expression: Expression = ExpressionText().deserialize(value)
        return expression


class BoundValue(ma.Field):
    """A `min`/`max`: a number, or ISO text for dates and date-times (checked per type later)."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int | float | str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValidationError("expected a number or an ISO date text")
        return value


class StepValue(ma.Field):
    """A numeric field's `step`: a positive finite number (whole for integer fields, checked
    later)."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("expected a number")
        if not math.isfinite(value) or not 0 < value <= MAX_STEP:
            raise ValidationError(f"expected a number above 0 and at most {MAX_STEP}")
        return value


class ChoicesValue(ma.Field):
    """A choice list's name, or the choices inline."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | tuple[Choice, ...]:
        if isinstance(value, str):
            validate.Regexp(CHOICE_LIST_NAME, error="not a valid choice list name")(value)
            return value
        if isinstance(value, list):
            return tuple(_load_choices(value))
        raise ValidationError("expected a choice list name or a list of choices")


class ChoiceListValue(ma.Field):
    """A list of choices, read in bulk (see `_load_choices`): what `ma.List(ma.Nested(
    ChoiceSchema))` reads, with the same errors, without one schema load per choice."""

    def _deserialize(
        self, value: object, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[Choice]:
        if not isinstance(value, list | tuple):
            raise ValidationError("Not a valid list.")
        return _load_choices(value)


class ChoiceSchema(Schema):
    # The unknown-key policy is RAISE in every schema: a misspelt key must not pass silently.
    class Meta:
        unknown = RAISE

    code = ma.String(required=True, validate=validate.Regexp(CHOICE_CODE))
    label = BilingualText(required=True)
    attributes = ma.Dict(
        keys=ma.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")),
        values=ma.String(validate=validate.Length(max=200)),
    )

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Choice:
        return Choice(**data)


_CHOICE_KEYS = frozenset({"code", "label", "attributes"})
_CHOICE_CODE = re.compile(CHOICE_CODE)
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CHOICES_SCHEMA = ChoiceSchema(many=True)


def _load_choices(items: list[Any] | tuple[Any, ...]) -> list[Choice]:
    """Choices from their JSON, checked as `ChoiceSchema` checks each one (codes, labels,
    attribute names and lengths, unknown keys) but in one loop: a list of 5,000 villages costs
    what building the choices costs, not 5,000 marshmallow loads. The first choice that is not
    plainly valid sends the whole list through `ChoiceSchema`, which then reports every problem
    exactly as before (same messages, same paths)."""
    choices: list[Choice] = []
    for item in items:
        choice = _plain_choice(item)
        if choice is None:
            loaded: list[Choice] = _CHOICES_SCHEMA.load(items)  # raises with every problem
            return loaded
        choices.append(choice)
    return choices


def _plain_choice(item: object) -> Choice | None:
    """The choice when `ChoiceSchema` accepts `item` unchanged, else None (never a guess: any
    doubt goes to the schema)."""
    if type(item) is not dict or not _CHOICE_KEYS.issuperset(item):
        return None
    code, label = item.get("code"), item.get("label")
    if type(code) is not str or not _CHOICE_CODE.match(code) or label is None:
        return None
    try:
        text = _text(label)
    except ValidationError:
        return None
    if "attributes" not in item:
        return Choice(code=code, label=text)
    attributes = item["attributes"]
    if type(attributes) is not dict or not all(
        type(k) is str and _ATTRIBUTE_NAME.match(k) and type(v) is str and len(v) <= 200
        for k, v in attributes.items()
    ):
        return None
    return Choice(code=code, label=text, attributes=dict(attributes))


class EntitySchema(Schema):
    class Meta:
        unknown = RAISE

    name = ma.String(required=True, validate=validate.Regexp(ENTITY_NAME))
    type = ma.String(required=True, validate=validate.OneOf(["household", "member"]))
    id_field = ma.String(required=True, validate=validate.Regexp(FIELD_NAME))
    create = ma.Boolean(required=True, truthy={True}, falsy={False})
    repeat = ma.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_.]{0,200}$"))
    parent = ma.String(validate=validate.Regexp(ENTITY_NAME))

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Entity:
        return Entity(**data)


class FieldSchema(Schema):
    class Meta:
        unknown = RAISE

    name = ma.String(required=True, validate=validate.Regexp(FIELD_NAME))
    type = ma.Enum(FieldType, by_value=True, required=True)
    label = BilingualText()
    hint = BilingualText()
    required = RequiredFlag()
    relevant = ExpressionText()
    constraint = ExpressionText(allow_current=True)
    constraint_message = BilingualText()
    minimum = BoundValue(data_key="min")
    maximum = BoundValue(data_key="max")
    min_length = ma.Integer(strict=True, validate=validate.Range(min=0, max=10_000))
    max_length = ma.Integer(strict=True, validate=validate.Range(min=0, max=10_000))
    pattern = ma.String(validate=validate.Length(min=1))
    choices = ChoicesValue()
    choice_filter = ExpressionText(allow_choice_properties=True)
    calculation = ExpressionText()
    value_type = ma.Enum(FieldType, by_value=True)
    media = ma.Enum(AttachmentMedia, by_value=True)
    min_count = ma.Integer(strict=True, validate=validate.Range(min=0, max=10_000))
    max_count = ma.Integer(strict=True, validate=validate.Range(min=0, max=10_000))
    bind = ma.String(validate=validate.Regexp(BINDING, error="expected <entity>.<field>"))
    children = ma.List(ma.Nested(lambda: FieldSchema()), data_key="fields")
    step = StepValue()
    count = ExpressionText()
    choices_file = ma.String(
        validate=validate.Regexp(CHOICES_FILE, error="expected a file name such as name.csv")
    )

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> Field:
        data["fields"] = tuple(data.pop("children", ()))
        return Field(**data)


class FormDefinitionSchema(Schema):
    class Meta:
        unknown = RAISE

    form_id = ma.String(required=True, validate=validate.Regexp(FORM_ID))
    version = ma.Integer(strict=True, validate=validate.Range(min=1))
    title = BilingualText(required=True)
    entities = ma.List(ma.Nested(EntitySchema), load_default=list)
    choice_lists = ma.Dict(
        keys=ma.String(validate=validate.Regexp(CHOICE_LIST_NAME)),
        values=ChoiceListValue(validate=validate.Length(min=1)),
        load_default=dict,
    )
    top_fields = ma.List(
        ma.Nested(FieldSchema), required=True, validate=validate.Length(min=1), data_key="fields"
    )

    @post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> FormDefinition:
        return FormDefinition(
            form_id=data["form_id"],
            title=data["title"],
            version=data.get("version"),
            entities=tuple(data["entities"]),
            choice_lists={name: tuple(items) for name, items in data["choice_lists"].items()},
            fields=tuple(data["top_fields"]),
        )


def load_definition(raw: object) -> FormDefinition:
    """Read a definition from JSON data (as `json.loads` gives it) and check it completely.

    Accepts the minimal contract shape of `sync-protocol.md` and everything `docs/forms.md`
    adds. Choice lists named `register.*` or `library.*` that the definition uses but does not
    declare are copied into its `choice_lists`, so the result is self-contained.
    Raises DefinitionError listing every problem, each with a path such as
    `fields[3].fields[0].bind`; never returns a definition that failed a check.
    """
    precheck = _precheck(raw)
    if precheck:
        raise DefinitionError(precheck)
    try:
        definition: FormDefinition = FormDefinitionSchema().load(raw)  # type: ignore[arg-type]
    except ValidationError as err:
        raise DefinitionError(_issues_from_marshmallow(err.messages)) from None
    definition = _with_external_choice_lists(definition)
    issues = check_definition(definition)
    if issues:
        raise DefinitionError(issues)
    return definition


def _precheck(raw: object) -> list[ValidationIssue]:
    # Bound the work before marshmallow recurses: depth, number of fields and of choices.
    if not isinstance(raw, dict):
        return [ValidationIssue("", IssueCode.INVALID_DEFINITION, "expected a JSON object")]
    stack: list[tuple[object, int]] = [(raw, 1)]
    field_count = choice_count = 0
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEFINITION_DEPTH:
            return [
                ValidationIssue("", IssueCode.INVALID_DEFINITION, "definition nested too deeply")
            ]
        if isinstance(value, dict):
            if isinstance(value.get("fields"), list):
                field_count += len(value["fields"])
            if "code" in value:
                choice_count += 1
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    if field_count > MAX_FIELDS or choice_count > MAX_CHOICES:
        return [
            ValidationIssue(
                "",
                IssueCode.INVALID_DEFINITION,
                f"too large: at most {MAX_FIELDS} fields and {MAX_CHOICES} choices",
            )
        ]
    return []


def _issues_from_marshmallow(messages: object, path: str = "") -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    if isinstance(messages, dict):
        for key, nested in messages.items():
            if key == "_schema":
                issues.extend(_issues_from_marshmallow(nested, path))
            elif isinstance(key, int):
                issues.extend(_issues_from_marshmallow(nested, f"{path}[{key}]"))
            else:
                issues.extend(
                    _issues_from_marshmallow(nested, f"{path}.{key}" if path else str(key))
                )
    elif isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict | list):
                issues.extend(_issues_from_marshmallow(message, path))
            else:
                issues.append(ValidationIssue(path, IssueCode.INVALID_DEFINITION, str(message)))
    else:
        issues.append(ValidationIssue(path, IssueCode.INVALID_DEFINITION, str(messages)))
    return issues


def _with_external_choice_lists(definition: FormDefinition) -> FormDefinition:
    lists = dict(definition.choice_lists)
    for _, f in indexed_fields(definition.fields):
        if isinstance(f.choices, str) and f.choices not in lists:
            found = find_external_choice_list(f.choices)
            if found is not None:
                lists[f.choices] = found
    if lists == definition.choice_lists:
        return definition
    return FormDefinition(
        form_id=definition.form_id,
        title=definition.title,
        fields=definition.fields,
        entities=definition.entities,
        choice_lists=lists,
        version=definition.version,
    )
