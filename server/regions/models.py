"""The regions table: the administrative hierarchy down to villages."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, enum_type
from server.regions.codes import RegionLevel


class Region(Base):
    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[RegionLevel] = mapped_column(enum_type(RegionLevel, "region_level"))
    parent_code: Mapped[str | None] = mapped_column(
        String(12), ForeignKey("regions.code"), index=True
    )
