"""Serving a tablet the register of its regions: a full first sync, then only what changed, paged,
entities in their latest state, `removed` for what left the caller's scope or was merged away.

The changes phase reads the change log by transaction (`txid`, see feed.py) and only below the
visibility horizon, so a change committed late by a transaction that started early is still
delivered: the cursor never skips. Cost follows the changes served, not the register's size.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.changes.models import Change, ScopeSnapshot
from server.db import Database, among, upsert_insert, utcnow
from server.errors import ResyncRequired
from server.households.models import Household, Member
from server.monitoring.pull_additions import page_additions
from server.sync import cursor as cursors
from server.sync.cursor import Cursor
from server.sync.feed import visible_horizon
from server.sync.wire import HOUSEHOLD_WIRE, MEMBER_WIRE
from server.users.models import Role
from sync_protocol.clock import HybridClock

# Change rows read per page, per entity asked for (a visit writes a dozen fields at once).
ROWS_PER_ENTITY = 8


def _scope_regions(actor: Actor) -> list[str]:
    return ["*"] if actor.is_admin else sorted(actor.region_codes)


def scope_digest(actor: Actor) -> str:
    """The name of the caller's current scope snapshot. It covers the user as well as the grants:
    a snapshot is only ever written for the user whose real grants it holds, so a cursor naming
    another user's snapshot (or one its user never had) names nothing and cannot be followed."""
    return _owned_digest(actor.user_id, _scope_regions(actor))


def _owned_digest(user_id: int | None, regions: list[Any]) -> str:
    return hashlib.sha256(json.dumps([user_id, regions]).encode()).hexdigest()


def _unbound_digest(regions: list[str]) -> str:
    """How snapshots were named before they were bound to users (cursors in the field still
    carry such names; see `_known_scope`)."""
    return hashlib.sha256(json.dumps(regions).encode()).hexdigest()


def _scope_actor(actor: Actor, regions: list[str]) -> Actor:
    """An actor standing for a stored scope (to build the filters of a previous scope)."""
    if regions == ["*"]:
        return Actor(
            user_id=actor.user_id, username=actor.username, role=Role.ADMIN, region_codes=()
        )
    return Actor(
        user_id=actor.user_id,
        username=actor.username,
        role=Role.COLLECTOR,
        region_codes=tuple(regions),
    )


def _save_scope(db: Database, digest: str, actor: Actor) -> None:
    regions = _scope_regions(actor)
    with db.unit_of_work() as session:
        session.execute(
            upsert_insert(session, ScopeSnapshot)
            .values(digest=digest, region_codes=regions)
            .on_conflict_do_nothing(index_elements=["digest"])
        )


def pull_page(
    db: Database,
    actor: Actor,
    clock: HybridClock,
    *,
    cursor: str | None,
    limit: int,
    secret: str,
) -> dict[str, Any]:
    """One page of the pull for `actor`, from `cursor` (None: first sync)."""
    digest = scope_digest(actor)
    current = cursors.decode(cursor, secret, user_id=actor.user_id) if cursor else None
    if current is not None and current.scope == _unbound_digest(_scope_regions(actor)):
        # Issued before snapshots were bound to users, for exactly the grants the caller has
        # now: the same scope under its new name (nothing left it, nothing to backfill).
        current = replace(current, scope=digest)
        _save_scope(db, digest, actor)
    elif current is None or current.scope != digest:
        # A new scope snapshot is written in its own small transaction, before the read.
        _save_scope(db, digest, actor)
    # Autocommit on PostgreSQL: every statement of a page sees its own snapshot either way (the
    # horizon and the paging are written for that), and a page is a read.
    with db.autocommit_reads() as session:
        removed: list[dict[str, str]] = []
        if current is None:
            current = Cursor(
                user_id=actor.user_id, scope=digest, phase="initial", lo=visible_horizon(session)
            )
        elif current.scope != digest:
            current, removed = _follow_scope_change(session, actor, current, digest)
        if current.phase == "initial":
            entities, more_removed, next_cursor, more = _initial_page(
                session, actor, current, limit
            )
        else:
            entities, more_removed, next_cursor, more = _changes_page(
                session, actor, current, limit
            )
        removed.extend(more_removed)
        additions = page_additions(session, actor, entities, final=not more, now=utcnow())
    return {
        "entities": entities,
        "removed": removed,
        "cursor": cursors.encode(next_cursor, secret),
        "more": more,
        "clock": str(clock.now()),
        **additions,
    }


