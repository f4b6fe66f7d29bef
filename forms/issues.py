"""The problems forms report — in definitions, in submissions and against the register — as
`ValidationIssue(path, code, message)` with one stable enumeration of codes.

The codes are a public contract (they reach tablets in `rejected` results): add, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class IssueCode(StrEnum):
    # A submission's answers (validate_submission).
    REQUIRED = "required"
    INVALID_TYPE = "invalid_type"
    INVALID_DATE = "invalid_date"
    INVALID_DATETIME = "invalid_datetime"
    BELOW_MIN = "below_min"
    ABOVE_MAX = "above_max"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    PATTERN_MISMATCH = "pattern_mismatch"
    INVALID_CHOICE = "invalid_choice"
    CONSTRAINT_FAILED = "constraint_failed"
    NOT_RELEVANT = "not_relevant"
    UNKNOWN_FIELD = "unknown_field"
    TOO_MANY_REPEATS = "too_many_repeats"
    TOO_FEW_REPEATS = "too_few_repeats"
    INVALID_ATTACHMENT = "invalid_attachment"
    INVALID_GEOPOINT = "invalid_geopoint"
    INVALID_ID = "invalid_id"
    INVALID_TIME = "invalid_time"
    INVALID_GEOTRACE = "invalid_geotrace"
    INVALID_GEOSHAPE = "invalid_geoshape"
    INVALID_RANK = "invalid_rank"
    OFF_STEP = "off_step"
    # A definition (load_definition).
    INVALID_DEFINITION = "invalid_definition"
    DUPLICATE_NAME = "duplicate_name"
    UNKNOWN_CHOICE_LIST = "unknown_choice_list"
    UNKNOWN_ENTITY = "unknown_entity"
    INVALID_ENTITY = "invalid_entity"
    BINDING_SCOPE = "binding_scope"
    DUPLICATE_BINDING = "duplicate_binding"
    UNKNOWN_REFERENCE = "unknown_reference"
    INVALID_EXPRESSION = "invalid_expression"
    INVALID_PATTERN = "invalid_pattern"
    DEPENDENCY_CYCLE = "dependency_cycle"
    # A definition against the register (check_register_compatibility).
    UNKNOWN_REGISTER_FIELD = "unknown_register_field"
    INCOMPATIBLE_TYPE = "incompatible_type"
    FIELD_READ_ONLY = "field_read_only"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem: where (`data.members[2].birth_date`, `fields[3].bind`), what (code), and a
    message for people."""

    path: str
    code: IssueCode
    message: str

    def to_dict(self) -> dict[str, str]:
        """The `{path, code, message}` shape of the protocol's error details."""
        return {"path": self.path, "code": self.code.value, "message": self.message}


class DefinitionError(ValueError):
    """A form definition was refused; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        summary = "; ".join(f"{i.path}: {i.message}" for i in issues[:5])
        more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(f"invalid form definition: {summary}{more}")
