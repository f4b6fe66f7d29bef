"""The submissions table. The register is derived from it; nothing a field worker sent is lost."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from forms.definition_schema import FORM_ID_LENGTH
from forms.register import LabelledEnum
from server.db import Base, enum_type, utcnow


class SubmissionStatus(LabelledEnum):
    ACCEPTED = ("accepted", "已接收", "Accepted")
    REJECTED = ("rejected", "已隔离", "Rejected (quarantined)")


class ReviewStatus(LabelledEnum):
    """What a reviewer did with a rejected submission (none yet: waiting in the quarantine)."""

    DISMISSED = ("dismissed", "已驳回", "Dismissed")
    CORRECTED = ("corrected", "已更正", "Corrected and re-submitted")


# The review filter of the quarantine listing: `waiting` (not reviewed yet), one review status, or
# `all`.
WAITING = "waiting"
REVIEW_FILTERS = (WAITING, *ReviewStatus.codes(), "all")

# What a reviewer may write when dismissing one (stored with identity numbers and phones masked).
REVIEW_REASON_LENGTH = 2000


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_device_seq", "device_id", "device_seq"),
        Index("ix_submissions_status_village", "status", "village_code"),
        # The quarantine: rejected, waiting for review (review_status IS NULL), newest first.
        Index("ix_submissions_review_queue", "status", "review_status", "received_at"),
    )

    instance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(index=True)
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    form_id: Mapped[str] = mapped_column(String(FORM_ID_LENGTH))
    form_version: Mapped[int]
    collected_at: Mapped[datetime | None]
    hlc: Mapped[str] = mapped_column(String(96))
    device_seq: Mapped[int | None] = mapped_column(BigInteger)  # up to 2**53 - 1 (the protocol)
    # The submission exactly as received, and the hash that tells a resend from a different one.
    payload: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(80))  # "sha256:" + 64 hex
    status: Mapped[SubmissionStatus] = mapped_column(
        enum_type(SubmissionStatus, "submission_status")
    )
    # The per-item result sent back, replayed verbatim for a duplicate.
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    quarantine_reason: Mapped[str | None] = mapped_column(String(255))
    village_code: Mapped[str | None] = mapped_column(String(12))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The review of a rejected submission: who dismissed or corrected it, when, why (a
    # dismissal), and the submission that replaced it (a correction). Set once; the submission
    # itself is never changed.
    review_status: Mapped[ReviewStatus | None] = mapped_column(
        enum_type(ReviewStatus, "submission_review_status")
    )
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    review_reason: Mapped[str | None] = mapped_column(String(REVIEW_REASON_LENGTH))
    corrected_by_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("submissions.instance_id")
    )