def _follow_scope_change(
    session: Session, actor: Actor, cursor: Cursor, digest: str
) -> tuple[Cursor, list[dict[str, str]]]:
    """When grants changed since the cursor: what left the scope is `removed`, what joined it is
    delivered in full (a backfill) before the change log goes on from where it was."""
    before = _scope_actor(actor, _known_scope(session, actor, cursor.scope))
    gone = session.scalars(
        select(Household.id).where(
            before.region_filter(Household.village_code),
            not_(actor.region_filter(Household.village_code)),
        )
    ).all()
    removed = [{"entity": "household", "id": str(hid)} for hid in gone]
    if gone:
        removed += [
            {"entity": "member", "id": str(mid)}
            for mid in session.scalars(
                select(Member.id).where(among(session, Member.household_id, gone))
            )
        ]
    # The change log goes on from where the old cursor was (an initial pass restarts from there).
    backfill = Cursor(
        user_id=actor.user_id,
        scope=digest,
        phase="initial",
        lo=cursor.lo,
        backfill_from=cursor.scope,
    )
    return backfill, removed


def _known_scope(session: Session, actor: Actor, digest: str) -> list[str]:
    """The grants of the snapshot `digest`, if it is one that was issued to the caller.

    This is what keeps `removed` and backfills inside what the caller really had, even for a
    cursor signed with the right key: the snapshot must exist and its name must be the caller's
    own name for its grants (snapshots of other users, and unbound ones of old, do not qualify)."""
    snapshot = session.get(ScopeSnapshot, digest)
    regions = list(snapshot.region_codes) if snapshot is not None else None
    if (
        regions is None
        or not all(isinstance(code, str) for code in regions)
        or _owned_digest(actor.user_id, regions) != digest
    ):
        raise ResyncRequired("the scope this cursor was issued for is unknown; pull from scratch")
    return regions


def _initial_filter(session: Session, actor: Actor, cursor: Cursor) -> ColumnElement[bool]:
    condition = actor.region_filter(Household.village_code)
    if cursor.backfill_from:
        before = _scope_actor(actor, _known_scope(session, actor, cursor.backfill_from))
        condition = and_(condition, not_(before.region_filter(Household.village_code)))
    return and_(condition, Household.merged_into_id.is_(None))


def _initial_page(
    session: Session, actor: Actor, cursor: Cursor, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, str]], Cursor, bool]:
    # Core rows of just the wire columns: a first sync reads thousands of entities, and full
    # ORM instances cost several times more to load.
    query = select(*HOUSEHOLD_WIRE.columns).where(_initial_filter(session, actor, cursor))
    if cursor.after:
        query = query.where(Household.id > uuid.UUID(cursor.after))
    households = session.execute(query.order_by(Household.id).limit(limit + 1)).all()
    # A household travels with all its members: count them first and read the members of only
    # the households that fit on this page (the rest are read again for the next page anyway).
    sizes: dict[uuid.UUID, int] = {}
    if households:
        counted = session.execute(
            select(Member.household_id, func.count())
            .where(among(session, Member.household_id, [h.id for h in households[:limit]]))
            .group_by(Member.household_id)
        )
        sizes = {household_id: count for household_id, count in counted}
    fitting = 0
    planned = 0
    for household in households[:limit]:
        size = 1 + sizes.get(household.id, 0)
        if fitting and planned + size > limit:
            break
        fitting += 1
        planned += size
    members_by_household: dict[uuid.UUID, list[Any]] = {}
    if fitting:
        for member in session.execute(
            select(*MEMBER_WIRE.columns)
            .where(among(session, Member.household_id, [h.id for h in households[:fitting]]))
            .order_by(Member.id)
        ):
            members_by_household.setdefault(member.household_id, []).append(member)
    entities: list[dict[str, Any]] = []
    last: uuid.UUID | None = None
    for household in households[:fitting]:
        members = members_by_household.get(household.id, [])
        # Checked again with the members read: on PostgreSQL a member committed since the count
        # may be among them (each statement sees its own snapshot).
        if entities and len(entities) + 1 + len(members) > limit:
            break
        entities.append(HOUSEHOLD_WIRE.entity_of(household))
        entities.extend(MEMBER_WIRE.entity_of(m) for m in members)
        last = household.id
    done = last is None or (len(households) <= limit and last == households[-1].id)
    if done:
        # Every entity has been sent in a state at least as new as horizon `lo`; from here on
        # the change log (from `lo`) delivers what changed, re-sending at worst a few.
        return (
            entities,
            [],
            Cursor(user_id=actor.user_id, scope=cursor.scope, phase="changes", lo=cursor.lo),
            False,
        )
    next_cursor = Cursor(
        user_id=actor.user_id,
        scope=cursor.scope,
        phase="initial",
        lo=cursor.lo,
        after=str(last),
        backfill_from=cursor.backfill_from,
    )
    return entities, [], next_cursor, True


