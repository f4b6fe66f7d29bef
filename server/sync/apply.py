"""The register write path shared by push and by server-side edits (conflict resolutions).

A `Workspace` loads the current state of the entities a unit of work touches, merges writes into
them in memory with the pure rules of `sync_protocol.merge`, re-checks household invariants, and
finally writes everything set-based: new rows, changed rows, change-log rows and conflicts — a
fixed number of statements however many submissions a batch holds. Workspaces are read through
`load_locked`, which takes the household locks first, so no two transactions merge into the same
household at once (no lost update from a read-modify-write race).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, ColumnElement, Table, Text, func, insert, literal, text, true
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import Session

from forms.register import ENTITIES
from server.auth.actor import Actor
from server.bulk import (
    TableCodec,
    add_to_rows,
    codec_for,
    insert_rows,
    pipelined,
    select_in,
    update_rows,
)
from server.changes.models import Change
from server.conflicts.models import Conflict
from server.db import utcnow
from server.errors import NotFound
from server.households.fields import column_values, to_json_value
from server.households.invariants import INVARIANT_FIELDS, household_flags
from server.households.models import Household, Member
from server.households.versions import StoredWrite, compacted
from server.sensitive import SensitiveCodec, mask, protected_for_review
from server.sync.feed import remember_transaction_marker, transaction_marker
from sync_protocol.clock import Hlc, HybridClock
from sync_protocol.merge import EntityMergeOutcome, FieldState, IncomingWrite, merge_entity

SENSITIVE = frozenset({"id_number", "phone"})
TABLES: dict[str, Table] = {
    "household": cast(Table, Household.__table__),
    "member": cast(Table, Member.__table__),
}
CHANGES = cast(Table, Change.__table__)
CONFLICTS = cast(Table, Conflict.__table__)


def _locks_households(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_households(session: Session, household_ids: Iterable[uuid.UUID]) -> None:
    """Serialise writers per household until the transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in one statement in a fixed (sorted)
    order so two batches can never deadlock; they also cover households that do not exist yet.
    SQLite: the write transaction already holds the database lock (BEGIN IMMEDIATE).
    """
    keys = sorted({int.from_bytes(hid.bytes[:8], "big", signed=True) for hid in household_ids})
    if keys and _locks_households(session):
        # The transaction's id comes along: every writer locking households stores it on its
        # change-log rows next (`transaction_marker`), and asking apart costs a round trip.
        _, txid = session.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(k)), pg_current_xact_id()::text::bigint"
                " FROM unnest(CAST(:keys AS bigint[])) AS k"
            ),
            {"keys": keys},
        ).one()
        remember_transaction_marker(session, int(txid))


def household_lock(session: Session, household_id: Any) -> ColumnElement[bool]:
    """A column that takes `lock_households`' lock on the household in column `household_id` as
    each row is read (PostgreSQL; a constant elsewhere): a statement reading one row of a
    household (e.g. locking a monitoring case) takes the household's lock first — the select
    list is computed before `FOR UPDATE` locks the row — without a round trip of its own. The
    key is `lock_households`' (the uuid's first 8 bytes, signed)."""
    if not _locks_households(session):
        return true()
    first_bytes = func.left(func.replace(sql_cast(household_id, Text), "-", ""), 16)
    key = sql_cast(sql_cast(literal("x").concat(first_bytes), BIT(64)), BigInteger)
    return func.pg_advisory_xact_lock(key).is_not(None)


def member_households(session: Session, member_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The households the given members belong to now (a visit may list a member of another
    household: that household is written too, and must be locked and checked as well)."""
    codec = codec_for(TABLES["member"], session.get_bind().dialect)
    rows = select_in(session.connection(), codec, ("household_id",), [("id", member_ids)])
    if not rows:
        return set()
    read = codec.reader("household_id")
    return {read(household_id) for (household_id,) in rows}


