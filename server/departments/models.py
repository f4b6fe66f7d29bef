"""`department_facts`: the current value each department list gives for a matched person or
household — written by department imports, read by the early-warning rules.

One row per (department, fact, household, subject): `subject_key` is the member id for a member
fact and "" for a household fact, so the key is unique on every database. A later import of the
same department overwrites the value and points `import_id` at itself; a fact a later full list
no longer contains is marked `present = False` rather than deleted, so a warning can still name
the import that said it. Unmatched and ambiguous rows are not facts: they stay in the import's
report.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, JsonDocument, utcnow


class DepartmentFact(Base):
    __tablename__ = "department_facts"
    __table_args__ = (
        UniqueConstraint(
            "department", "fact", "household_id", "subject_key", name="uq_department_facts_subject"
        ),
        Index("ix_department_facts_household", "household_id", "department", "fact"),
        Index("ix_department_facts_import", "import_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    department: Mapped[str] = mapped_column(String(32))  # Department code
    fact: Mapped[str] = mapped_column(String(48))  # FactSpec code
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    member_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("members.id"))
    subject_key: Mapped[str] = mapped_column(String(36), default="")
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
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
