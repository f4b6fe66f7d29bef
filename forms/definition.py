"""The typed, immutable model of a form definition and its canonical JSON form and content hash.

Built by `forms.definition_schema.load_definition`, which checks everything; constructing these
classes by hand skips those checks. Never reads files, the clock or the register.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from forms.expressions import Expression

EntityType = Literal["household", "member"]
Bound = int | float | str
"""A `min`/`max`: a number for numeric fields, ISO text for date, datetime and time fields."""


class FieldType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    SELECT_ONE = "select_one"
    SELECT_MULTIPLE = "select_multiple"
    GEOPOINT = "geopoint"
    ATTACHMENT = "attachment"
    NOTE = "note"
    CALCULATED = "calculated"
    REPEAT = "repeat"
    TIME = "time"
    BARCODE = "barcode"
    GEOTRACE = "geotrace"
    GEOSHAPE = "geoshape"
    RANK = "rank"


VALUE_TYPES = frozenset(
    {FieldType.TEXT, FieldType.INTEGER, FieldType.DECIMAL, FieldType.BOOLEAN, FieldType.DATE}
)
"""The types a calculated field's result may be declared as (`value_type`)."""

SELECT_TYPES = frozenset({FieldType.SELECT_ONE, FieldType.SELECT_MULTIPLE})

CHOICE_TYPES = frozenset({*SELECT_TYPES, FieldType.RANK})
"""The types that answer from a list of choices (`choices`, `choice_filter`, `choices_file`)."""

TEXT_TYPES = frozenset({FieldType.TEXT, FieldType.BARCODE})
"""The types whose answer is free text (`min_length`, `max_length`, `pattern`)."""

NUMERIC_TYPES = frozenset({FieldType.INTEGER, FieldType.DECIMAL})


class AttachmentMedia(StrEnum):
    PHOTO = "photo"
    SIGNATURE = "signature"
    DOCUMENT = "document"
    AUDIO = "audio"
    VIDEO = "video"
    FILE = "file"