@dataclass
class EntityState:
    """One register entity during a unit of work: its stored columns and its merged fields.

    `field_writes` and `writes` are its `versions` column unpacked (field → index of the write
    that set it; writes as `[clock, rev, origin, source]`); a merge appends its write and repoints
    the fields it changed. `dirty` names the fields whose state changed, `value_changed` those
    whose value did (only their columns are written back)."""

    type: str
    id: uuid.UUID
    is_new: bool
    rev: int
    fields: Mapping[str, FieldState]
    columns: Mapping[str, Any]  # the stored row (see `stored_row`), `{}` for a new entity
    field_writes: dict[str, int] = field(default_factory=dict)
    writes: list[StoredWrite] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    value_changed: set[str] = field(default_factory=set)
    old_village: str | None = None
    new_review_flags: list[str] | None = None  # household invariants to store, when they changed
    household_id: uuid.UUID | None = None  # a member's household now (after this unit's merges)

    def value(self, name: str) -> Any:
        state = self.fields.get(name)
        return None if state is None else state.value

    def source(self, name: str) -> str | None:
        """The submission whose write set field `name` (None for imports and server edits)."""
        index = self.field_writes.get(name)
        return None if index is None else self.writes[index][3]

    @property
    def key(self) -> str:
        return f"{self.type}/{self.id}"

    @property
    def is_deleted(self) -> bool:
        return bool(self.value("deleted"))


_UNREAD = object()
V = TypeVar("V")


class LazyMapping(Mapping[str, V]):
    """Values worked out on first read, for a known set of names: a push looks at a handful of a
    stored row's thirty columns, and merges a dozen of a household's forty fields."""

    __slots__ = ("_compute", "_names", "_values")

    def __init__(self, names: Mapping[str, object], compute: Callable[[str], V]) -> None:
        self._names = names
        self._compute = compute
        self._values: dict[str, V] = {}

    def __getitem__(self, name: str) -> V:
        value = self._values.get(name, _UNREAD)
        if value is _UNREAD:
            if name not in self._names:
                raise KeyError(name)
            value = self._values[name] = self._compute(name)
        return value  # type: ignore[return-value]

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._names else default

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def stored_row(codec: TableCodec, columns: Sequence[str], raw: Iterable[Any]) -> LazyMapping[Any]:
    """A register row read at the driver level (`raw`: the values of `columns`), each column
    converted by SQLAlchemy's own conversion for it on first read."""
    values = dict(zip(columns, raw, strict=True))
    return LazyMapping(values, lambda name: codec.reader(name)(values[name]))


# What every loaded entity needs besides the columns of the fields a unit of work writes: its
# identity and versions, its extension properties, and what the household invariants, the
# change log and the scope checks read.
_ALWAYS_READ = {
    "household": ("id", "rev", "versions", "extra", "village_code", "head_member_id", "deleted"),
    "member": ("id", "rev", "versions", "extra", "household_id", "relation", "deleted"),
}


def _columns_for(entity_type: str, fields: Iterable[str]) -> tuple[str, ...]:
    """The columns to read so that `fields` of `entity_type` can be merged."""
    columns = dict.fromkeys(_ALWAYS_READ[entity_type])
    if entity_type == "household":
        columns["review_flags"] = None
    register = ENTITIES[entity_type].fields
    for name in fields:
        if name in SENSITIVE:
            columns[f"{name}_cipher"] = None
        elif name in register:
            columns[name] = None
    return tuple(columns)


@dataclass(frozen=True)
class Origin:
    """Who a write comes from: the merge origin (device id or `user:<id>`) and, for the change log
    and conflict review, the submission, device and user behind it."""

    origin: str
    submission_id: uuid.UUID | None
    device_id: uuid.UUID | None
    user_id: int | None

    @property
    def source(self) -> str | None:
        """The submission as the field versions record it."""
        return None if self.submission_id is None else str(self.submission_id)


@dataclass(frozen=True)
class AppliedConflict:
    id: uuid.UUID
    entity: str
    entity_id: uuid.UUID
    field: str
    incoming_value: Any
    other_value: Any
    incoming_won: bool


