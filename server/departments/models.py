"""`department_facts`: the current value each department list gives for a matched person or
household — written by department imports, read by the early-warning rules.

One row per (department, fact, household, subject): `subject_key` is the member id for a member
fact and "" for a household fact, so the key is unique on every database. A later import of the
same department that changes the value points `import_id` at itself (one that says the same
leaves the fact alone); a fact a later full list of the same source no longer contains is marked
`present = False` rather than deleted, so a warning can still name the import that said it.
Unmatched and ambiguous rows are not facts: they stay in the import's report.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, JsonDocument, enum_type, utcnow


class DepartmentFact(Base):
    __tablename__ = "department_facts"
    __table_args__ = (Index("ix_department_facts_household", "household_id", "department", "fact"),)

    # The natural key is the primary key: an import writes no id and one index fewer per fact.
    department: Mapped[str] = mapped_column(String(32), primary_key=True)  # Department code
    fact: Mapped[str] = mapped_column(String(48), primary_key=True)  # FactSpec code
    # No foreign keys to households and members: an import writes facts only of the live members
    # it has just matched, rows of both are never deleted, and the checks ran once per row and
    # key when a register-wide list is written (see docs/benchmarks.md).
    household_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(36), primary_key=True, default="")
    member_id: Mapped[uuid.UUID | None]
    # JSON: true/false, a decimal as a string, or a choice code.
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=False)
    present: Mapped[bool] = mapped_column(default=True)
    # The date the department's list says the value holds from (its reporting date), if given.
    as_of: Mapped[date | None]
    # The import that last wrote this value (department_imports.id; no foreign key so that the
    # facts table does not depend on how imports are stored).
    import_id: Mapped[uuid.UUID]
    # The row of the imported file it came from, 1-based, for the warning's evidence.
    source_row: Mapped[int | None]
    # The source (department_sources.id) whose import last changed the fact: a full list of that
    # source withdraws the facts it said and no longer lists. An import that lists a fact with
    # the same value, date and member leaves it alone (its import_id and source_row stay those of
    # the import that said it first).
    source_id: Mapped[uuid.UUID | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ListKind(str, Enum):  # noqa: UP042
    """Whether a source's list names everyone the department knows of (a full list: a fact the
    next list lacks is withdrawn) or only some (partial: facts not in it are left as they are)."""

    FULL = "full"
    PARTIAL = "partial"


class ImportStatus(str, Enum):  # noqa: UP042
    APPLIED = "applied"
    FAILED = "failed"  # an HTTP fetch that failed or brought a bad file: recorded, nothing applied


class ImportOrigin(str, Enum):  # noqa: UP042
    UPLOAD = "upload"
    COMMAND_LINE = "command_line"
    HTTP = "http"


class DepartmentSource(Base):
    """A configured department list: its department, how its files are read (`mapping`, see
    `server.departments.mapping`), whether it is full or partial, and optionally an HTTP endpoint
    fetched on a cron schedule (the token, if any, is read from the environment variable named
    here, never stored)."""

    __tablename__ = "department_sources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    department: Mapped[str] = mapped_column(String(32))
    list_kind: Mapped[ListKind] = mapped_column(
        enum_type(ListKind, "department_list_kind"), default=ListKind.PARTIAL
    )
    mapping: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    url: Mapped[str | None] = mapped_column(String(512))
    token_env: Mapped[str | None] = mapped_column(String(64))
    schedule: Mapped[str | None] = mapped_column(String(64))  # cron: "0 2 * * *"
    timeout_seconds: Mapped[int] = mapped_column(default=30)
    # The last scheduled fetch claimed (a compare-and-set on it keeps two schedulers from
    # fetching the same run twice).
    last_fetch_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DepartmentImport(Base):
    """One import of a source's file, applied or (HTTP) failed, with its counts and report.

    `report` keeps the rows of each kind (row number, masked identity number, what happened), at
    most `REPORT_ROWS` per kind; the counts are always exact."""

    __tablename__ = "department_imports"
    __table_args__ = (Index("ix_department_imports_source", "source_id", "started_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department_sources.id"))
    status: Mapped[ImportStatus] = mapped_column(
        enum_type(ImportStatus, "department_import_status")
    )
    origin: Mapped[ImportOrigin] = mapped_column(
        enum_type(ImportOrigin, "department_import_origin")
    )
    filename: Mapped[str | None] = mapped_column(String(255))
    # sha256 of the file and of the mapping it was read with: the same pair again changes nothing.
    content_hash: Mapped[str | None] = mapped_column(String(71))
    mapping_hash: Mapped[str | None] = mapped_column(String(71))
    size: Mapped[int] = mapped_column(default=0)
    rows: Mapped[int] = mapped_column(default=0)
    matched: Mapped[int] = mapped_column(default=0)
    unmatched: Mapped[int] = mapped_column(default=0)
    ambiguous: Mapped[int] = mapped_column(default=0)
    mismatched: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    conflicting: Mapped[int] = mapped_column(default=0)
    facts_written: Mapped[int] = mapped_column(default=0)
    facts_withdrawn: Mapped[int] = mapped_column(default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    imported_by: Mapped[int | None]  # users.id; None for the command line and the scheduler
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
