"""Attachment tables: what was uploaded (content type, size, by whom) and which submissions — and so
which villages — reference each file. The bytes themselves live in the attachment store."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow

# `sha256:` and 64 hex digits, the wire form.
DIGEST_LENGTH = 71


class Attachment(Base):
    """One stored file. A row exists once an upload completed; the first upload's content type
    is kept (the content is identical whoever uploads it again)."""

    __tablename__ = "attachments"

    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttachmentRef(Base):
    """A submission refers to an attachment. No foreign key to `attachments`: a submission may
    arrive before its files (push then lists them as missing)."""

    __tablename__ = "attachment_refs"

    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("submissions.instance_id"), primary_key=True
    )
    # Village of the submission's household; None when the submission has none (quarantined).
    village_code: Mapped[str | None] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttachmentHolder(Base):
    """A user has uploaded the bytes of an attachment: proof that they hold the file. Only a
    holder's submissions make a file downloadable in their villages — knowing a digest (another
    region's photo) is not having the photo."""

    __tablename__ = "attachment_holders"

    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
