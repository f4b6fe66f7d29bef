"""The changes table. Rows are only ever inserted; `seq` orders them and feeds pull cursors.

One row per entity per write: `fields` maps each field whose stored state the write changed to
its new value (a sensitive value in its masked form), all under the write's one `clock` and the
entity's new `rev`, with the write's origin (submission, device, user).

On PostgreSQL, sequence values can become visible out of order (a transaction that took seq 10
may commit after one that took seq 11). `txid` records the writing transaction (PostgreSQL's
transaction id; on SQLite, whose writers are serialised, a counter) so a pull cursor can stop
below the oldest transaction still running and never skip a late commit (see server/sync/feed.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY.
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")


class Change(Base):
    __tablename__ = "changes"
    # Pull reads the log by (txid, seq). No index by entity: its keys are random UUIDs, so
    # every push would scatter thousands of index writes over the disk (it cost a push of 500
    # visits more than all its change rows did). A household's timeline reads its village's
    # changes by (village_code, seq, entity_id) instead — a push appends at the end of each
    # village's range, and the timeline filters the village's entries on the index alone.
    __table_args__ = (
        Index("ix_changes_txid_seq", "txid", "seq"),
        Index("ix_changes_village_seq", "village_code", "seq", "entity_id"),
    )

    seq: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    entity_type: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[uuid.UUID]
    fields: Mapped[dict[str, Any]]
    clock: Mapped[str] = mapped_column(String(96))
    rev: Mapped[int]
    # Village of the entity when the change was made: pull scopes by it.
    village_code: Mapped[str] = mapped_column(String(12))
    submission_id: Mapped[uuid.UUID | None]
    device_id: Mapped[uuid.UUID | None]
    user_id: Mapped[int | None]
    txid: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScopeSnapshot(Base):
    """A set of region grants a pull cursor was issued for, named by the digest of its user and
    grants (see server/sync/pull.py), so that a cursor stays short however many regions a user
    has, scope changes can be followed exactly, and a cursor can only name its own user's."""

    __tablename__ = "scope_snapshots"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    region_codes: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
