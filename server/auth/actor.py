"""Who is calling: the `Actor` every service receives, with the role and region checks that every
endpoint reuses. Pure: no request globals, no database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlalchemy.orm import InstrumentedAttribute

from server.errors import Forbidden
from server.regions.codes import code_range, covers
from server.users.models import Role


@dataclass(frozen=True)
class Actor:
    # None for the command line and scheduled jobs, which act as the system itself.
    user_id: int | None
    username: str
    role: Role
    region_codes: tuple[str, ...]
    token_id: int | None = None
    device_id: uuid.UUID | None = None
    address: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def covers(self, region_code: str) -> bool:
        """Whether the caller may see and change things in `region_code` (admins: everywhere)."""
        return self.is_admin or any(covers(grant, region_code) for grant in self.region_codes)

    def ensure_covers(self, region_code: str, what: str = "this object") -> None:
        if not self.covers(region_code):
            raise Forbidden(f"{what} is outside your regions", details={"region_code": region_code})

    def ensure_role(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(
                f"role {self.role.value} may not do this",
                details={"required_roles": [r.value for r in roles]},
            )

    def region_filter(
        self, column: ColumnElement[Any] | InstrumentedAttribute[Any]
    ) -> ColumnElement[bool]:
        """A SQL condition keeping rows whose region code `column` the caller covers.

        Uses ranges, not LIKE, so a btree index on the code serves it on every database."""
        if self.is_admin:
            return true()
        if not self.region_codes:
            return false()
        ranges = [code_range(code) for code in self.region_codes]
        return or_(*(and_(column >= low, column <= high) for low, high in ranges))


def system_actor(name: str = "command-line") -> Actor:
    """The actor for work started from the command line or the scheduler: an admin with no user."""
    return Actor(user_id=None, username=name, role=Role.ADMIN, region_codes=())
