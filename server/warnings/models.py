"""Tables of early warning: the warnings the risk rules raise, their append-only history, and the
rules' configuration per year and province.

A warning is one lifecycle of one rule on one household (and one member, for a rule about a
person): `(household_id, rule, subject_key, lifecycle)` is unique and at most one lifecycle is
`is_current`. A rule that stops holding sets `holds = False` (the warning stays, with its
history); when it holds again the same warning holds again while it is open or referred, and a new
lifecycle starts once the old one was handled or dismissed (see docs/warnings.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from forms.register import LabelledEnum
from server.db import Base, enum_type, utcnow


class WarningStatus(LabelledEnum):
    OPEN = ("open", "待处置", "Open")
    REFERRED = ("referred", "已转入监测核查", "Referred to the monitoring workflow")
    HANDLED = ("handled", "已处置", "Handled")
    DISMISSED = ("dismissed", "已排除", "Dismissed")


class RiskWarning(Base):
    __tablename__ = "risk_warnings"
    __table_args__ = (
        UniqueConstraint(
            "household_id", "rule", "subject_key", "lifecycle", name="uq_risk_warnings_lifecycle"
        ),
        # At most one current lifecycle per (household, rule, subject), on every database.
        Index(
            "uq_risk_warnings_current",
            "household_id",
            "rule",
            "subject_key",
            unique=True,
            postgresql_where=text("is_current"),
            sqlite_where=text("is_current"),
        ),
        # Lists by region (the caller's grants are code ranges), status and rule.
        Index("ix_risk_warnings_village", "village_code", "status", "rule"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    member_id: Mapped[uuid.UUID | None]  # no foreign key: members are created by the same pushes
    subject_key: Mapped[str] = mapped_column(String(36), default="")  # member id or ""
    village_code: Mapped[str] = mapped_column(String(12))
    rule: Mapped[str] = mapped_column(String(48))
    lifecycle: Mapped[int] = mapped_column(default=1)
    is_current: Mapped[bool] = mapped_column(default=True)
    holds: Mapped[bool] = mapped_column(default=True)
    status: Mapped[WarningStatus] = mapped_column(
        enum_type(WarningStatus, "risk_warning_status"), default=WarningStatus.OPEN
    )
    # The source of the latest firing: submission / department / configuration / reevaluation.
    source: Mapped[str] = mapped_column(String(16))
    # {"values": {...}, "source": {...}}: the values the rule read and where they came from.
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    # When the rule last stopped holding (None while it holds).
    cleared_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status_at: Mapped[datetime | None]
    referral_id: Mapped[uuid.UUID | None]
    version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RiskWarningEvent(Base):
    """One thing that happened to a warning, never changed: raised, held again, no longer holds,
    referred, handled, dismissed."""

    __tablename__ = "risk_warning_events"
    __table_args__ = (Index("ix_risk_warning_events_warning", "warning_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    warning_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("risk_warnings.id"))
    kind: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str | None] = mapped_column(String(16))  # the status after it
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WarningSetting(Base):
    """One configured value of the risk rules for a year and a province ("*": every province).
    The value for (year, province) is the one set for the latest year at or before it, the
    province's before the installation-wide one, else the default (server/warnings/config.py)."""

    __tablename__ = "warning_settings"

    year: Mapped[int] = mapped_column(primary_key=True)
    province_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    value: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WarningReevaluation(Base):
    """The last complete full re-evaluation of a scope ("*": the whole register, else a region
    code): the next one evaluates only households whose inputs changed since `started_at` (less
    a margin for transactions that were still open), as long as the rules are the same."""

    __tablename__ = "warning_reevaluations"

    scope: Mapped[str] = mapped_column(String(12), primary_key=True)
    started_at: Mapped[datetime]
    # The rule codes that run evaluated with (a new rule means a full run).
    rules: Mapped[str] = mapped_column(String(2000))
    finished_at: Mapped[datetime]
