"""Tables of the monitoring workflow: referrals, cases and their append-only steps.

A *referral* (发现) is one signal that a household may need monitoring, from one of the three
channels of `domain.md`. The first referral of a household that has no open case opens a *case*;
later ones attach to the open case as more evidence. A case runs one direction (entry into
monitoring or exit from it) through the four review stages; each decision is a *step* row, never
changed afterwards. `monitoring_cases.version` counts the steps taken, and `(case_id, seq)` is
unique, so two reviewers deciding the same stage at once cannot both succeed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from forms.register import MonitoringStatus, MonitoringType
from server.db import Base, JsonDocument, enum_type, utcnow
from server.monitoring.terms import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    ReferralChannel,
    StepDecision,
)

__all__ = [
    "CaseDirection",
    "CaseOutcome",
    "CaseStage",
    "CaseStep",
    "MonitoringCase",
    "MonitoringSetting",
    "Referral",
    "ReferralChannel",
    "StepDecision",
]


class MonitoringCase(Base):
    __tablename__ = "monitoring_cases"
    __table_args__ = (
        # At most one open case per household, on every database.
        Index(
            "uq_monitoring_cases_open_household",
            "household_id",
            unique=True,
            postgresql_where=text("outcome = 'open'"),
            sqlite_where=text("outcome = 'open'"),
        ),
        Index("ix_monitoring_cases_stage_village", "stage", "village_code"),
        Index("ix_monitoring_cases_household", "household_id", "opened_at"),
        # The summary's open cases by village, direction and stage, from the index alone.
        Index("ix_monitoring_cases_report", "outcome", "village_code", "direction", "stage"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    village_code: Mapped[str] = mapped_column(String(12))
    direction: Mapped[CaseDirection] = mapped_column(enum_type(CaseDirection, "case_direction"))
    stage: Mapped[CaseStage] = mapped_column(enum_type(CaseStage, "case_stage"))
    outcome: Mapped[CaseOutcome] = mapped_column(
        enum_type(CaseOutcome, "case_outcome"), default=CaseOutcome.OPEN
    )
    # The household's status when the case opened: restored when the case is rejected.
    prior_status: Mapped[MonitoringStatus] = mapped_column(
        enum_type(MonitoringStatus, "case_prior_status")
    )
    # Decided at the county step (entry): the type and the confirmed causes written to the register.
    monitoring_type: Mapped[MonitoringType | None] = mapped_column(
        enum_type(MonitoringType, "case_monitoring_type")
    )
    risk_causes: Mapped[list[Any]] = mapped_column(default=list)
    # An exit case's evidence: months of income above the line, causes resolved, measures'
    # outcomes (an entry case's evidence is its referrals).
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Number of steps taken; the next step is seq = version + 1.
    version: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_household", "household_id", "created_at"),
        Index("ix_referrals_village_channel", "village_code", "channel"),
        # A submission opens at most one referral (sync is exactly-once; this makes it structural).
        UniqueConstraint("submission_id", name="uq_referrals_submission_id"),
        # The summary's referrals of a year by village and channel, from the index alone.
        Index("ix_referrals_report", "created_at", "village_code", "channel"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    village_code: Mapped[str] = mapped_column(String(12))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("monitoring_cases.id"), index=True)
    channel: Mapped[ReferralChannel] = mapped_column(enum_type(ReferralChannel, "referral_channel"))
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The department behind a department warning (民政, 教育, 人社, 住建, 医保, 残联 …).
    department: Mapped[str | None] = mapped_column(String(64))
    causes: Mapped[list[Any]] = mapped_column(default=list)  # RiskCause codes claimed
    note: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submission_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("submissions.instance_id"))
    # The warning that raised it, when it came from the early-warning rules.
    warning_id: Mapped[uuid.UUID | None]
    # When the referral was made: the application's collection time for one that came through
    # sync, else when it was recorded. A verification visit must be collected after it.
    referred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseStep(Base):
    __tablename__ = "case_steps"
    __table_args__ = (
        UniqueConstraint("case_id", "seq", name="uq_case_steps_case_seq"),
        Index("ix_case_steps_taken_at", "taken_at"),
        # The summary's county approvals of a year (entries and exits), from the index alone.
        Index("ix_case_steps_report", "stage", "decision", "taken_at", "case_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("monitoring_cases.id"))
    seq: Mapped[int]
    stage: Mapped[CaseStage] = mapped_column(enum_type(CaseStage, "case_step_stage"))
    decision: Mapped[StepDecision] = mapped_column(enum_type(StepDecision, "step_decision"))
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)
    # Stage-specific record: the verification visit's submission, the deliberation date, the
    # notice period and objections, the decided type and causes, the exit evidence.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attachments: Mapped[list[Any]] = mapped_column(default=list)  # attachment digests
    submission_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("submissions.instance_id"))


class MonitoringSetting(Base):
    """One configured value of the monitoring workflow for a region and everything below it.

    The value for a region is the one set on the nearest region at or above it, else the default
    declared in `server.monitoring.settings`; `region_code` "*" holds installation-wide values."""

    __tablename__ = "monitoring_settings"

    region_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JsonDocument)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