def _changes_page(
    session: Session, actor: Actor, cursor: Cursor, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, str]], Cursor, bool]:
    hi = cursor.hi if cursor.hi is not None else visible_horizon(session)
    query = select(Change.txid, Change.seq, Change.entity_type, Change.entity_id).where(
        Change.txid >= cursor.lo, Change.txid < hi, actor.region_filter(Change.village_code)
    )
    if cursor.after:
        after_txid, after_seq = cursor.after
        query = query.where(
            or_(Change.txid > after_txid, and_(Change.txid == after_txid, Change.seq > after_seq))
        )
    rows = session.execute(
        query.order_by(Change.txid, Change.seq).limit(limit * ROWS_PER_ENTITY + 1)
    ).all()
    wanted: dict[tuple[str, uuid.UUID], None] = {}
    position = cursor.after
    exhausted = len(rows) <= limit * ROWS_PER_ENTITY
    for index, row in enumerate(rows):
        key = (row.entity_type, row.entity_id)
        if key not in wanted and len(wanted) == limit:
            exhausted = False
            break
        if index == limit * ROWS_PER_ENTITY:
            break
        wanted[key] = None
        position = [row.txid, row.seq]
    entities, removed = _current_states(session, actor, wanted)
    if exhausted:
        return (
            entities,
            removed,
            Cursor(user_id=actor.user_id, scope=cursor.scope, phase="changes", lo=hi),
            False,
        )
    next_cursor = Cursor(
        user_id=actor.user_id,
        scope=cursor.scope,
        phase="changes",
        lo=cursor.lo,
        hi=hi,
        after=position,
    )
    return entities, removed, next_cursor, True


def _current_states(
    session: Session, actor: Actor, wanted: Iterable[tuple[str, uuid.UUID]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Entities in their latest state, in the order asked; those now outside the caller's scope
    or merged into another household are `removed` instead."""
    keys = list(wanted)
    household_ids = {eid for kind, eid in keys if kind == "household"}
    member_ids = {eid for kind, eid in keys if kind == "member"}
    members = {}
    if member_ids:
        members = {
            m.id: m
            for m in session.execute(
                select(*MEMBER_WIRE.columns).where(among(session, Member.id, member_ids))
            )
        }
    household_ids |= {m.household_id for m in members.values()}
    households = {}
    if household_ids:
        households = {
            h.id: h
            for h in session.execute(
                select(*HOUSEHOLD_WIRE.columns, Household.merged_into_id).where(
                    among(session, Household.id, household_ids)
                )
            )
        }
    entities: list[dict[str, Any]] = []
    removed: list[dict[str, str]] = []
    for kind, entity_id in keys:
        if kind == "household":
            household = households.get(entity_id)
            row = household
            shape = HOUSEHOLD_WIRE
        else:
            row = members.get(entity_id)
            household = households.get(row.household_id) if row is not None else None
            shape = MEMBER_WIRE
        if row is None or household is None:
            continue
        if household.merged_into_id is not None or not actor.covers(household.village_code):
            removed.append({"entity": kind, "id": str(entity_id)})
        else:
            entities.append(shape.entity_of(row))
    return entities, removed