class _Stamps:
    """Clock texts and their parsed stamps: the fields an import or a submission wrote share one
    stamp, so each text is parsed (and each stamp formatted) once per unit of work."""

    def __init__(self) -> None:
        self._parsed: dict[str, Hlc] = {}
        self._texts: dict[Hlc, str] = {}

    def parsed(self, text: str) -> Hlc:
        clock = self._parsed.get(text)
        if clock is None:
            clock = self._parsed[text] = Hlc.parse(text)
            self._texts[clock] = text
        return clock

    def text(self, clock: Hlc) -> str:
        text = self._texts.get(clock)
        if text is None:
            text = self._texts[clock] = str(clock)
        return text


class Workspace:
    def __init__(self, session: Session, codec: SensitiveCodec) -> None:
        self.session = session
        self.codec = codec
        self.now = utcnow()  # when this unit of work's changes are stamped as made
        self.entities: dict[tuple[str, uuid.UUID], EntityState] = {}
        self.members_of: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._changes: list[dict[str, Any]] = []
        self._conflicts: list[dict[str, Any]] = []
        self._touched_households: set[uuid.UUID] = set()
        self._stamps = _Stamps()

    # --- loading ------------------------------------------------------------------------------

    def load(
        self,
        household_ids: set[uuid.UUID],
        member_ids: set[uuid.UUID],
        written: Mapping[str, Iterable[str]],
    ) -> None:
        """Load the households and members named, and every member of those households (the
        household invariants look at all of them). Two queries, reading only the columns that
        the fields in `written` (by entity type: the fields this unit of work may write) and
        the invariants need; reading any other field of these entities is an error."""
        connection = self.session.connection()
        households = self._codec("household")
        if household_ids:
            columns = _columns_for("household", written.get("household", ()))
            for raw in select_in(connection, households, columns, [("id", household_ids)]):
                self._adopt("household", stored_row(households, columns, raw))
        members = self._codec("member")
        columns = _columns_for("member", written.get("member", ()))
        conditions = [("household_id", household_ids), ("id", member_ids)]
        for raw in select_in(connection, members, columns, conditions):
            self._adopt("member", stored_row(members, columns, raw))

    def _codec(self, entity_type: str) -> TableCodec:
        return codec_for(TABLES[entity_type], self.session.get_bind().dialect)

    def _adopt(self, entity_type: str, columns: Mapping[str, Any]) -> None:
        versions = columns["versions"] or {}
        field_writes: dict[str, int] = dict(versions.get("fields") or {})
        writes: list[StoredWrite] = list(versions.get("writes") or [])
        state = EntityState(
            type=entity_type,
            id=columns["id"],
            is_new=False,
            rev=columns["rev"],
            fields=self._field_states(entity_type, columns, field_writes, writes),
            columns=columns,
            field_writes=field_writes,
            writes=writes,
            old_village=columns.get("village_code"),
            household_id=columns.get("household_id"),
        )
        if (entity_type, state.id) in self.entities:
            return  # read twice (a member named and in a named household): the first one stands
        self.entities[(entity_type, state.id)] = state
        if entity_type == "member":
            self.members_of.setdefault(columns["household_id"], set()).add(state.id)

    def _field_states(
        self,
        entity_type: str,
        columns: Mapping[str, Any],
        field_writes: Mapping[str, int],
        writes: list[StoredWrite],
    ) -> LazyMapping[FieldState]:
        register_fields = ENTITIES[entity_type].fields
        # The versions as loaded: later merges repoint `field_writes`, never these.
        stored = dict(field_writes)
        # The closure must not hold the workspace (which holds it): no cycle, so all of a unit
        # of work's objects are freed by reference counting when it ends.
        codec, stamps = self.codec, self._stamps

        def decode(name: str) -> FieldState:
            if name in SENSITIVE:
                cipher = columns.get(f"{name}_cipher")
                value = codec.reveal(name, cipher) if cipher else None
            elif name in register_fields:
                value = to_json_value(columns[name])
            else:
                value = (columns["extra"] or {}).get(name)
            clock, rev, origin, _ = writes[stored[name]]
            return FieldState(value, stamps.parsed(clock), rev, origin)

        return LazyMapping(stored, decode)

    def find(self, entity_type: str, entity_id: uuid.UUID) -> EntityState | None:
        return self.entities.get((entity_type, entity_id))

    def village_of(self, state: EntityState) -> str | None:
        """The village an entity lives in now: its own, or its household's for a member."""
        if state.type == "household":
            value = state.value("village_code")
            return str(value) if value else None
        household = self.find("household", state.household_id) if state.household_id else None
        return self.village_of(household) if household else None

    # --- merging ------------------------------------------------------------------------------

    def new_entity(self, entity_type: str, entity_id: uuid.UUID) -> EntityState:
        return EntityState(
            type=entity_type, id=entity_id, is_new=True, rev=0, fields={}, columns={}
        )

    def preview(
        self,
        state: EntityState,
        values: Mapping[str, Any],
        clock: Hlc,
        base_rev: int | None,
        origin: Origin,
    ) -> EntityMergeOutcome:
        """What merging `values` into `state` would give, without changing anything."""
        writes = {
            name: IncomingWrite(value, clock, base_rev, origin.origin)
            for name, value in values.items()
        }
        return merge_entity(state.fields, writes, state.rev)

    def commit(
        self, state: EntityState, outcome: EntityMergeOutcome, clock: Hlc, origin: Origin
    ) -> list[AppliedConflict]:
        """Install a previewed merge: the new field states, change-log rows, conflict rows."""
        # Who wrote the values this merge met, before the merge repoints its fields.
        stored_sources = {name: state.source(name) for name, _ in outcome.conflicts}
        self.entities[(state.type, state.id)] = state
        if state.type == "member":
            self._follow_household(state, outcome)
        elif state.is_new or not INVARIANT_FIELDS.isdisjoint(outcome.value_changed_fields):
            self._touched_households.add(state.id)
        if outcome.changed_fields:
            write = len(state.writes)
            state.writes.append(
                [self._stamps.text(clock), outcome.rev, origin.origin, origin.source]
            )
            for name in outcome.changed_fields:
                state.field_writes[name] = write
            state.dirty.update(outcome.changed_fields)
            state.value_changed.update(outcome.value_changed_fields)
        state.fields = outcome.fields
        state.rev = outcome.rev
        village = self.village_of(state) or ""
        now = self.now
        if outcome.changed_fields:
            change = {
                "entity_type": state.type,
                "entity_id": state.id,
                "fields": {
                    name: self._shown(name, outcome.fields[name].value)
                    for name in outcome.changed_fields
                },
                "clock": self._stamps.text(clock),
                "rev": outcome.rev,
                "village_code": village,
                "submission_id": origin.submission_id,
                "device_id": origin.device_id,
                "user_id": origin.user_id,
                "changed_at": now,
            }
            self._changes.append(change)
            # An entity that left a village: that village's tablets must hear it (their pull
            # filters the change log by village), so the change is logged there too.
            left = self._village_left(state, outcome, village)
            if left is not None:
                self._changes.append({**change, "village_code": left})
                if state.type == "household":
                    self._log_members_moved_along(state, change, left)
        applied = []
        for name, record in outcome.conflicts:
            conflict_id = uuid.uuid4()
            stored = stored_sources.get(name)
            stored_submission = uuid.UUID(stored) if stored else None
            incoming_won = record.winner == "incoming"
            self._conflicts.append(
                {
                    "id": conflict_id,
                    "entity_type": state.type,
                    "entity_id": state.id,
                    "field": name,
                    "village_code": village,
                    "winner_value": self._protected(name, record.winning.value),
                    "winner_clock": str(record.winning.clock or ""),
                    "winner_submission_id": origin.submission_id
                    if incoming_won
                    else stored_submission,
                    "loser_value": self._protected(name, record.losing.value),
                    "loser_clock": str(record.losing.clock or ""),
                    "loser_submission_id": stored_submission
                    if incoming_won
                    else origin.submission_id,
                    "status": "open",
                    "created_at": now,
                }
            )
            applied.append(
                AppliedConflict(
                    conflict_id,
                    state.type,
                    state.id,
                    name,
                    self._shown(name, record.incoming.value),
                    self._shown(name, record.current.value),
                    incoming_won,
                )
            )
        return applied

    def _village_left(
        self, state: EntityState, outcome: EntityMergeOutcome, village: str
    ) -> str | None:
        """The village `state` was in before this write, when the write moved it out of it: a
        household whose village changed, or a member moved to a household of another village."""
        if state.type == "household":
            old_village = state.old_village if "village_code" in outcome.changed_fields else None
        elif "household_id" in outcome.changed_fields:
            old_household = state.columns.get("household_id")
            old = self.find("household", old_household) if old_household else None
            old_village = self.village_of(old) if old else None
        else:
            old_village = None
        return old_village if old_village and old_village != village else None

    def _log_members_moved_along(
        self, household: EntityState, change: dict[str, Any], left: str
    ) -> None:
        """A household that moved takes its members along, written or not: each gets a change
        row (no fields changed) in the village left, whose tablets must drop it, and in the new
        one, whose tablets must receive it."""
        for member_id in self.members_of.get(household.id, ()):
            member = self.find("member", member_id)
            if member is None:
                continue
            moved = {**change, "entity_type": "member", "entity_id": member_id, "fields": {}}
            moved["rev"] = member.rev
            self._changes.append(moved)
            self._changes.append({**moved, "village_code": left})

    def _follow_household(self, member: EntityState, outcome: EntityMergeOutcome) -> None:
        """Keep `members_of` and the member's household up to date with a merge; the household
        it is in (and the one it left) get their invariants checked at flush when the merge
        could have changed them."""
        old = member.household_id
        if "household_id" in outcome.value_changed_fields:
            new = uuid.UUID(str(outcome.fields["household_id"].value))
            if old is not None and old != new:
                self.members_of.get(old, set()).discard(member.id)
                self._touched_households.add(old)
            self.members_of.setdefault(new, set()).add(member.id)
            member.household_id = new
        affects_invariants = not INVARIANT_FIELDS.isdisjoint(outcome.value_changed_fields)
        if member.household_id is not None and (member.is_new or affects_invariants):
            self._touched_households.add(member.household_id)

    def _protected(self, name: str, value: Any) -> Any:
        return protected_for_review(self.codec, name if name in SENSITIVE else None, value)

    def _shown(self, name: str, value: Any) -> Any:
        if name in SENSITIVE and value not in (None, ""):
            return mask(name, str(value))
        return value

    # --- invariants ---------------------------------------------------------------------------

    def household_flags(self, household: EntityState) -> list[str]:
        """What is wrong with a household as a whole after field-wise merging (kept, flagged)."""
        members = {
            str(member.id): {"relation": member.value("relation"), "deleted": member.is_deleted}
            for mid in self.members_of.get(household.id, ())
            if (member := self.find("member", mid)) is not None
        }
        return household_flags(
            {
                "deleted": household.is_deleted,
                "head_member_id": household.value("head_member_id"),
            },
            members,
        )

    # --- writing ------------------------------------------------------------------------------

    def flush(self, txid: int) -> None:
        """Write every change of this unit of work, set-based."""
        now = self.now
        for household_id in self._touched_households:
            household = self.find("household", household_id)
            if household is None:
                continue
            flags = self.household_flags(household)
            if flags != list(household.columns.get("review_flags") or []):
                household.new_review_flags = flags
        connection = self.session.connection()
        inserts: dict[str, list[tuple[Any, ...]]] = {}
        # Existing rows: only the columns this unit of work changed are written, one
        # executemany per set of columns (a batch of one form makes a handful of sets).
        updates: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
        for state in self.entities.values():
            codec = self._codec(state.type)
            if state.is_new:
                if state.dirty:
                    row = self._new_row(state, now)
                    written = codec.written(codec.columns, [row[c] for c in codec.columns])
                    inserts.setdefault(state.type, []).append(written)
            elif state.dirty or state.new_review_flags is not None:
                changed = self._changed_columns(state, now)
                names = tuple(changed)
                values = [*changed.values(), state.id]
                written = codec.written((*names, "id"), values)
                updates.setdefault((state.type, names), []).append(written)
        for entity_type in ("household", "member"):  # households first: members refer to them
            codec = self._codec(entity_type)
            insert_rows(connection, codec, codec.columns, inserts.get(entity_type, []))
        changes = codec_for(CHANGES, connection.dialect)
        columns = (*self._changes[0], "txid") if self._changes else ()
        households = self._codec("household")
        counted = [households.written(("member_count", "id"), c) for c in self._member_counts()]
        with pipelined(connection):
            for (entity_type, names), rows in updates.items():
                update_rows(connection, self._codec(entity_type), names, "id", rows)
            add_to_rows(connection, households, "member_count", "id", counted)
            # Prepared while the database works through the updates.
            log = [changes.written(columns, (*c.values(), txid)) for c in self._changes]
        insert_rows(connection, changes, columns, log)
        if self._conflicts:
            connection.execute(insert(CONFLICTS), self._conflicts)

    def _member_counts(self) -> list[tuple[int, uuid.UUID]]:
        """What this unit of work adds to each household's live-member count (`member_count`):
        +1 for a new live member or one undeleted or moved in, -1 for one deleted or moved out;
        by household id (the order every writer locks in), without the zeros."""
        delta: dict[uuid.UUID, int] = {}
        for (entity_type, _), state in self.entities.items():
            if entity_type != "member" or not state.dirty:
                continue
            # Before and after as stored: the row's columns, and what this flush writes of them.
            if not state.is_new and not state.columns["deleted"]:
                before = state.columns["household_id"]
                delta[before] = delta.get(before, 0) - 1
            written = state.is_new or "deleted" in state.value_changed
            deleted = state.is_deleted if written else state.columns["deleted"]
            if not deleted and state.household_id is not None:
                delta[state.household_id] = delta.get(state.household_id, 0) + 1
        return [(n, household_id) for household_id, n in sorted(delta.items()) if n]

    def _versions(self, state: EntityState) -> dict[str, Any]:
        return compacted(state.field_writes, state.writes)

    def _new_row(self, state: EntityState, now: datetime) -> dict[str, Any]:
        """Every column of a new entity's row."""
        table = TABLES[state.type]
        columns: dict[str, Any] = {c.name: None for c in table.columns}
        columns.update(id=state.id, created_at=now, review_flags=[], deleted=False, extra={})
        if state.type == "household":
            # Its members are counted in by `_member_counts`, after the insert.
            columns.update(monitoring_status="not_monitored", risk_causes=[], member_count=0)
        for name in state.fields:
            columns.update(self._field_columns(state, name, columns["extra"]))
        columns.update(
            rev=state.rev, versions=self._versions(state), updated_at=now, deleted=state.is_deleted
        )
        if state.new_review_flags is not None:
            columns["review_flags"] = state.new_review_flags
        return columns

    def _changed_columns(self, state: EntityState, now: datetime) -> dict[str, Any]:
        """The columns of an existing entity this unit of work changed: those of the fields whose
        value changed, the revision, versions and update time, and the review flags if new."""
        columns: dict[str, Any] = {}
        extra = state.columns.get("extra") or {}
        for name in sorted(state.value_changed):
            values = self._field_columns(state, name, extra)
            extra = values.get("extra", extra)
            columns.update(values)
        if state.new_review_flags is not None:
            columns["review_flags"] = state.new_review_flags
        if state.dirty:
            columns.update(rev=state.rev, versions=self._versions(state), updated_at=now)
        return columns

    def _field_columns(
        self, state: EntityState, name: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        return column_values(state.type, name, state.fields[name].value, self.codec, extra=extra)


def load_locked(
    session: Session,
    codec: SensitiveCodec,
    household_ids: set[uuid.UUID],
    member_ids: set[uuid.UUID],
    written: Mapping[str, Iterable[str]],
) -> Workspace:
    """A workspace holding the households and members named (see `Workspace.load`), read only
    once every household they are in is locked (`lock_households`), so that no other writer can
    merge into them until this transaction ends.

    A member is read where it is now, which is not always the household a submission names (a
    visit may list a member of another household, or it moved since): that household is locked
    and everything read again, until no loaded member is in a household left unlocked. On
    PostgreSQL the members' households are looked up and locked first, so this is rare; SQLite's
    write transaction already excludes every other writer."""
    household_ids = set(household_ids)
    if _locks_households(session):
        household_ids |= member_households(session, member_ids)
    lock_households(session, household_ids)
    while True:
        workspace = Workspace(session, codec)
        workspace.load(household_ids, member_ids, written)
        elsewhere = {
            state.household_id
            for state in workspace.entities.values()
            if state.household_id is not None and state.household_id not in household_ids
        }
        if not elsewhere:
            return workspace
        lock_households(session, elsewhere)
        household_ids |= elsewhere


@dataclass(frozen=True)
class ServerWrite:
    rev: int
    clock: Hlc


def apply_server_write(
    session: Session,
    actor: Actor,
    entity_type: str,
    entity_id: uuid.UUID,
    field_name: str,
    value: Any,
    *,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> ServerWrite:
    """Write one field from the server side (a supervisor resolving a conflict, a workflow step):
    under the household lock, with a server clock stamped after the field's current one — so it
    wins over the value it replaces even if another worker saw a tablet clock running ahead — and
    logged in the change log, so tablets receive it on their next pull. Returns the new revision
    and the clock used. NotFound for an unknown entity."""
    written = apply_server_writes(
        session, actor, entity_type, {entity_id: {field_name: value}}, clock=clock, codec=codec
    )
    return written[entity_id]


def apply_server_writes(
    session: Session,
    actor: Actor,
    entity_type: str,
    values: Mapping[uuid.UUID, Mapping[str, Any]],
    *,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> dict[uuid.UUID, ServerWrite]:
    """`apply_server_write` for several fields of several entities of one type at once (a case
    step writing status, type and causes; a push opening cases for many households): one
    workspace, one lock round, one flush, one revision per entity. NotFound for an unknown one."""
    is_household = entity_type == "household"
    ids = set(values)
    names = sorted({name for fields in values.values() for name in fields})
    workspace = load_locked(
        session,
        codec,
        ids if is_household else set(),
        set() if is_household else ids,
        {entity_type: names},
    )
    states = {}
    for entity_id in values:
        state = workspace.find(entity_type, entity_id)
        if state is None:
            raise NotFound(f"no {entity_type} {entity_id}")
        states[entity_id] = state
        for name in values[entity_id]:
            current = state.fields.get(name)
            if current is not None and current.clock is not None:
                clock.observe(current.clock)
    origin = Origin(
        origin=f"user:{actor.user_id}", submission_id=None, device_id=None, user_id=actor.user_id
    )
    written: dict[uuid.UUID, ServerWrite] = {}
    for entity_id, fields in values.items():
        state = states[entity_id]
        stamp = clock.now()
        # The writer has seen the entity as it is now: replacing its values is no new conflict.
        outcome = workspace.preview(state, fields, stamp, state.rev, origin)
        workspace.commit(state, outcome, stamp, origin)
        written[entity_id] = ServerWrite(outcome.rev, stamp)
    workspace.flush(transaction_marker(session))
    return written
