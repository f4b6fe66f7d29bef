"""The tablet's copy of the register: the server's state as last pulled (`entities`), with the
tablet's own writes not yet confirmed by a pull (`local_writes`) shown on top by the server's own
last-writer-wins rule, so a pull never hides a value still to be sent. Functions work inside a
`Replica` transaction and never commit."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sync_protocol.clock import Hlc
from sync_protocol.merge import FieldState, IncomingWrite, merge_field
from sync_protocol.messages import entity_key
from sync_protocol.replica import to_json


@dataclass(frozen=True)
class LocalEntity:
    """One register entity as the tablet shows it.

    `rev` is the revision last seen from the server (None: never pulled, e.g. created here).
    `clocks` maps each field to the HLC text of the write shown. `local_fields` names the fields
    whose shown value is this tablet's own write, not yet confirmed by a pull.
    """

    entity: str
    id: str
    rev: int | None
    deleted: bool
    fields: dict[str, Any]
    clocks: dict[str, str]
    local_fields: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return entity_key(self.entity, self.id)


@dataclass(frozen=True)
class LocalWrite:
    """A field value a submission completed on this tablet wrote to one entity."""

    entity: str
    entity_id: str
    field: str
    value: Any


def known_rev(conn: sqlite3.Connection, entity: str, entity_id: str) -> int | None:
    """The revision of an entity as last pulled, or None if the server never sent it."""
    row = conn.execute(
        "SELECT rev FROM entities WHERE entity = ? AND id = ?", (entity, entity_id.lower())
    ).fetchone()
    return None if row is None else int(row["rev"])


def find_entity(conn: sqlite3.Connection, entity: str, entity_id: str) -> LocalEntity | None:
    """The entity as shown (server state plus local writes), or None if the tablet has neither."""
    entity_id = entity_id.lower()
    row = conn.execute(
        "SELECT * FROM entities WHERE entity = ? AND id = ?", (entity, entity_id)
    ).fetchone()
    writes = conn.execute(
        "SELECT * FROM local_writes WHERE entity = ? AND entity_id = ?", (entity, entity_id)
    ).fetchall()
    if row is None and not writes:
        return None
    return _shown(entity, entity_id, row, writes)


def list_entities(conn: sqlite3.Connection, entity: str | None = None) -> list[LocalEntity]:
    """Every entity (of one type, if given) as shown, ordered by type and id."""
    where, params = ("WHERE entity = ?", (entity,)) if entity else ("", ())
    rows = {
        (r["entity"], r["id"]): r
        for r in conn.execute(f"SELECT * FROM entities {where}", params).fetchall()
    }
    writes: dict[tuple[str, str], list[sqlite3.Row]] = {}
    for w in conn.execute(f"SELECT * FROM local_writes {where}", params).fetchall():
        writes.setdefault((w["entity"], w["entity_id"]), []).append(w)
    keys = sorted(set(rows) | set(writes))
    return [
        _shown(kind, ident, rows.get((kind, ident)), writes.get((kind, ident), []))
        for kind, ident in keys
    ]


def _shown(
    entity: str, entity_id: str, row: sqlite3.Row | None, writes: Iterable[sqlite3.Row]
) -> LocalEntity:
    fields: dict[str, Any] = {} if row is None else json.loads(row["fields"])
    clocks: dict[str, str] = {} if row is None else json.loads(row["clocks"])
    states = {
        name: FieldState(value, Hlc.parse(clocks[name]) if name in clocks else None, 0, None)
        for name, value in fields.items()
    }
    local: set[str] = set()
    # Applying writes in clock order with the server's merge rule gives the value the register
    # will hold once they arrive (each field is a last-writer-wins register).
    for w in sorted(writes, key=lambda w: Hlc.parse(w["hlc"])):
        write = IncomingWrite(json.loads(w["value"]), Hlc.parse(w["hlc"]), None, "local")
        outcome = merge_field(states.get(w["field"]), write, next_rev=0)
        if outcome.changed:
            states[w["field"]] = outcome.state
            local.add(w["field"])
    for name in local:
        fields[name] = states[name].value
        clocks[name] = str(states[name].clock)
    return LocalEntity(
        entity=entity,
        id=entity_id,
        rev=None if row is None else int(row["rev"]),
        deleted=False if row is None else bool(row["deleted"]),
        fields=dict(sorted(fields.items())),
        clocks=dict(sorted(clocks.items())),
        local_fields=tuple(sorted(local)),
    )


def record_writes(
    conn: sqlite3.Connection, instance_id: str, hlc: Hlc, writes: Iterable[LocalWrite]
) -> None:
    """Remember the writes of a submission just completed (shown at once, until confirmed)."""
    conn.executemany(
        # A form may bind one entity twice (the same member in two repeat rows): the later row
        # wins, as it would if the answers were applied in order.
        "INSERT INTO local_writes (instance_id, entity, entity_id, field, value, hlc)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (instance_id, entity, entity_id, field) DO UPDATE SET value = excluded.value",
        [
            (instance_id, w.entity, w.entity_id.lower(), w.field, to_json(w.value), hlc.format())
            for w in writes
        ],
    )


# A local write leaves `local_writes` when its submission is rejected, or once a pull delivered
# its entity at (or past) the revision the push reported for it: until then the tablet's pulled
# state may still predate it.


def acknowledge_writes(conn: sqlite3.Connection, instance_id: str, revs: Mapping[str, int]) -> None:
    """The server took the submission: keep showing its writes until a pull brings each entity
    at the revision in `revs` (or later). Writes to entities `revs` does not name, or whose
    revision the tablet already holds, are dropped now."""
    targets = conn.execute(
        "SELECT DISTINCT entity, entity_id FROM local_writes WHERE instance_id = ?",
        (instance_id,),
    ).fetchall()
    for target in targets:
        entity, entity_id = target["entity"], target["entity_id"]
        rev = revs.get(entity_key(entity, entity_id))
        held = known_rev(conn, entity, entity_id)
        if rev is None or (held is not None and held >= rev):
            conn.execute(
                "DELETE FROM local_writes WHERE instance_id = ? AND entity = ? AND entity_id = ?",
                (instance_id, entity, entity_id),
            )
        else:
            conn.execute(
                "UPDATE local_writes SET acked_rev = ?"
                " WHERE instance_id = ? AND entity = ? AND entity_id = ?",
                (rev, instance_id, entity, entity_id),
            )


def discard_writes(conn: sqlite3.Connection, instance_id: str) -> None:
    """The server refused the submission: stop showing its writes."""
    conn.execute("DELETE FROM local_writes WHERE instance_id = ?", (instance_id,))


def store_pulled(conn: sqlite3.Connection, pulled: Mapping[str, Any]) -> None:
    """Replace an entity's server state with a pulled one (`PulledEntitySchema`, loaded).

    Never goes back to an older revision. Confirmed local writes at or below the pulled revision
    are dropped; unconfirmed ones stay and are still shown where their clock is later.
    """
    entity, entity_id, rev = pulled["entity"], pulled["id"].lower(), int(pulled["rev"])
    held = known_rev(conn, entity, entity_id)
    if held is not None and held > rev:
        return
    clocks = {name: str(clock) for name, clock in pulled["clocks"].items()}
    conn.execute(
        "INSERT INTO entities (entity, id, rev, deleted, fields, clocks) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (entity, id) DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted,"
        " fields = excluded.fields, clocks = excluded.clocks",
        (
            entity,
            entity_id,
            rev,
            int(pulled["deleted"]),
            to_json(pulled["fields"]),
            to_json(clocks),
        ),
    )
    conn.execute(
        "DELETE FROM local_writes WHERE entity = ? AND entity_id = ?"
        " AND acked_rev IS NOT NULL AND acked_rev <= ?",
        (entity, entity_id, rev),
    )


def remove_entity(conn: sqlite3.Connection, entity: str, entity_id: str) -> None:
    """Drop an entity that left the caller's scope (its confirmed local writes go with it)."""
    entity_id = entity_id.lower()
    conn.execute("DELETE FROM entities WHERE entity = ? AND id = ?", (entity, entity_id))
    conn.execute(
        "DELETE FROM local_writes WHERE entity = ? AND entity_id = ? AND acked_rev IS NOT NULL",
        (entity, entity_id),
    )


def forget_server_state(conn: sqlite3.Connection) -> None:
    """Before a pull from scratch: drop everything pulled, keep writes not yet confirmed."""
    conn.execute("DELETE FROM entities")
    conn.execute("DELETE FROM local_writes WHERE acked_rev IS NOT NULL")


def count_entities(conn: sqlite3.Connection) -> dict[str, int]:
    """How many entities of each type the tablet shows (deleted ones included)."""
    counts: dict[str, int] = {}
    for shown in list_entities(conn):
        counts[shown.entity] = counts.get(shown.entity, 0) + 1
    return counts
