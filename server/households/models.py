"""Register tables: households and members.

Every canonical field of `forms.register` is a column here (a test holds them to each other).
Each row also carries its revision `rev` and, per field, the write that set it — HLC stamp,
revision at which it last changed, writer and submission — in `versions` (see versions.py): the
state the field-level merge needs. Sensitive fields are stored as a keyed hash (for matching), a
masked form (for display) and a ciphertext (for the roles allowed to reveal them), never in clear.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from forms.register import (
    MONEY_PRECISION,
    MONEY_SCALE,
    SENSITIVE_TEXT_LENGTH,
    Category,
    Disability,
    EducationLevel,
    Employment,
    Health,
    LaborCapacity,
    MonitoringStatus,
    MonitoringType,
    Relation,
    Sex,
    text_length,
)
from server.db import Base, enum_type, utcnow
from server.households.versions import FieldVersion, decode_versions, empty_versions, stored_clocks

Money = Numeric(MONEY_PRECISION, MONEY_SCALE)  # forms.register.MONEY_LIMIT, in cents


class Versioned:
    """Columns every register entity carries for the merge."""

    rev: Mapped[int] = mapped_column(default=0)
    # Per field: the HLC stamp of the write that set it, the revision at which it last changed,
    # who wrote it (device id, or user:<id> for server-side edits) and the submission it came
    # from (for conflict review); each distinct write stored once (server/households/versions.py).
    versions: Mapped[dict[str, Any]] = mapped_column(default=empty_versions)
    deleted: Mapped[bool] = mapped_column(default=False)
    # Answers bound to properties the register has no column for (form extension properties).
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def field_versions(self) -> dict[str, FieldVersion]:
        """Each field's version, by field name."""
        return decode_versions(self.versions)

    @property
    def clocks(self) -> dict[str, str]:
        """Each field's HLC stamp text, by field name."""
        return stored_clocks(self.versions)


# Every visit rewrites a household and its members: on PostgreSQL both tables keep a fifth of each
# page free (fillfactor 80, set by migration 0006) so that new row versions fit beside the old
# ones — HOT updates, with no index entries to add.
class Household(Versioned, Base):
    __tablename__ = "households"
    __table_args__ = (
        # The monitoring summary counts households under monitoring and their persons by
        # village, status and type from this index alone (migration 0022); statuses change only
        # at case steps and the member count only when a household gains or loses a member, so
        # visits (which touch neither) stay HOT updates on PostgreSQL.
        Index(
            "ix_households_monitoring",
            "monitoring_status",
            "village_code",
            "monitoring_type",
            "deleted",
            "member_count",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    household_no: Mapped[str | None] = mapped_column(
        String(text_length("household", "household_no")), index=True
    )
    village_code: Mapped[str] = mapped_column(
        String(text_length("household", "village_code")), ForeignKey("regions.code"), index=True
    )
    address: Mapped[str | None] = mapped_column(String(text_length("household", "address")))
    # No foreign key: the head is often created by the same submission, after the household.
    head_member_id: Mapped[uuid.UUID | None]
    category: Mapped[Category | None] = mapped_column(enum_type(Category, "household_category"))
    monitoring_type: Mapped[MonitoringType | None] = mapped_column(
        enum_type(MonitoringType, "monitoring_type")
    )
    monitoring_status: Mapped[MonitoringStatus] = mapped_column(
        enum_type(MonitoringStatus, "monitoring_status"), default=MonitoringStatus.NOT_MONITORED
    )
    risk_causes: Mapped[list[Any]] = mapped_column(default=list)
    annual_income: Mapped[Decimal | None] = mapped_column(Money)
    per_capita_income: Mapped[Decimal | None] = mapped_column(Money)
    rigid_expenditure: Mapped[Decimal | None] = mapped_column(Money)
    food_clothing_ok: Mapped[bool | None]
    education_ok: Mapped[bool | None]
    medical_ok: Mapped[bool | None]
    housing_ok: Mapped[bool | None]
    water_ok: Mapped[bool | None]
    relocated: Mapped[bool | None]
    receives_minimum_allowance: Mapped[bool | None]
    receives_extreme_poverty_support: Mapped[bool | None]
    helper: Mapped[str | None] = mapped_column(String(text_length("household", "helper")))
    # Set when this household was merged into another (a duplicate): the survivor.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("households.id"))
    # Invariant problems a merge produced (e.g. two heads), kept for review, never auto-fixed.
    review_flags: Mapped[list[Any]] = mapped_column(default=list)
    # How many live (not deleted) members the household has: kept by every writer of members
    # (the sync write path as a relative `+n` in the unit of work that adds, deletes or moves
    # them; loading), so the summary sums it instead of counting members. Not a register field.
    member_count: Mapped[int] = mapped_column(default=0, server_default="0")


class Member(Versioned, Base):
    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_household_id", "household_id"),
        # Live members per household without reading the rows (the monitoring summary's persons).
        Index("ix_members_household_live", "household_id", "deleted"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    name: Mapped[str | None] = mapped_column(String(text_length("member", "name")))
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str | None] = mapped_column(String(SENSITIVE_TEXT_LENGTH))
    id_number_cipher: Mapped[str | None] = mapped_column(Text)
    relation: Mapped[Relation | None] = mapped_column(enum_type(Relation, "member_relation"))
    sex: Mapped[Sex | None] = mapped_column(enum_type(Sex, "member_sex"))
    birth_date: Mapped[date | None]
    in_school: Mapped[bool | None]
    education_level: Mapped[EducationLevel | None] = mapped_column(
        enum_type(EducationLevel, "education_level")
    )
    health: Mapped[Health | None] = mapped_column(enum_type(Health, "member_health"))
    disability: Mapped[Disability | None] = mapped_column(
        enum_type(Disability, "member_disability")
    )
    labor_capacity: Mapped[LaborCapacity | None] = mapped_column(
        enum_type(LaborCapacity, "labor_capacity")
    )
    insured: Mapped[bool | None]
    employment: Mapped[Employment | None] = mapped_column(enum_type(Employment, "employment"))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(SENSITIVE_TEXT_LENGTH))
    phone_cipher: Mapped[str | None] = mapped_column(Text)
