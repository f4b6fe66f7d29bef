"""Maintaining the region tree. Level and parent follow from the 12-digit code."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.errors import ValidationFailed
from server.regions.codes import is_valid_code, level_of, parent_code_of
from server.regions.models import Region


def add_region(session: Session, code: str, name: str, parent_code: str | None = None) -> Region:
    """Insert or rename one region; its parent (derived from the code if not given) must exist."""
    if not is_valid_code(code):
        raise ValidationFailed(
            "invalid region code",
            [
                {
                    "path": "code",
                    "code": "invalid_code",
                    "message": f"{code!r} is not a 12-digit division code",
                }
            ],
        )
    parent = parent_code if parent_code is not None else parent_code_of(code)
    region = session.get(Region, code)
    if region is None:
        region = Region(code=code, name=name, level=level_of(code), parent_code=parent)
        session.add(region)
    else:
        region.name = name
    session.flush()
    return region


def regions_within(session: Session, actor: Actor) -> list[Region]:
    """The regions the actor covers (admins: all), in code order, which is tree order: a
    region's subtree follows it. For choosing a region in a filter."""
    query = select(Region).where(actor.region_filter(Region.code)).order_by(Region.code)
    return list(session.scalars(query))
