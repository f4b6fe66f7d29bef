"""Tables of the help given to monitored households and of their follow-up visits.

*Helpers* (帮扶责任人) are the people answerable for a household: a fieldsync user or a named person
with a phone (kept like members' phones: hash, mask, ciphertext). *Measures* (帮扶措施) are the
assistance given. Every change to either is also one row of `help_events`, which the household
timeline reads. `household_followups` holds each household's last accepted visit; whether a
follow-up is due is computed when asked (settings can change), never stored.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from forms.register import MONEY_PRECISION, MONEY_SCALE, SENSITIVE_TEXT_LENGTH, LabelledEnum
from server.db import Base, enum_type, utcnow
from server.households.models import Household

NAME_LENGTH = 64
DESCRIPTION_LENGTH = 255
NOTE_LENGTH = 2000


class MeasureType(LabelledEnum):
    """帮扶措施 — the kinds of assistance of `domain.md`."""

    INDUSTRY = ("industry", "产业帮扶", "Industry support")
    EMPLOYMENT = ("employment", "就业帮扶", "Employment support")
    PUBLIC_WELFARE_JOB = ("public_welfare_job", "公益岗位", "Public-welfare job")
    SAFETY_NET = ("safety_net", "兜底保障", "Social-security safety net (低保, 特困供养)")
    TEMPORARY_RELIEF = ("temporary_relief", "临时救助", "Temporary relief")
    EDUCATION_AID = ("education_aid", "教育资助", "Education aid")
    MEDICAL_AID = ("medical_aid", "医疗救助", "Medical aid")
    HOUSING_RENOVATION = ("housing_renovation", "危房改造", "Housing renovation")
    SMALL_LOAN = ("small_loan", "小额信贷", "Small loan")


class MeasureStatus(LabelledEnum):
    PLANNED = ("planned", "计划中", "Planned")
    IN_PROGRESS = ("in_progress", "实施中", "In progress")
    COMPLETED = ("completed", "已完成", "Completed")
    STOPPED = ("stopped", "已终止", "Stopped")


class HouseholdHelper(Base):
    __tablename__ = "household_helpers"
    __table_args__ = (Index("ix_household_helpers_household", "household_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    # A fieldsync user, or (user_id null) a named person outside fieldsync.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    phone_masked: Mapped[str | None] = mapped_column(String(SENSITIVE_TEXT_LENGTH))
    phone_cipher: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    assigned_on: Mapped[date]
    # Set when the helper stops being responsible; the row stays for the record.
    ended_on: Mapped[date | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AssistanceMeasure(Base):
    __tablename__ = "assistance_measures"
    __table_args__ = (Index("ix_assistance_measures_household", "household_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    measure_type: Mapped[MeasureType] = mapped_column(enum_type(MeasureType, "measure_type"))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_LENGTH))
    start_date: Mapped[date]
    end_date: Mapped[date | None]
    # Yuan, where the measure has one (a relief payment, a loan, a subsidy).
    amount: Mapped[Decimal | None] = mapped_column(Numeric(MONEY_PRECISION, MONEY_SCALE))
    status: Mapped[MeasureStatus] = mapped_column(enum_type(MeasureStatus, "measure_status"))
    outcome: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HelpEvent(Base):
    """One change to a household's helpers or measures: who, when, what (append-only)."""

    __tablename__ = "help_events"
    __table_args__ = (Index("ix_help_events_household", "household_id", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # helper_assigned, helper_updated, helper_ended, measure_added, measure_updated
    action: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[uuid.UUID]
    # The changed values (phones masked).
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HouseholdFollowup(Base):
    """The last accepted visit of a household under review or monitoring (定期跟踪回访)."""

    __tablename__ = "household_followups"

    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"), primary_key=True)
    # When the visit was made (the submission's collected_at, never later than its arrival).
    last_visit_at: Mapped[datetime]
    last_submission_id: Mapped[uuid.UUID | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# The monitored households of a village, for the follow-up lists (a pull's due list, the overdue
# listing and counts): only the ~5 % of households that are monitored are in it, and it holds every
# column those lists read, so a village's list reads a few index entries and no household rows.
# Queries must spell the condition exactly so (`MONITORED_CONDITION`) for the databases to use it.
MONITORED_CONDITION = "households.monitoring_status = 'monitored'"
Index(
    "ix_households_monitored_village",
    Household.village_code,
    Household.monitoring_type,
    Household.id,
    Household.household_no,
    Household.merged_into_id,
    Household.deleted,
    postgresql_where=text("monitoring_status = 'monitored'"),
    sqlite_where=text("monitoring_status = 'monitored'"),
)