@dataclass(frozen=True)
class Text:
    """A label in Chinese and English, and optionally in more languages.

    `others` holds the other languages as `(tag, text)` pairs sorted by tag; tags are lower-case
    BCP 47 (`fr`, `sw`, `pt-br`), never `zh` or `en` (checked by `load_definition`).
    """

    zh: str
    en: str
    others: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en, **dict(self.others)}

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language tag the text has: `zh`, `en`, then the others by tag."""
        return ("zh", "en", *(tag for tag, _ in self.others))

    def get(self, language: str) -> str | None:
        """The text in `language` (a tag such as `fr`), or None when it has none."""
        if language == "zh":
            return self.zh
        if language == "en":
            return self.en
        return dict(self.others).get(language)

    def in_language(self, language: str) -> str:
        """The text in `language`; when it has none, in the language it names without its
        region (`pt` for `pt-br`), else in English."""
        found = self.get(language)
        if found is None and "-" in language:
            found = self.get(language.split("-", 1)[0])
        return self.en if found is None else found

    def __str__(self) -> str:
        return self.zh if self.zh == self.en else f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class Choice:
    """One option of a choice list: its code, its label and extra columns used by choice filters."""

    code: str
    label: Text
    attributes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"code": self.code, "label": self.label.to_dict()}
        if self.attributes:
            result["attributes"] = dict(self.attributes)
        return result


@dataclass(frozen=True)
class Entity:
    """A register entity the form creates or updates (see `sync-protocol.md`, Forms)."""

    name: str
    type: EntityType
    id_field: str
    create: bool
    repeat: str | None = None
    parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "id_field": self.id_field,
            "create": self.create,
        }
        if self.repeat is not None:
            result["repeat"] = self.repeat
        if self.parent is not None:
            result["parent"] = self.parent
        return result

    @property
    def scope(self) -> tuple[str, ...]:
        """The repeat path the entity lives in (empty for the top level)."""
        return tuple(self.repeat.split(".")) if self.repeat else ()


@dataclass(frozen=True)
class Field:
    """One question (or note, calculation or repeat) of a form."""

    name: str
    type: FieldType
    label: Text | None = None
    hint: Text | None = None
    required: bool | Expression = False
    relevant: Expression | None = None
    constraint: Expression | None = None
    constraint_message: Text | None = None
    minimum: Bound | None = None
    maximum: Bound | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    choices: str | tuple[Choice, ...] | None = None
    choice_filter: Expression | None = None
    calculation: Expression | None = None
    value_type: FieldType | None = None
    media: AttachmentMedia | None = None
    min_count: int | None = None
    max_count: int | None = None
    bind: str | None = None
    fields: tuple[Field, ...] = ()
    step: int | float | None = None
    count: Expression | None = None
    choices_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name, "type": self.type.value}
        for key, text in (
            ("label", self.label),
            ("hint", self.hint),
            ("constraint_message", self.constraint_message),
        ):
            if text is not None:
                result[key] = text.to_dict()
        if self.required is not False:
            result["required"] = (
                self.required.source if isinstance(self.required, Expression) else True
            )
        for key, expression in (
            ("relevant", self.relevant),
            ("constraint", self.constraint),
            ("choice_filter", self.choice_filter),
            ("calculation", self.calculation),
            ("count", self.count),
        ):
            if expression is not None:
                result[key] = expression.source
        optional: dict[str, Any] = {
            "min": self.minimum,
            "max": self.maximum,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "pattern": self.pattern,
            "value_type": self.value_type.value if self.value_type else None,
            "media": self.media.value if self.media else None,
            "min_count": self.min_count,
            "max_count": self.max_count,
            "bind": self.bind,
            "step": self.step,
            "choices_file": self.choices_file,
        }
        result.update({k: v for k, v in optional.items() if v is not None})
        if isinstance(self.choices, str):
            result["choices"] = self.choices
        elif self.choices is not None:
            result["choices"] = [choice.to_dict() for choice in self.choices]
        if self.type is FieldType.REPEAT:
            result["fields"] = [child.to_dict() for child in self.fields]
        return result

    @property
    def binding(self) -> tuple[str, str] | None:
        """`(entity name, register field)` of `bind`, or None."""
        if self.bind is None:
            return None
        entity, _, register_field = self.bind.partition(".")
        return entity, register_field

    @property
    def result_type(self) -> FieldType:
        """The type of the value this field holds (a calculation's declared `value_type`)."""
        if self.type is FieldType.CALCULATED and self.value_type is not None:
            return self.value_type
        return self.type


@dataclass(frozen=True)
class FormDefinition:
    """A whole form: id, version, title, entities, choice lists and fields.

    `choice_lists` holds every list the fields use, including snapshots of the register's and the
    shared library's lists (under their `register.` / `library.` names), so that a definition is
    self-contained and its hash covers every label a tablet shows.
    """

    form_id: str
    title: Text
    fields: tuple[Field, ...]
    entities: tuple[Entity, ...] = ()
    choice_lists: dict[str, tuple[Choice, ...]] = field(default_factory=dict)
    version: int | None = None
    _scopes: dict[tuple[str, ...], dict[str, Field]] = field(init=False, repr=False, compare=False)
    memo: dict[Hashable, Any] = field(init=False, repr=False, compare=False)
    """Facts other modules derive from the definition alone (the plan submissions are checked
    with: compiled expressions, resolved references, the fields bound to each entity), computed
    on first use and kept: a definition never changes."""

    def __post_init__(self) -> None:
        scopes: dict[tuple[str, ...], dict[str, Field]] = {(): {}}
        for path, f in self.iter_fields():
            scopes.setdefault(path[:-1], {}).setdefault(f.name, f)
            if f.type is FieldType.REPEAT:
                scopes.setdefault(path, {})
        object.__setattr__(self, "_scopes", scopes)
        object.__setattr__(self, "memo", {})

    def fields_in(self, scope: tuple[str, ...]) -> dict[str, Field]:
        """The fields directly in `scope` (a repeat path; `()` is the top level), by name."""
        return self._scopes.get(scope, {})

    @property
    def scopes(self) -> tuple[tuple[str, ...], ...]:
        """Every scope: the top level `()` and each repeat's path."""
        return tuple(self._scopes)

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-compatible data, normalised (labels always `{"zh","en",…}`).

        `load_definition(d.to_dict())` gives back an equal definition.
        """
        result: dict[str, Any] = {
            "form_id": self.form_id,
            "title": self.title.to_dict(),
            "entities": [entity.to_dict() for entity in self.entities],
            "fields": [f.to_dict() for f in self.fields],
        }
        if self.choice_lists:
            result["choice_lists"] = {
                name: [choice.to_dict() for choice in choices]
                for name, choices in sorted(self.choice_lists.items())
            }
        if self.version is not None:
            result["version"] = self.version
        return result

    def canonical_json(self) -> str:
        """`to_dict()` as compact JSON with sorted keys and unescaped Chinese text."""
        return canonical_json(self.to_dict())

    def content_hash(self) -> str:
        """SHA-256 (hex) of `canonical_json()`, version included: the published version's ETag."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def iter_fields(self) -> Iterator[tuple[tuple[str, ...], Field]]:
        """Every field with its path of names (`("members", "name")`), depth first, in order."""
        return _iter_fields((), self.fields)

    def find_field(self, path: tuple[str, ...]) -> Field | None:
        """The field at `path` (names from the top), or None."""
        fields = self.fields
        found: Field | None = None
        for name in path:
            found = next((f for f in fields if f.name == name), None)
            if found is None:
                return None
            fields = found.fields
        return found

    def choices_for(self, f: Field) -> tuple[Choice, ...]:
        """The choices of a select field (inline, or its named list); empty if it has none."""
        if isinstance(f.choices, str):
            return self.choice_lists.get(f.choices, ())
        return f.choices or ()


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys and non-ASCII text kept as is: the form hashed and compared."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _iter_fields(
    prefix: tuple[str, ...], fields: tuple[Field, ...]
) -> Iterator[tuple[tuple[str, ...], Field]]:
    for f in fields:
        path = (*prefix, f.name)
        yield path, f
        if f.type is FieldType.REPEAT:
            yield from _iter_fields(path, f.fields)
