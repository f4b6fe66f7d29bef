"""How a department's file is read: which column holds the identity number, the name, the
reporting date and each fact, and which words mean yes and no. Saved per source as JSON and
checked here, pure (no Flask, no database), so a bad mapping is refused before any file is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from server.departments.facts import BY_CODE, Department, FactSpec, FactType, facts_of

ENCODINGS = ("auto", "utf-8", "gb18030")
# Words a department writes for yes and no when the mapping names none.
DEFAULT_TRUE = ("是", "1", "Y", "y", "yes", "Yes", "YES", "true", "True", "TRUE", "有")
DEFAULT_FALSE = ("否", "0", "N", "n", "no", "No", "NO", "false", "False", "FALSE", "无")
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")
MAX_COLUMN_NAME = 64


class MappingProblems(Exception):
    """A mapping that cannot be used; `errors` are `{path, code, message}` items."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class FactColumn:
    """Where one fact's value is read from. `column` None: every listed person has `constant`
    (a 低保 roll lists recipients only: being on it means yes)."""

    spec: FactSpec
    column: str | None
    constant: bool | None
    true_words: frozenset[str]
    false_words: frozenset[str]
    codes: Mapping[str, str]  # file text → register choice code (FactType.CODE)


@dataclass(frozen=True)
class ColumnMapping:
    id_number: str
    facts: tuple[FactColumn, ...]
    name: str | None = None
    date: str | None = None
    date_format: str | None = None  # strptime format; None: the usual ones (DATE_FORMATS)
    encoding: str = "auto"
    sheet: str | None = None  # XLSX: the sheet to read (default: the first)
    columns: tuple[str, ...] = field(default=())

    def required_columns(self) -> tuple[str, ...]:
        names = [self.id_number, *(f.column for f in self.facts if f.column is not None)]
        for optional in (self.name, self.date):
            if optional is not None:
                names.append(optional)
        return tuple(dict.fromkeys(names))


def _problem(path: str, message: str, code: str = "invalid_value") -> dict[str, str]:
    return {"path": path, "code": code, "message": message}


def _column(raw: Mapping[str, Any], key: str, path: str, errors: list[dict[str, str]]) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_COLUMN_NAME:
        errors.append(_problem(path, f"a column name of 1 to {MAX_COLUMN_NAME} characters"))
        return None
    return value.strip()


def _words(value: Any, default: tuple[str, ...], path: str, errors: list[dict[str, str]]) -> Any:
    if value is None:
        return frozenset(default)
    if not isinstance(value, list) or not value or not all(isinstance(w, str) for w in value):
        errors.append(_problem(path, "a non-empty list of words"))
        return frozenset()
    return frozenset(w.strip() for w in value)


def department_of(code: str) -> Department:
    """The department of `code` (ValueError if none)."""
    for department in Department:
        if department.value == code:
            return department
    raise ValueError(f"no department {code!r}")


def parse_mapping(department: Department, raw: Any) -> ColumnMapping:
    """The mapping of a source of `department`, or MappingProblems listing every problem."""
    errors: list[dict[str, str]] = []
    if not isinstance(raw, Mapping):
        raise MappingProblems([_problem("mapping", "must be an object", "invalid_type")])
    known = {"id_number", "name", "date", "date_format", "encoding", "sheet", "facts"}
    errors.extend(
        _problem(
            f"mapping.{key}", f"unknown key; accepted: {', '.join(sorted(known))}", "unknown_field"
        )
        for key in sorted(set(raw) - known, key=str)
    )
    id_number = _column(raw, "id_number", "mapping.id_number", errors)
    if id_number is None and "id_number" not in raw:
        errors.append(
            _problem("mapping.id_number", "the identity number column is required", "required")
        )
    name = _column(raw, "name", "mapping.name", errors)
    date = _column(raw, "date", "mapping.date", errors)
    sheet = _column(raw, "sheet", "mapping.sheet", errors)
    date_format = raw.get("date_format")
    if date_format is not None and (
        not isinstance(date_format, str) or "%" not in date_format or len(date_format) > 32
    ):
        errors.append(_problem("mapping.date_format", "a strptime format such as %Y-%m-%d"))
    encoding = raw.get("encoding", "auto")
    if encoding not in ENCODINGS:
        errors.append(_problem("mapping.encoding", f"one of: {', '.join(ENCODINGS)}"))
    facts_raw = raw.get("facts")
    columns: list[FactColumn] = []
    allowed = {spec.code for spec in facts_of(department)}
    if not isinstance(facts_raw, Mapping) or not facts_raw:
        errors.append(
            _problem(
                "mapping.facts",
                f"an object naming at least one fact of "
                f"{department.value}: {', '.join(sorted(allowed))}",
                "required",
            )
        )
        facts_raw = {}
    for code, item in facts_raw.items():
        path = f"mapping.facts.{code}"
        if code not in allowed:
            errors.append(
                _problem(
                    path,
                    f"not a fact of {department.value}; its facts: {', '.join(sorted(allowed))}",
                )
            )
            continue
        spec = BY_CODE[code]
        if not isinstance(item, Mapping):
            errors.append(_problem(path, "must be an object", "invalid_type"))
            continue
        extra = set(item) - {"column", "value", "true", "false", "codes"}
        if extra:
            errors.append(
                _problem(
                    path, f"unknown keys: {', '.join(sorted(map(str, extra)))}", "unknown_field"
                )
            )
        column = _column(item, "column", f"{path}.column", errors)
        constant = item.get("value")
        if column is None and "column" not in item:
            if spec.type is not FactType.BOOLEAN or not isinstance(constant, bool):
                errors.append(_problem(path, "give a column, or (yes/no facts) a constant value"))
                continue
        elif constant is not None:
            errors.append(_problem(f"{path}.value", "a constant value goes without a column"))
        codes = item.get("codes") or {}
        if not isinstance(codes, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in codes.items()
        ):
            errors.append(_problem(f"{path}.codes", "an object of file text → code"))
            codes = {}
        columns.append(
            FactColumn(
                spec=spec,
                column=column,
                constant=constant if column is None else None,
                true_words=_words(item.get("true"), DEFAULT_TRUE, f"{path}.true", errors),
                false_words=_words(item.get("false"), DEFAULT_FALSE, f"{path}.false", errors),
                codes=dict(codes),
            )
        )
    if errors:
        raise MappingProblems(errors)
    assert id_number is not None
    return ColumnMapping(
        id_number=id_number,
        facts=tuple(columns),
        name=name,
        date=date,
        date_format=date_format,
        encoding=encoding,
        sheet=sheet,
    )


def fact_value(column: FactColumn, text: str) -> bool | Decimal | str:
    """The value of `text` read for `column`, or ValueError saying why it is none."""
    spec = column.spec
    if spec.type is FactType.BOOLEAN:
        if text in column.true_words:
            return True
        if text in column.false_words:
            return False
        raise ValueError(f"not a yes/no word of this mapping: {text[:20]!r}")
    if spec.type is FactType.DECIMAL:
        try:
            amount = Decimal(text.replace(",", ""))
        except InvalidOperation as exc:
            raise ValueError(f"not a number: {text[:20]!r}") from exc
        if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
            raise ValueError(f"not an amount between 0 and 10^10: {text[:20]!r}")
        return amount.quantize(Decimal("0.01"))
    code = column.codes.get(text, text)
    if spec.register_field == "member.disability":
        from forms.register import Disability

        if code not in Disability.codes():
            raise ValueError(f"not a disability grade: {text[:20]!r}")
    return code
