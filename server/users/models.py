"""Users and their region grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from forms.register import LabelledEnum
from server.db import Base, enum_type, utcnow


class Role(LabelledEnum):
    ADMIN = ("admin", "管理员", "Administrator")
    SUPERVISOR = ("supervisor", "审核员", "Supervisor")
    COLLECTOR = ("collector", "采集员", "Field collector")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_type(Role, "user_role"))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]

    grants: Mapped[list[RegionGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="raise"
    )


class RegionGrant(Base):
    """A user may see and change everything in this region and below it."""

    __tablename__ = "region_grants"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    region_code: Mapped[str] = mapped_column(
        String(12), ForeignKey("regions.code"), primary_key=True, index=True
    )
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="grants", lazy="raise")
