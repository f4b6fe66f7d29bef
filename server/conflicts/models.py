"""The conflicts table: both values of a concurrent write with both origins, open or resolved."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from forms.register import LabelledEnum
from server.db import Base, JsonDocument, enum_type, utcnow


class ConflictStatus(LabelledEnum):
    OPEN = ("open", "待处理", "Open")
    RESOLVED = ("resolved", "已处理", "Resolved")


class Conflict(Base):
    __tablename__ = "conflicts"
    __table_args__ = (
        Index("ix_conflicts_status_village", "status", "village_code"),
        Index("ix_conflicts_entity", "entity_type", "entity_id", "field"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[uuid.UUID]
    field: Mapped[str] = mapped_column(String(64))
    village_code: Mapped[str] = mapped_column(String(12))
    winner_value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    winner_clock: Mapped[str] = mapped_column(String(96))
    winner_submission_id: Mapped[uuid.UUID | None]
    loser_value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    loser_clock: Mapped[str] = mapped_column(String(96))
    loser_submission_id: Mapped[uuid.UUID | None]
    status: Mapped[ConflictStatus] = mapped_column(
        enum_type(ConflictStatus, "conflict_status"), default=ConflictStatus.OPEN
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution_value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    resolution_clock: Mapped[str | None] = mapped_column(String(96))
