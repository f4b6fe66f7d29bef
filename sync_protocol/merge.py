"""Field-level merge of register writes: last-writer-wins by hybrid logical clock, and conflicts.

Pure functions over plain values: never touches a database, never reads a clock, never imports
Flask. The server calls them inside its transaction and stores what they return.

What is order-independent, and what is not
-------------------------------------------
Each field is a last-writer-wins register, a join-semilattice ordered by the write's HLC (ties on
an identical clock, which only a misbehaving device produces, are broken by the value's canonical
JSON text). So, for any set of writes to a field:

* the final value, clock and origin are those of the greatest write, whatever the arrival order,
  and applying a write again (anywhere in the sequence) never changes the field's state;
* a write whose clock equals the stored clock is the same write replayed: a no-op, no conflict.

Which *pairs* end up in conflict records does depend on arrival order (three concurrent writes
A < B < C give "B beat A, C beat B" in one order and "C beat B, C beat A" in another), and so do
revision numbers. What holds in every order is that nothing is lost (see `merge_field`): every
write's value is the final value, or the loser of a recorded conflict, or was knowingly replaced by
a writer that had seen it. Re-sent submissions are filtered by `instance_id` before they reach
this module; a stale replay re-merged here leaves the state alone but may report a conflict again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Literal, NamedTuple, cast

from sync_protocol.clock import Hlc

Side = Literal["incoming", "current"]
# What json.dumps(text, ensure_ascii=False) writes for a string, without building an encoder per
# call (canonical texts are computed for every field of every submission).
_json_string: Callable[[str], str] = json.encoder.encode_basestring
_MAX_PLAIN_DIGITS = 4000


class MergeInputError(ValueError):
    """The inputs to a merge contradict each other (e.g. a base revision from the future)."""


class FieldState(NamedTuple):
    """A register field as stored.

    `clock` is the HLC of the write that set it (None for values that predate clocks, e.g. a bulk
    import; they lose to any clocked write). `changed_rev` is the entity revision at which this
    state was stored. `origin` identifies the *writer* (see `IncomingWrite.origin`).
    """

    value: object
    clock: Hlc | None
    changed_rev: int
    origin: str | None


class IncomingWrite(NamedTuple):
    """One field value a submission (or a server-side edit) wants to store.

    `base_rev` is the entity revision the writer had seen (the submission's `base_revs` entry);
    None means it never saw the entity. `origin` identifies the writer: the device id for tablet
    writes, a stable id such as `user:<id>` for server-side edits. It must not be the submission
    id: a device's later submission was made knowing its earlier ones, so two writes from the same
    origin are never concurrent (the later clock is the later intention).
    """

    value: object
    clock: Hlc
    base_rev: int | None
    origin: str


class WrittenValue(NamedTuple):
    """A value together with the clock and origin of the write that produced it."""

    value: object
    clock: Hlc | None
    origin: str | None


@dataclass(frozen=True)
class ConflictRecord:
    """Two concurrent writes of one field with different values; `winner` says which side won.

    Field-agnostic: the caller knows the entity and field. `incoming`/`current` give the same two
    values from the point of view of the submission being merged (the wire's `value` and
    `other_value`; `winner` "incoming" is the wire's "this", "current" is "other").
    """

    winning: WrittenValue
    losing: WrittenValue
    winner: Side

    @property
    def incoming(self) -> WrittenValue:
        return self.winning if self.winner == "incoming" else self.losing

    @property
    def current(self) -> WrittenValue:
        return self.losing if self.winner == "incoming" else self.winning


class FieldMergeOutcome(NamedTuple):
    """The result of `merge_field`.

    `state` is the field's new state (the old one when the write lost). `changed` is true when the
    stored state changed (the entity gets a new revision); `value_changed` when the value itself
    did (a later write of an equal value only moves the clock and origin).
    """

    state: FieldState
    changed: bool
    value_changed: bool
    conflict: ConflictRecord | None


@dataclass(frozen=True)
class EntityMergeOutcome:
    """The result of `merge_entity`: every field's state after the merge and what happened.

    `fields` holds all fields (untouched ones too: a read-only view of the changed states over the
    current ones, so an entity with many fields costs nothing for the ones a write leaves alone);
    `changed_fields` the names whose state changed, sorted, and `value_changed_fields` those of
    them whose value changed too (the others only took a later clock); `rev` is the entity's
    revision after the merge; `conflicts` (field, record) pairs sorted by field name.
    """

    fields: Mapping[str, FieldState]
    rev: int
    changed_fields: list[str]
    conflicts: list[tuple[str, ConflictRecord]]
    value_changed_fields: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changed_fields)


def canonical_value(value: object) -> str:
    """The canonical JSON text of a register value, used for equality and tie-breaking.

    Numbers are compared as decimals (`5800`, `5800.0` and `Decimal("5800.00")` are one value;
    `True` is not `1`), objects by sorted keys, lists in the order given (the binder sorts
    select_multiple answers). Iterative, so any nesting depth is safe. Raises `TypeError` for
    anything that is not a JSON value.
    """
    out: list[str] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item.text)
        elif item is None:
            out.append("null")
        elif item is True or item is False:
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(_json_string(item))
        elif isinstance(item, int | float | Decimal):
            out.append(_canonical_number(item))
        elif isinstance(item, list | tuple):
            stack.append(_Token("]"))
            for index in reversed(range(len(item))):
                stack.append(item[index])
                if index:
                    stack.append(_Token(","))
            stack.append(_Token("["))
        elif isinstance(item, Mapping):
            if not all(isinstance(key, str) for key in item):
                raise TypeError("register object keys must be strings")
            keys = sorted(item)
            stack.append(_Token("}"))
            for index in reversed(range(len(keys))):
                stack.append(item[keys[index]])
                stack.append(_Token(_json_string(keys[index]) + ":"))
                if index:
                    stack.append(_Token(","))
            stack.append(_Token("{"))
        else:
            raise TypeError(f"{type(item).__name__} is not a JSON value")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str


# Writes what `canonical_value` writes for every value `_spelled_canonically` accepts: the same
# string escapes (encode_basestring), keys sorted by code point, the same separators, ints and
# floats by their repr. NaN and infinities raise instead (canonical spells them `nan`/`inf`).
_CANONICAL_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)
_STR_ONLY = frozenset({str})


def canonical_document(value: object) -> str:
    """Exactly `canonical_value(value)`, with the same errors, but several times cheaper for a
    document of many values (a whole submission): when the standard library's C JSON encoder
    writes the canonical text, that text is returned, otherwise `canonical_value` computes it.

    The encoder writes the canonical text when the value holds only exact `dict` (with `str`
    keys), `list`, `tuple`, `str`, `int`, `bool`, `None`, and floats whose repr is their canonical
    decimal (finite, not integral, no exponent: `22.8156`, but not `5800.0`, `-0.0` or `1e-05`).
    Anything else (such floats, `Decimal`s, subclasses, non-JSON values) goes the pure-Python
    way. For a single scalar `canonical_value` is cheaper.
    """
    try:
        # The C encoder first: it stops at cycles, NaN, ints too long to print and nesting too
        # deep for it, and at non-JSON types, before the type walk below ever sees them.
        text = _CANONICAL_ENCODER.encode(value)
    except Exception:
        # Whatever the encoder refuses (or a subclass's own method raising inside it):
        # canonical_value decides, so the text or the error is always its own.
        return canonical_value(value)
    return text if _spelled_canonically(value) else canonical_value(value)


def _spelled_canonically(value: object) -> bool:
    # Whether json.dumps(value, sort_keys=True, ...) equals canonical_value(value); see
    # canonical_document. Exact types only: a subclass may change how either side sees it.
    stack: list[object] = [[value]]  # the root as the only child of a list, so it is checked too
    while stack:
        item = stack.pop()
        children: Iterable[object]
        if type(item) is dict:
            # json.dumps would write 1, True or None keys as text; canonical_value refuses them.
            if not _STR_ONLY.issuperset(map(type, item)):
                return False
            children = item.values()
        else:
            children = cast(list[object] | tuple[object, ...], item)
        for child in children:
            kind = type(child)
            if kind is str or kind is int or kind is bool or child is None:
                continue
            if kind is dict or kind is list or kind is tuple:
                stack.append(child)
            elif kind is float:
                number = cast(float, child)
                # repr is canonical_value's decimal unless it adds ".0" or an exponent.
                if not math.isfinite(number) or number.is_integer() or "e" in repr(number):
                    return False
            else:
                return False
    return True


def _canonical_number(number: int | float | Decimal) -> str:
    if isinstance(number, int):
        return str(number)
    if isinstance(number, float):
        if math.isnan(number) or math.isinf(number):
            return repr(number)
        number = Decimal(repr(number))  # repr is the shortest text that round-trips
    if number.is_nan() or number.is_infinite():
        return {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(str(number), "nan")
    if number == number.to_integral_value():
        if number.adjusted() < _MAX_PLAIN_DIGITS:
            return str(int(number))
        # Too long to spell out (and past int->str limits): exact normalized scientific form.
        return str(number.normalize(Context(prec=len(number.as_tuple().digits))))
    text = format(number, "f").rstrip("0")
    return "0" + text if text.startswith(".") else text.replace("-.", "-0.")


# Types whose Python equality is already canonical equality when both sides share the type.
_PLAIN_TYPES = (str, int, bool, type(None))


def values_equal(a: object, b: object) -> bool:
    """Whether two register values are the same value (see `canonical_value`)."""
    if a is b:
        return True
    if type(a) is type(b) and type(a) in _PLAIN_TYPES:
        return a == b
    return canonical_value(a) == canonical_value(b)


def _precedes(clock_a: Hlc | None, value_a: object, clock_b: Hlc | None, value_b: object) -> bool:
    """The total order used to pick a winner: no clock < any clock, then by clock; equal clocks
    (a misbehaving device reusing a stamp) fall back to the canonical value, so the choice never
    depends on order. Canonical texts are only computed for that tie."""
    if clock_a != clock_b:
        if clock_a is None or clock_b is None:
            return clock_a is None
        return clock_a < clock_b
    return canonical_value(value_a) < canonical_value(value_b)


def merge_field(
    current: FieldState | None, incoming: IncomingWrite, *, next_rev: int
) -> FieldMergeOutcome:
    """Merge one write into one field.

    Winner: the greater clock (last writer wins). A field never written (`current` None) takes
    the write. A write with the stored clock and an equal value is a replay: nothing changes.

    Conflict: recorded when the values differ and the two writes are *concurrent*, that is,
    neither is known to follow the other. The later write W2 follows the earlier W1 when they
    share an origin (a writer's later clock is its later intention), or when W1 is the stored state
    and W2's writer had seen it (`W2.base_rev >= current.changed_rev`). Hence:

    * the incoming write wins and the replaced value is recorded, unless the incoming writer had
      seen it or wrote it (contract: "the field changed after base_revs by another origin");
    * the incoming write loses and is recorded, unless the stored value came from the same origin.
      A losing writer that claims to have seen the winner (base_rev at or past it) has a clock
      behind a value it saw, which HLC rules out; it is recorded rather than dropped.

    Two different values under one clock (a device reusing a stamp) are ordered by canonical value
    and always recorded. So nothing is lost: a value leaves the register only as the loser of a
    recorded conflict or by a writer that had seen it.

    `next_rev` is the entity revision a new state is stored at. Values must be JSON values
    (`TypeError` otherwise).
    """
    if current is None:
        return FieldMergeOutcome(
            state=FieldState(incoming.value, incoming.clock, next_rev, incoming.origin),
            changed=True,
            value_changed=True,
            conflict=None,
        )
    same_value = values_equal(current.value, incoming.value)
    is_collision = current.clock == incoming.clock
    if is_collision and same_value:
        return FieldMergeOutcome(current, changed=False, value_changed=False, conflict=None)

    # Two different values under one clock (a device reusing a stamp) cannot be ordered
    # causally: the canonical value decides, and the pair is always recorded.
    incoming_wins = _precedes(current.clock, current.value, incoming.clock, incoming.value)
    same_origin = current.origin is not None and current.origin == incoming.origin

    if not incoming_wins:
        conflict = None
        if (is_collision or not same_origin) and not same_value:
            conflict = ConflictRecord(_written(current), _written(incoming), winner="current")
        return FieldMergeOutcome(current, changed=False, value_changed=False, conflict=conflict)

    had_seen_current = incoming.base_rev is not None and incoming.base_rev >= current.changed_rev
    conflict = None
    if (is_collision or not (same_origin or had_seen_current)) and not same_value:
        conflict = ConflictRecord(_written(incoming), _written(current), winner="incoming")
    return FieldMergeOutcome(
        state=FieldState(incoming.value, incoming.clock, next_rev, incoming.origin),
        changed=True,
        value_changed=not same_value,
        conflict=conflict,
    )


def _written(write: FieldState | IncomingWrite) -> WrittenValue:
    return WrittenValue(write.value, write.clock, write.origin)


class FieldOverlay(Mapping[str, FieldState]):
    """Every field of an entity after a merge: the changed states over the ones they replace.
    Reads through to `base` for the rest (never copies it); an overlay of an overlay is flattened,
    so an entity merged many times in one unit of work stays one lookup deep."""

    __slots__ = ("base", "changed")
    base: Mapping[str, FieldState]
    changed: Mapping[str, FieldState]

    def __init__(self, base: Mapping[str, FieldState], changed: Mapping[str, FieldState]) -> None:
        if isinstance(base, FieldOverlay):
            changed = {**base.changed, **changed}
            base = base.base
        self.base = base
        self.changed = changed

    def __getitem__(self, name: str) -> FieldState:
        state = self.changed.get(name)
        return self.base[name] if state is None else state

    def get(self, name: str, default: object = None) -> FieldState | object:  # type: ignore[override]
        state = self.changed.get(name)
        return self.base.get(name, default) if state is None else state

    def __contains__(self, name: object) -> bool:
        return name in self.changed or name in self.base

    def __iter__(self) -> Iterator[str]:
        # The stored fields in their order, then the new ones in the order they were written.
        yield from self.base
        yield from (name for name in self.changed if name not in self.base)

    def __len__(self) -> int:
        return len(self.base) + sum(1 for name in self.changed if name not in self.base)


def merge_entity(
    current_fields: Mapping[str, FieldState],
    writes: Mapping[str, IncomingWrite],
    current_rev: int,
) -> EntityMergeOutcome:
    """Merge one submission's writes into one entity (`current_rev` 0: the entity is new).

    Fields are merged in name order with `next_rev = current_rev + 1`; the entity's revision
    becomes `current_rev + 1` only if some field's state changed, otherwise stays `current_rev`.
    The outcome is deterministic, and the final value and clock of every field do not depend on
    the order in which submissions are merged (each field is an independent LWW register).

    Raises `MergeInputError` when a write's `base_rev` is beyond `current_rev` (the writer claims
    to have seen a revision that does not exist; trusting it would hide conflicts) or negative.
    """
    if current_rev < 0:
        raise MergeInputError(f"entity revision must not be negative, got {current_rev}")
    for name in sorted(writes):
        base_rev = writes[name].base_rev
        if base_rev is not None and not 0 <= base_rev <= current_rev:
            raise MergeInputError(
                f"base revision {base_rev} for field {name!r} is outside 0..{current_rev}"
            )
    next_rev = current_rev + 1
    changed: dict[str, FieldState] = {}
    changed_fields: list[str] = []
    value_changed_fields: list[str] = []
    conflicts: list[tuple[str, ConflictRecord]] = []
    for name in sorted(writes):
        outcome = merge_field(current_fields.get(name), writes[name], next_rev=next_rev)
        if outcome.changed:
            changed[name] = outcome.state
            changed_fields.append(name)
            if outcome.value_changed:
                value_changed_fields.append(name)
        if outcome.conflict is not None:
            conflicts.append((name, outcome.conflict))
    return EntityMergeOutcome(
        fields=FieldOverlay(current_fields, changed) if changed else current_fields,
        rev=next_rev if changed_fields else current_rev,
        changed_fields=changed_fields,
        conflicts=conflicts,
        value_changed_fields=value_changed_fields,
    )
