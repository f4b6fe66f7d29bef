"""Stored copies of figures that are otherwise computed when asked: the monitoring summary of a
region as it stood on a day, and the overdue follow-ups of each village on a day. Written once a
day by scheduled jobs (`server.monitoring.snapshots`), never by requests; they give the trend that
the live figures, which only know today, cannot."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class SummarySnapshot(Base):
    """`server.monitoring.summary.as_document` of a region for the report year of `day`."""

    __tablename__ = "summary_snapshots"

    region_code: Mapped[str] = mapped_column(
        String(12), ForeignKey("regions.code"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)  # in the report time zone (CST)
    year: Mapped[int]
    document: Mapped[dict[str, Any]]
    taken_at: Mapped[datetime]


class OverdueFollowupCount(Base):
    """How many monitored households of a village had an overdue follow-up visit on `day`, by
    monitoring type ("unknown" when none is recorded). A village absent on a computed day had
    none."""

    __tablename__ = "overdue_followup_counts"
    __table_args__ = (Index("ix_overdue_followup_counts_day", "day"),)

    village_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    monitoring_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    households: Mapped[int]
    computed_at: Mapped[datetime]
