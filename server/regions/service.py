"""Maintaining the region tree (level and parent follow from the 12-digit code), and reading it
within the caller's scope: what the caller's grants cover in full, the regions above them by
name only, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.errors import Forbidden, NotFound, ValidationFailed
from server.households.models import Household
from server.regions.codes import (
    PREFIX_LENGTH,
    RegionLevel,
    code_range,
    covers,
    is_valid_code,
    level_of,
    parent_code_of,
)
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


# --- reading the tree within the caller's scope (API and console) ---------------------------


@dataclass(frozen=True)
class RegionNode:
    """A region as the caller may see it. `access` is `granted` (the caller's grants cover it:
    counts given) or `ancestor` (above a grant: code, name and level only, counts None)."""

    code: str
    name: str
    level: RegionLevel
    parent_code: str | None
    access: str
    child_count: int | None
    household_count: int | None


@dataclass(frozen=True)
class RegionPath:
    """One region with the regions above it, from the top (their names, for breadcrumbs)."""

    region: RegionNode
    ancestors: list[RegionNode]


GRANTED = "granted"
ANCESTOR = "ancestor"


def access_to(actor: Actor, code: str) -> str | None:
    """`granted`, `ancestor` (a region above one of the caller's grants) or None (not theirs)."""
    if actor.covers(code):
        return GRANTED
    if any(is_valid_code(code) and covers(code, grant) for grant in actor.region_codes):
        return ANCESTOR
    return None


def list_regions(session: Session, actor: Actor, parent: str | None = None) -> list[RegionNode]:
    """The regions directly below `parent` that the caller may see, or without it the caller's
    roots (`region_roots`)."""
    if parent is None:
        return region_roots(session, actor)
    return region_children(session, actor, parent)


def region_roots(session: Session, actor: Actor) -> list[RegionNode]:
    """Where the caller's tree starts: the top regions for an administrator, else the caller's
    own grants (a grant inside another grant of theirs is not a root)."""
    if actor.is_admin:
        regions = session.scalars(
            select(Region).where(Region.parent_code.is_(None)).order_by(Region.code)
        ).all()
    else:
        roots = [
            code
            for code in actor.region_codes
            if not any(other != code and covers(other, code) for other in actor.region_codes)
        ]
        regions = session.scalars(
            select(Region).where(Region.code.in_(roots)).order_by(Region.code)
        ).all()
    return _nodes(session, actor, list(regions))


def region_children(session: Session, actor: Actor, code: str) -> list[RegionNode]:
    """The regions directly below `code` that the caller may see (404 unknown, 403 not theirs)."""
    _visible_region(session, actor, code)
    children = session.scalars(
        select(Region).where(Region.parent_code == code).order_by(Region.code)
    ).all()
    return _nodes(session, actor, [r for r in children if access_to(actor, r.code)])


def region_path(session: Session, actor: Actor, code: str) -> RegionPath:
    """One region (404 unknown, 403 neither under nor above the caller's grants) and the names
    of the regions above it."""
    region = _visible_region(session, actor, code)
    above: list[str] = []
    parent = parent_code_of(region.code)
    while parent is not None:
        above.append(parent)
        parent = parent_code_of(parent)
    ancestors = session.scalars(select(Region).where(Region.code.in_(above))).all()
    ordered = sorted(ancestors, key=lambda r: PREFIX_LENGTH[r.level])
    return RegionPath(
        region=_nodes(session, actor, [region])[0],
        ancestors=[_node(r, ANCESTOR if not actor.covers(r.code) else GRANTED) for r in ordered],
    )


def _visible_region(session: Session, actor: Actor, code: str) -> Region:
    region = session.get(Region, code) if is_valid_code(code) else None
    if region is None:
        raise NotFound("no such region", details={"region_code": code})
    if access_to(actor, code) is None:
        raise Forbidden("this region is outside your regions", details={"region_code": code})
    return region


def _node(
    region: Region, access: str, children: int | None = None, households: int | None = None
) -> RegionNode:
    return RegionNode(
        code=region.code,
        name=region.name,
        level=region.level,
        parent_code=region.parent_code,
        access=access,
        child_count=children,
        household_count=households,
    )


def _nodes(session: Session, actor: Actor, regions: list[Region]) -> list[RegionNode]:
    """Nodes with their counts: children in one grouped query, live households in another."""
    granted = [r.code for r in regions if access_to(actor, r.code) == GRANTED]
    child_counts: dict[str, int] = {}
    household_counts: dict[str, int] = {}
    if granted:
        child_counts = {
            parent: count
            for parent, count in session.execute(
                select(Region.parent_code, func.count())
                .where(Region.parent_code.in_(granted))
                .group_by(Region.parent_code)
            )
        }
        # Live households per village across the regions' code ranges (one pass over the village
        # code index), added up per region here: cheaper than counting each range in SQL.
        ranges = [code_range(code) for code in granted]
        per_village = session.execute(
            select(Household.village_code, func.count())
            .where(
                Household.deleted.is_(False),
                or_(*(Household.village_code.between(low, high) for low, high in ranges)),
            )
            .group_by(Household.village_code)
        ).all()
        household_counts = {
            code: sum(count for village, count in per_village if covers(code, village))
            for code in granted
        }
    nodes = []
    for region in regions:
        if region.code in household_counts:
            nodes.append(
                _node(
                    region,
                    GRANTED,
                    child_counts.get(region.code, 0),
                    household_counts[region.code],
                )
            )
        else:
            nodes.append(_node(region, ANCESTOR))
    return nodes


def regions_within(
    session: Session, actor: Actor, levels: tuple[RegionLevel, ...] | None = None
) -> list[Region]:
    """The regions the actor covers (admins: all), at `levels` (default: every level), in code
    order, which is tree order: a region's subtree follows it. The choices of a region picker
    (one query)."""
    query = select(Region).where(actor.region_filter(Region.code)).order_by(Region.code)
    if levels is not None:
        query = query.where(Region.level.in_(levels))
    return list(session.scalars(query))
