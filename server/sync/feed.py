"""The change feed's notion of time: which transaction wrote a change, and up to which
transaction every change is already visible.

PostgreSQL hands out sequence numbers at insert time but transactions commit in any order, so a
reader that only remembered "the highest seq I saw" would skip a change whose transaction took a
lower seq and committed later. Each change therefore records its transaction id (`txid`), and a
reader only serves transactions below the *horizon*: the oldest transaction still running
(`pg_snapshot_xmin`). Everything below it has committed or aborted, so nothing below it can ever
appear later. SQLite has one writer at a time (BEGIN IMMEDIATE), so a counter does the same job.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.changes.models import Change


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def transaction_marker(session: Session) -> int:
    """The txid to store on every change written by the current (write) transaction."""
    if _is_postgres(session):
        return int(session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one())
    # SQLite: writers hold the database lock for the whole transaction, so max+1 is unique and
    # increases in commit order. (An unused counter value is harmless.)
    highest = session.execute(select(func.max(Change.txid))).scalar()
    return int(highest or 0) + 1


def visible_horizon(session: Session) -> int:
    """Every change with `txid` below this is visible now and no other will ever appear."""
    if _is_postgres(session):
        return int(
            session.execute(
                text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            ).scalar_one()
        )
    highest = session.execute(select(func.max(Change.txid))).scalar()
    return int(highest or 0) + 1
