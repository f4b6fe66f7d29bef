"""The tablet's SQLite file: identity, login, persisted clock, cached forms, attachments, and the
one transaction every tablet module writes in (`Replica.transaction()`), so a crash leaves the
file before or after a whole step, never in between. Never talks to the network."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_protocol.clock import Hlc, HybridClock, wall_clock_ms

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forms (
    form_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    title TEXT NOT NULL,
    definition TEXT NOT NULL,
    is_current INTEGER NOT NULL DEFAULT 0,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (form_id, version)
);
CREATE TABLE IF NOT EXISTS entities (
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    fields TEXT NOT NULL,
    clocks TEXT NOT NULL,
    PRIMARY KEY (entity, id)
);
CREATE TABLE IF NOT EXISTS local_writes (
    instance_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    hlc TEXT NOT NULL,
    acked_rev INTEGER,
    PRIMARY KEY (instance_id, entity, entity_id, field)
);
CREATE INDEX IF NOT EXISTS ix_local_writes_entity ON local_writes (entity, entity_id);
CREATE TABLE IF NOT EXISTS outbox (
    instance_id TEXT PRIMARY KEY,
    device_seq INTEGER NOT NULL UNIQUE,
    form_id TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    collected_at TEXT NOT NULL,
    hlc TEXT NOT NULL,
    base_revs TEXT NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL,
    batch_id TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS ix_outbox_state ON outbox (state, device_seq);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    clock TEXT NOT NULL,
    is_open INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    conflict_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    other_value TEXT NOT NULL,
    winner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attachments (
    digest TEXT PRIMARY KEY,
    content BLOB NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    upload_required INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class CachedForm:
    """A form definition as fetched from the server (`definition` is the raw JSON object)."""

    form_id: str
    version: int
    hash: str
    title: Any
    definition: dict[str, Any]
    is_current: bool


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment's reference fields and bytes, as kept in the local store."""

    digest: str
    filename: str
    content_type: str
    content: bytes
    upload_required: bool

    def reference(self) -> dict[str, str]:
        """The `{"attachment", "filename", "content_type"}` object answers carry."""
        return {
            "attachment": self.digest,
            "filename": self.filename,
            "content_type": self.content_type,
        }


