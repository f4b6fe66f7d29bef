"""Forms and their published versions. A published version never changes; edits go to the draft."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from forms.definition_schema import FORM_ID_LENGTH
from server.db import Base, utcnow


class Form(Base):
    __tablename__ = "forms"

    form_id: Mapped[str] = mapped_column(String(FORM_ID_LENGTH), primary_key=True)
    title: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The definition being edited; None when nothing is being edited.
    draft: Mapped[dict[str, Any] | None]
    draft_updated_at: Mapped[datetime | None]
    draft_updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Highest published version number (versions are 1, 2, 3 … per form).
    latest_version: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class FormVersion(Base):
    __tablename__ = "form_versions"

    form_id: Mapped[str] = mapped_column(
        String(FORM_ID_LENGTH), ForeignKey("forms.form_id"), primary_key=True
    )
    version: Mapped[int] = mapped_column(primary_key=True)
    definition: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Submissions against a retired version are accepted for a grace period, then quarantined.
    retired_at: Mapped[datetime | None]
