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


_MARKER = "fieldsync_transaction_marker"


def remember_transaction_marker(session: Session, txid: int) -> None:
    """Note the PostgreSQL transaction id of the session's current transaction, read along with
    another statement, so that `transaction_marker` need not ask for it again."""
    session.info[_MARKER] = (session.get_transaction(), txid)


def transaction_marker(session: Session) -> int:
    """The txid to store on every change written by the current (write) transaction."""
    if _is_postgres(session):
        transaction, txid = session.info.get(_MARKER, (None, 0))
        if transaction is not None and transaction is session.get_transaction():
            return int(txid)
        return int(session.execute(text("SELECT pg_current_xact_id()::text::bigint")).scalar_one())
    # SQLite: writers hold the database lock for the whole transaction, so max+1 is unique and
    # increases in commit order. (An unused counter value is harmless.)
    highest = session.execute(select(func.max(Change.txid))).scalar()
    return int(highest or 0) + 1


# The oldest transaction still running that could write to *this* database. Transaction ids are
# cluster-wide, and a long write in another database on the same server (a bulk load, another
# application) must not hold every tablet's pull back: running transactions known to belong to
# another database are left out. Any running transaction not known to be elsewhere counts, so the
# horizon can only come out too low (a delay), never too high (a skip).
_POSTGRES_HORIZON = text("""
    WITH snap AS (SELECT pg_current_snapshot() AS s),
    elsewhere AS (
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datname IS NOT NULL
          AND datname <> current_database()
    )
    SELECT COALESCE(
        (SELECT min(x::text::bigint) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE x::text::bigint NOT IN (SELECT xid FROM elsewhere)),
        (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap)
    )
""")


def visible_horizon(session: Session) -> int:
    """Every change with `txid` below this is visible now and no other will ever appear."""
    if _is_postgres(session):
        return int(session.execute(_POSTGRES_HORIZON).scalar_one())
    highest = session.execute(select(func.max(Change.txid))).scalar()
    return int(highest or 0) + 1