def to_json(value: Any) -> str:
    """The text a JSON value is stored as (compact, key order kept, non-ASCII as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Replica:
    """One tablet's SQLite file, opened (and created on first use) at `path`.

    The device id is generated once, at creation, and never changes. `physical_time_ms` is the
    clock the HLC reads. Use as a context manager, or call `close()`.
    """

    def __init__(
        self, path: str | Path, *, physical_time_ms: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.path = Path(path)
        self._physical_time_ms = physical_time_ms
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE, so two
        # processes sharing the file serialize their writes instead of failing mid-step.
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if self.get_meta("device_id") is None:
                self.set_meta("device_id", str(uuid.uuid4()))
                self.set_meta("schema_version", SCHEMA_VERSION)
                self.set_meta("next_device_seq", "1")
        device_id = self.get_meta("device_id")
        assert device_id is not None
        self.device_id = device_id

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic step: committed when the block ends, rolled back if it raises."""
        if self.conn.in_transaction:
            raise RuntimeError("replica transactions do not nest")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    # --- settings and identity ------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or with None remove) one setting; call inside a transaction."""
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def next_device_seq(self) -> int:
        """Take the next `device_seq` (1, 2, 3 …); call inside the transaction that uses it."""
        value = int(self.get_meta("next_device_seq") or "1")
        self.set_meta("next_device_seq", str(value + 1))
        return value

    # --- the hybrid logical clock ---------------------------------------------------------

    @property
    def clock_last(self) -> Hlc | None:
        """The last stamp this device issued or observed (persisted), or None before any."""
        text = self.get_meta("hlc_last")
        return None if text is None else Hlc.parse(text)

    def stamp(self) -> Hlc:
        """A new local stamp, persisted in the current transaction.

        The clock is rebuilt from the persisted state each time, so stamps grow across restarts
        and across processes sharing the file, whatever the wall clock does.
        """
        clock = HybridClock(self.device_id, self._physical_time_ms, last=self.clock_last)
        stamp = clock.now()
        self.set_meta("hlc_last", stamp.format())
        return stamp

    def observe(self, remote: Hlc) -> Hlc:
        """Advance the clock past a stamp received from the server (persisted, in a transaction)."""
        clock = HybridClock(self.device_id, self._physical_time_ms, last=self.clock_last)
        stamp = clock.observe(remote)
        self.set_meta("hlc_last", stamp.format())
        return stamp

    def physical_time_ms(self) -> int:
        return self._physical_time_ms()

    # --- cached forms ---------------------------------------------------------------------

    def save_form(self, form: CachedForm) -> None:
        """Store a fetched definition and make it the current version of its form."""
        self.conn.execute(
            "UPDATE forms SET is_current = 0 WHERE form_id = ? AND version <> ?",
            (form.form_id, form.version),
        )
        self.conn.execute(
            "INSERT INTO forms (form_id, version, hash, title, definition, is_current, fetched_at)"
            " VALUES (?, ?, ?, ?, ?, 1, datetime('now'))"
            " ON CONFLICT (form_id, version) DO UPDATE SET hash = excluded.hash,"
            " title = excluded.title, definition = excluded.definition, is_current = 1,"
            " fetched_at = excluded.fetched_at",
            (
                form.form_id,
                form.version,
                form.hash,
                to_json(form.title),
                to_json(form.definition),
            ),
        )

    def retire_forms_except(self, form_ids: set[str]) -> None:
        """Mark forms the server no longer offers as not current (their definitions are kept)."""
        for row in self.conn.execute("SELECT DISTINCT form_id FROM forms").fetchall():
            if row["form_id"] not in form_ids:
                self.conn.execute(
                    "UPDATE forms SET is_current = 0 WHERE form_id = ?", (row["form_id"],)
                )

    def current_form(self, form_id: str) -> CachedForm | None:
        row = self.conn.execute(
            "SELECT * FROM forms WHERE form_id = ? AND is_current = 1", (form_id,)
        ).fetchone()
        return None if row is None else _cached_form(row)

    def forms(self) -> list[CachedForm]:
        """The current version of every cached form, by form id."""
        rows = self.conn.execute(
            "SELECT * FROM forms WHERE is_current = 1 ORDER BY form_id"
        ).fetchall()
        return [_cached_form(row) for row in rows]

    # --- attachments ----------------------------------------------------------------------

    def add_attachment(self, content: bytes, filename: str, content_type: str) -> StoredAttachment:
        """Store bytes under their SHA-256 digest (idempotent); returns the stored attachment."""
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        self.conn.execute(
            "INSERT INTO attachments (digest, content, filename, content_type) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (digest) DO NOTHING",
            (digest, content, filename, content_type),
        )
        attachment = self.attachment(digest)
        assert attachment is not None
        return attachment

    def attachment(self, digest: str) -> StoredAttachment | None:
        row = self.conn.execute("SELECT * FROM attachments WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            return None
        return StoredAttachment(
            digest=row["digest"],
            filename=row["filename"],
            content_type=row["content_type"],
            content=bytes(row["content"]),
            upload_required=bool(row["upload_required"]),
        )

    def require_upload(self, digests: list[str]) -> list[str]:
        """Flag the attachments the server asked for; returns those not in the local store."""
        unavailable = []
        for digest in digests:
            cursor = self.conn.execute(
                "UPDATE attachments SET upload_required = 1 WHERE digest = ?", (digest,)
            )
            if cursor.rowcount == 0:
                unavailable.append(digest)
        return unavailable

    def attachments_to_upload(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT digest FROM attachments WHERE upload_required = 1 ORDER BY digest"
        ).fetchall()
        return [str(row["digest"]) for row in rows]

    def mark_uploaded(self, digest: str) -> None:
        self.conn.execute("UPDATE attachments SET upload_required = 0 WHERE digest = ?", (digest,))


def _cached_form(row: sqlite3.Row) -> CachedForm:
    return CachedForm(
        form_id=row["form_id"],
        version=row["version"],
        hash=row["hash"],
        title=json.loads(row["title"]),
        definition=json.loads(row["definition"]),
        is_current=bool(row["is_current"]),
    )
