"""The outbox: completed submissions, the push batches they travel in, their results and the
conflicts reported. A batch is persisted before it is sent and stays open until its answer is
processed, so a retry re-sends it identically (same batch_id, instance_ids and bytes).
Functions work inside a `Replica` transaction and never commit."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sync_protocol.clock import Hlc
from sync_protocol.replica import to_json

PENDING = "pending"  # completed, in no batch yet
SENT = "sent"  # in an open batch: sent (or about to be), outcome unknown
OUTCOMES = ("accepted", "duplicate", "rejected")
STATES = (PENDING, SENT, *OUTCOMES)


@dataclass(frozen=True)
class OutboxEntry:
    """One completed submission and, once known, the server's result for it."""

    instance_id: str
    device_seq: int
    form_id: str
    form_version: int
    collected_at: str
    hlc: str
    base_revs: dict[str, int]
    data: dict[str, Any]
    state: str = PENDING
    batch_id: str | None = None
    result: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """The submission object of a push request."""
        return {
            "instance_id": self.instance_id,
            "form_id": self.form_id,
            "form_version": self.form_version,
            "collected_at": self.collected_at,
            "hlc": self.hlc,
            "device_seq": self.device_seq,
            "base_revs": self.base_revs,
            "data": self.data,
        }


@dataclass(frozen=True)
class Batch:
    """A push batch as persisted: its id, the clock it is sent with, its submissions in order."""

    batch_id: str
    clock: str
    entries: list[OutboxEntry]

    def request(self, device_id: str) -> dict[str, Any]:
        """The push request body (identical every time it is built)."""
        return {
            "device_id": device_id,
            "batch_id": self.batch_id,
            "clock": self.clock,
            "submissions": [entry.wire() for entry in self.entries],
        }


def add_entry(conn: sqlite3.Connection, entry: OutboxEntry) -> None:
    conn.execute(
        "INSERT INTO outbox (instance_id, device_seq, form_id, form_version, collected_at, hlc,"
        " base_revs, data, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.instance_id,
            entry.device_seq,
            entry.form_id,
            entry.form_version,
            entry.collected_at,
            entry.hlc,
            to_json(entry.base_revs),
            to_json(entry.data),
            entry.state,
        ),
    )


def open_batch(conn: sqlite3.Connection) -> Batch | None:
    """The batch that was persisted but whose response was never processed, if any."""
    row = conn.execute(
        "SELECT batch_id, clock FROM batches WHERE is_open = 1 ORDER BY rowid LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return Batch(row["batch_id"], row["clock"], _entries(conn, "batch_id = ?", (row["batch_id"],)))


def start_batch(
    conn: sqlite3.Connection, batch_id: str, stamp: Callable[[], Hlc], limit: int
) -> Batch | None:
    """Put up to `limit` pending submissions (oldest first) into a new open batch; None if none.

    `stamp` gives the batch's clock; it is called only when a batch is made.
    """
    entries = _entries(conn, "state = ?", (PENDING,), limit=limit)
    if not entries:
        return None
    clock = stamp()
    conn.execute(
        "INSERT INTO batches (batch_id, clock, is_open) VALUES (?, ?, 1)",
        (batch_id, clock.format()),
    )
    conn.executemany(
        "UPDATE outbox SET state = ?, batch_id = ? WHERE instance_id = ?",
        [(SENT, batch_id, entry.instance_id) for entry in entries],
    )
    return Batch(batch_id, clock.format(), _entries(conn, "batch_id = ?", (batch_id,)))


def record_result(conn: sqlite3.Connection, instance_id: str, result: Mapping[str, Any]) -> None:
    """Store one submission's result (`status` becomes its state)."""
    conn.execute(
        "UPDATE outbox SET state = ?, result = ? WHERE instance_id = ?",
        (result["status"], to_json(dict(result)), instance_id),
    )


def abandon_batch(conn: sqlite3.Connection, batch_id: str) -> None:
    """Forget a batch the server refused as a whole without effect (413): its submissions go
    back to pending, to travel in other batches (same instance_ids, so still idempotent)."""
    conn.execute(
        "UPDATE outbox SET state = ?, batch_id = NULL WHERE batch_id = ? AND state = ?",
        (PENDING, batch_id, SENT),
    )
    conn.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))


def close_batch(conn: sqlite3.Connection, batch_id: str) -> None:
    conn.execute("UPDATE batches SET is_open = 0 WHERE batch_id = ?", (batch_id,))


def add_conflicts(
    conn: sqlite3.Connection, instance_id: str, conflicts: Iterable[Mapping[str, Any]]
) -> int:
    """Store conflicts reported for a submission (each once, by `conflict_id`); returns how many
    were new."""
    added = 0
    for c in conflicts:
        cursor = conn.execute(
            "INSERT INTO conflicts (conflict_id, instance_id, entity, entity_id, field, value,"
            " other_value, winner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (conflict_id) DO NOTHING",
            (
                c["conflict_id"],
                instance_id,
                c["entity"],
                c["id"],
                c["field"],
                to_json(c["value"]),
                to_json(c["other_value"]),
                c["winner"],
            ),
        )
        added += cursor.rowcount
    return added


def list_conflicts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every conflict received, oldest first, values decoded."""
    rows = conn.execute("SELECT * FROM conflicts ORDER BY rowid").fetchall()
    return [
        {
            "conflict_id": row["conflict_id"],
            "instance_id": row["instance_id"],
            "entity": row["entity"],
            "id": row["entity_id"],
            "field": row["field"],
            "value": json.loads(row["value"]),
            "other_value": json.loads(row["other_value"]),
            "winner": row["winner"],
        }
        for row in rows
    ]


def list_entries(conn: sqlite3.Connection, state: str | None = None) -> list[OutboxEntry]:
    """Outbox entries (all, or in one state) by `device_seq`."""
    if state is None:
        return _entries(conn, "1 = 1", ())
    return _entries(conn, "state = ?", (state,))


def count_states(conn: sqlite3.Connection) -> dict[str, int]:
    """How many outbox entries are in each state (every state listed, zeros included)."""
    counts = dict.fromkeys(STATES, 0)
    for row in conn.execute("SELECT state, count(*) AS n FROM outbox GROUP BY state"):
        counts[row["state"]] = int(row["n"])
    return counts


def _entries(
    conn: sqlite3.Connection, where: str, params: tuple[Any, ...], limit: int | None = None
) -> list[OutboxEntry]:
    sql = f"SELECT * FROM outbox WHERE {where} ORDER BY device_seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        OutboxEntry(
            instance_id=row["instance_id"],
            device_seq=row["device_seq"],
            form_id=row["form_id"],
            form_version=row["form_version"],
            collected_at=row["collected_at"],
            hlc=row["hlc"],
            base_revs=json.loads(row["base_revs"]),
            data=json.loads(row["data"]),
            state=row["state"],
            batch_id=row["batch_id"],
            result=None if row["result"] is None else json.loads(row["result"]),
        )
        for row in conn.execute(sql, params).fetchall()
    ]
