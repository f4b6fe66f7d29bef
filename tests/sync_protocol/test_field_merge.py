"""Field-level merge: last writer wins by HLC, concurrent writes become conflicts, nothing is lost.

The property tests pin down what the module docstring of `sync_protocol.merge` promises: the
final value and clock of a field do not depend on arrival order; replays never change state;
every submitted value is final, recorded as a conflict's loser, or knowingly superseded.
"""

from __future__ import annotations

import datetime
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_protocol.clock import Hlc
from sync_protocol.merge import (
    ConflictRecord,
    FieldMergeOutcome,
    FieldState,
    IncomingWrite,
    MergeInputError,
    canonical_value,
    merge_entity,
    merge_field,
    values_equal,
)

T = 1_763_597_700_000
TABLET_A = "device-a"
TABLET_B = "device-b"


def clock(ms_offset: int, counter: int = 0, node: str = TABLET_A) -> Hlc:
    return Hlc(T + ms_offset, counter, node)


def stored(value: object, at: Hlc | None, rev: int, origin: str | None = TABLET_A) -> FieldState:
    return FieldState(value=value, clock=at, changed_rev=rev, origin=origin)


def write(value: object, at: Hlc, base_rev: int | None, origin: str = TABLET_B) -> IncomingWrite:
    return IncomingWrite(value=value, clock=at, base_rev=base_rev, origin=origin)


# --- the rules, one by one --------------------------------------------------------------------


def test_first_write_to_a_field_is_stored_at_the_next_revision() -> None:
    outcome = merge_field(None, write(5800, clock(0), None), next_rev=1)
    assert outcome.state == stored(5800, clock(0), 1, TABLET_B)
    assert outcome.changed and outcome.value_changed
    assert outcome.conflict is None


def test_later_clock_wins_over_the_stored_value() -> None:
    current = stored(6400, clock(0), 3)
    outcome = merge_field(current, write(5800, clock(10), 3), next_rev=4)
    assert outcome.state == stored(5800, clock(10), 4, TABLET_B)
    assert outcome.changed


def test_earlier_clock_loses_and_leaves_the_field_untouched() -> None:
    current = stored(6400, clock(10), 3, TABLET_B)
    outcome = merge_field(current, write(5800, clock(0), 3, TABLET_B), next_rev=4)
    assert outcome.state is current
    assert not outcome.changed


def test_replaying_the_stored_write_is_a_no_op_without_conflict() -> None:
    current = stored(5800, clock(10), 4, TABLET_B)
    outcome = merge_field(current, write(5800, clock(10), 0, TABLET_B), next_rev=5)
    assert outcome == FieldMergeOutcome(current, changed=False, value_changed=False, conflict=None)


def test_concurrent_write_that_wins_records_the_value_it_replaced() -> None:
    # Tablet B saw revision 7; tablet A changed the field at revision 8; B's clock is later.
    current = stored(6400, clock(0), 8, TABLET_A)
    outcome = merge_field(current, write(5800, clock(10), 7, TABLET_B), next_rev=9)
    assert outcome.state.value == 5800
    assert outcome.conflict is not None
    assert outcome.conflict.winner == "incoming"
    assert outcome.conflict.losing.value == 6400
    assert outcome.conflict.losing.clock == clock(0)
    assert outcome.conflict.losing.origin == TABLET_A
    assert outcome.conflict.winning.origin == TABLET_B


def test_concurrent_write_that_loses_is_recorded_as_the_loser() -> None:
    current = stored(6400, clock(10), 8, TABLET_A)
    outcome = merge_field(current, write(5800, clock(0), 7, TABLET_B), next_rev=9)
    assert outcome.state is current
    assert outcome.conflict is not None
    assert outcome.conflict.winner == "current"
    assert (outcome.conflict.incoming.value, outcome.conflict.current.value) == (5800, 6400)


def test_conflict_record_gives_both_sides_from_the_submissions_point_of_view() -> None:
    current = stored(6400, clock(0), 8, TABLET_A)
    conflict = merge_field(current, write(5800, clock(10), 7), next_rev=9).conflict
    assert conflict is not None
    assert conflict.incoming.value == 5800 and conflict.incoming.origin == TABLET_B
    assert conflict.current.value == 6400 and conflict.current.origin == TABLET_A


def test_writer_that_had_seen_the_stored_value_replaces_it_without_conflict() -> None:
    current = stored(6400, clock(0), 8, TABLET_A)
    outcome = merge_field(current, write(5800, clock(10), 8, TABLET_B), next_rev=9)
    assert outcome.state.value == 5800
    assert outcome.conflict is None


def test_write_from_a_device_that_never_saw_the_entity_is_concurrent_with_any_value() -> None:
    current = stored(6400, clock(0), 1, TABLET_A)
    outcome = merge_field(current, write(5800, clock(10), None, TABLET_B), next_rev=2)
    assert outcome.conflict is not None


def test_writes_from_the_same_origin_never_conflict() -> None:
    # A tablet edits a household twice while offline: its later submission supersedes the first,
    # in whichever order they arrive.
    earlier, later = write(1, clock(0), 2, TABLET_A), write(2, clock(5), 2, TABLET_A)
    current = stored(0, clock(-5, node="server"), 2, "user:7")
    first = merge_field(current, earlier, next_rev=3).state
    assert merge_field(first, later, next_rev=4).conflict is None
    other_first = merge_field(current, later, next_rev=3).state
    outcome = merge_field(other_first, earlier, next_rev=4)
    assert outcome.conflict is None and outcome.state.value == 2


def test_concurrent_writes_of_equal_values_do_not_conflict() -> None:
    current = stored(5800, clock(0), 8, TABLET_A)
    outcome = merge_field(current, write(5800.0, clock(10), 1), next_rev=9)
    assert outcome.conflict is None


def test_later_write_of_an_equal_value_moves_the_clock_but_not_the_value() -> None:
    current = stored(5800, clock(0), 8, TABLET_A)
    outcome = merge_field(current, write(5800.0, clock(10), 8), next_rev=9)
    assert outcome.changed and not outcome.value_changed
    assert outcome.state.clock == clock(10)
    assert outcome.state.changed_rev == 9


def test_two_values_under_one_clock_are_ordered_by_value_and_always_recorded() -> None:
    # Only a misbehaving device reuses a stamp; the choice must still not depend on order.
    stamp = clock(0)
    a, b = write("a", stamp, 5, TABLET_A), write("b", stamp, 5, TABLET_A)
    state_a = merge_field(None, a, next_rev=1).state
    state_b = merge_field(None, b, next_rev=1).state
    b_after_a = merge_field(state_a, b, next_rev=2)
    a_after_b = merge_field(state_b, a, next_rev=2)
    assert b_after_a.state.value == a_after_b.state.value == "b"
    assert b_after_a.conflict is not None and a_after_b.conflict is not None
    assert b_after_a.conflict.losing.value == a_after_b.conflict.losing.value == "a"


def test_a_value_without_clock_loses_to_any_clocked_write() -> None:
    current = stored("imported", None, 1, None)
    outcome = merge_field(current, write("visited", Hlc(0, 0, "z"), None), next_rev=2)
    assert outcome.state.value == "visited"
    assert outcome.conflict is not None and outcome.conflict.losing.value == "imported"


def test_a_loser_that_claims_to_have_seen_the_winner_is_still_recorded() -> None:
    # Its clock is behind a value it saw, which correct HLC clients cannot produce; recording it
    # is the safe choice: the value is not dropped silently.
    current = stored(6400, clock(10), 8, TABLET_A)
    outcome = merge_field(current, write(5800, clock(0), 8, TABLET_B), next_rev=9)
    assert outcome.conflict is not None and outcome.conflict.winner == "current"


def test_a_stale_replay_never_changes_state_but_may_report_its_loss_again() -> None:
    # Why re-sent submissions are filtered by instance_id before merging: a write replaced by a
    # writer that had seen it looks, when replayed, like a concurrent late arrival.
    first = write(1, clock(0), 0, TABLET_A)
    second = write(2, clock(5), 1, TABLET_B)  # B saw revision 1, i.e. A's value
    after_first = merge_field(None, first, next_rev=1).state
    after_second = merge_field(after_first, second, next_rev=2)
    assert after_second.conflict is None
    replay = merge_field(after_second.state, first, next_rev=3)
    assert not replay.changed and replay.state is after_second.state
    assert replay.conflict is not None and replay.conflict.losing.clock == first.clock


# --- value equality ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (5800, 5800.0),
        (5800, Decimal("5800.00")),
        (0.1, Decimal("0.10")),
        (-0.0, 0),
        ({"a": 1, "b": [1, 2]}, {"b": [1.0, 2], "a": 1}),
        (["x", "y"], ("x", "y")),
        (None, None),
    ],
)
def test_values_that_mean_the_same_are_equal(a: object, b: object) -> None:
    assert values_equal(a, b)
    assert canonical_value(a) == canonical_value(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (True, 1),
        (False, 0),
        (["x", "y"], ["y", "x"]),  # lists compare as given: the binder sorts select_multiple
        ("5800", 5800),
        (None, ""),
        (0.1, 0.2),
        (2**53 + 1, float(2**53 + 1)),
        ({"a": 1}, {"a": 1, "b": None}),
    ],
)
def test_values_that_differ_are_not_equal(a: object, b: object) -> None:
    assert not values_equal(a, b)


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text()


@given(
    st.recursive(
        _JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
)
def test_canonical_text_is_compact_sorted_json(value: object) -> None:
    # Without floats, canonical text is exactly the standard library's sorted, compact JSON.
    expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert canonical_value(value) == expected


@given(_JSON_SCALARS, _JSON_SCALARS)
def test_equality_shortcut_agrees_with_canonical_texts(a: object, b: object) -> None:
    assert values_equal(a, b) == (canonical_value(a) == canonical_value(b))


def test_only_json_values_can_be_merged() -> None:
    with pytest.raises(TypeError, match="date"):
        canonical_value(datetime.date(2026, 1, 1))
    with pytest.raises(TypeError, match="keys"):
        canonical_value({1: "x"})


# --- entities ---------------------------------------------------------------------------------


def test_entity_revision_advances_once_when_any_field_changes() -> None:
    fields = {"name": stored("王芳", clock(0), 3), "sex": stored("female", clock(0), 2)}
    outcome = merge_entity(
        fields,
        {"name": write("王 芳", clock(10), 3), "sex": write("female", clock(0), 3, TABLET_A)},
        current_rev=3,
    )
    assert outcome.rev == 4
    assert outcome.changed_fields == ["name"]
    assert outcome.fields["name"].changed_rev == 4
    assert outcome.fields["sex"] is fields["sex"]


def test_entity_revision_stays_when_nothing_changes() -> None:
    fields = {"name": stored("王芳", clock(10), 3)}
    outcome = merge_entity(fields, {"name": write("李四", clock(0), 3)}, current_rev=3)
    assert outcome.rev == 3 and not outcome.changed
    assert outcome.fields == fields
    assert [name for name, _ in outcome.conflicts] == ["name"]


def test_new_entity_starts_at_revision_one() -> None:
    outcome = merge_entity({}, {"b": write(1, clock(0), None), "a": write(2, clock(0), None)}, 0)
    assert outcome.rev == 1
    assert outcome.changed_fields == ["a", "b"]


def test_entity_conflicts_are_listed_in_field_name_order() -> None:
    fields = {name: stored(0, clock(0), 5) for name in ("c", "a", "b")}
    writes = {name: write(1, clock(10), 1) for name in ("c", "b", "a")}
    outcome = merge_entity(fields, writes, current_rev=5)
    assert [name for name, _ in outcome.conflicts] == ["a", "b", "c"]


@pytest.mark.parametrize("base_rev", [6, -1])
def test_a_base_revision_the_entity_never_had_is_refused(base_rev: int) -> None:
    with pytest.raises(MergeInputError, match="base revision"):
        merge_entity({}, {"name": write("x", clock(0), base_rev)}, current_rev=5)


# --- properties: order independence, replay, nothing lost ------------------------------------

values = st.sampled_from([None, 0, 1, 1.0, 2, "x", "y", True, [1, 2], [2, 1], {"k": 1}])
origins = st.sampled_from([TABLET_A, TABLET_B, "user:7"])
field_clocks = st.builds(
    Hlc,
    millis=st.integers(T, T + 2),
    counter=st.integers(0, 2),
    node=st.sampled_from([TABLET_A, TABLET_B, "server"]),
)
writes_to_one_field = st.lists(
    st.builds(
        IncomingWrite,
        value=values,
        clock=field_clocks,
        base_rev=st.one_of(st.none(), st.integers(0, 8)),
        origin=origins,
    ),
    min_size=1,
    max_size=7,
    unique_by=lambda w: w.clock,  # a clock identifies one write
)
initial_states = st.one_of(
    st.none(),
    st.builds(
        FieldState,
        value=values,
        clock=st.one_of(st.none(), st.just(Hlc(T - 1, 0, "server"))),
        changed_rev=st.just(0),
        origin=st.one_of(st.none(), origins),
    ),
)


@dataclass
class Step:
    write: IncomingWrite
    before: FieldState | None
    outcome: FieldMergeOutcome


def apply_in_order(
    initial: FieldState | None, writes: Sequence[IncomingWrite]
) -> tuple[FieldState | None, list[Step]]:
    """Merge writes one by one as the server would, numbering revisions as they change."""
    state, rev, steps = initial, 0, []
    for incoming in writes:
        outcome = merge_field(state, incoming, next_rev=rev + 1)
        if outcome.changed:
            rev += 1
        steps.append(Step(incoming, state, outcome))
        state = outcome.state
    return state, steps


def summary(state: FieldState | None) -> tuple[str, Hlc | None, str | None] | None:
    return None if state is None else (canonical_value(state.value), state.clock, state.origin)


def conflicts_of(steps: list[Step]) -> list[ConflictRecord]:
    return [step.outcome.conflict for step in steps if step.outcome.conflict is not None]


@given(initial_states, writes_to_one_field, st.randoms(use_true_random=False))
def test_every_arrival_order_gives_the_same_final_value_clock_and_origin(
    initial: FieldState | None, writes: list[IncomingWrite], rnd: random.Random
) -> None:
    shuffled = list(writes)
    rnd.shuffle(shuffled)
    final, _ = apply_in_order(initial, writes)
    final_shuffled, _ = apply_in_order(initial, shuffled)
    assert summary(final) == summary(final_shuffled)


@given(initial_states, writes_to_one_field)
def test_final_value_is_the_value_of_the_write_with_the_greatest_clock(
    initial: FieldState | None, writes: list[IncomingWrite]
) -> None:
    final, _ = apply_in_order(initial, writes)
    latest = max(writes, key=lambda w: w.clock)
    assert final is not None
    assert final.clock == latest.clock and final.origin == latest.origin
    assert final.value == latest.value


@given(initial_states, writes_to_one_field, st.data())
def test_applying_a_write_again_anywhere_never_changes_the_field(
    initial: FieldState | None, writes: list[IncomingWrite], data: st.DataObject
) -> None:
    position = data.draw(st.integers(1, len(writes)), label="replay after this many writes")
    replayed = data.draw(st.sampled_from(writes[:position]), label="replayed write")
    state_before, _ = apply_in_order(initial, writes[:position])
    assert state_before is not None
    replay = merge_field(state_before, replayed, next_rev=10_000)
    assert not replay.changed
    assert replay.state == state_before
    if replay.conflict is not None:
        # It can only re-report the replayed write itself as the loser, never a new loss.
        assert replay.conflict.winner == "current"
        assert replay.conflict.losing.clock == replayed.clock
    with_replay, _ = apply_in_order(initial, [*writes[:position], replayed, *writes[position:]])
    without_replay, _ = apply_in_order(initial, writes)
    assert summary(with_replay) == summary(without_replay)


@given(initial_states, writes_to_one_field)
def test_replaying_the_write_that_is_stored_reports_no_conflict(
    initial: FieldState | None, writes: list[IncomingWrite]
) -> None:
    final, _ = apply_in_order(initial, writes)
    latest = max(writes, key=lambda w: w.clock)
    replay = merge_field(final, latest, next_rev=10_000)
    assert replay.conflict is None and not replay.changed
    assert final is not None and replay.state == final


@given(initial_states, writes_to_one_field, st.randoms(use_true_random=False))
def test_nothing_is_lost_in_any_arrival_order(
    initial: FieldState | None, writes: list[IncomingWrite], rnd: random.Random
) -> None:
    """Every value is final, or a recorded loser, or knowingly superseded by a later write.

    Knowingly superseded: a write with a later clock came from the value's own writer (a writer's
    later clock is its later intention), or the field held the value in some state S and a write
    X with a later clock arrived after S was stored, from a writer that had seen S: S's own
    origin, or `X.base_rev >= S.changed_rev`.
    """
    order = list(writes)
    rnd.shuffle(order)
    final, steps = apply_in_order(initial, order)
    assert final is not None
    lost_values = [c.losing.value for c in conflicts_of(steps)]
    held = [(i, s.outcome.state) for i, s in enumerate(steps) if s.outcome.changed]
    if initial is not None:
        held.append((-1, initial))

    def superseded_by_own_writer(at: Hlc | None, origin: str | None) -> bool:
        return any(x.origin == origin and (at is None or x.clock > at) for x in order)

    def superseded_by_a_writer_who_saw_it(value: object) -> bool:
        return any(
            values_equal(state.value, value)
            and arrival > stored_at
            and (state.clock is None or x.clock > state.clock)
            and (
                x.origin == state.origin
                or (x.base_rev is not None and x.base_rev >= state.changed_rev)
            )
            for stored_at, state in held
            for arrival, x in enumerate(order)
        )

    candidates: list[tuple[object, Hlc | None, str | None]] = [
        (w.value, w.clock, w.origin) for w in writes
    ]
    if initial is not None:
        candidates.append((initial.value, initial.clock, initial.origin))
    for value, at, origin in candidates:
        assert (
            values_equal(value, final.value)
            or any(values_equal(value, lost) for lost in lost_values)
            or superseded_by_own_writer(at, origin)
            or superseded_by_a_writer_who_saw_it(value)
        ), f"value {value!r} written at {at} by {origin} was lost"


@given(initial_states, writes_to_one_field, st.randoms(use_true_random=False))
def test_each_write_is_recorded_as_a_loser_at_most_once(
    initial: FieldState | None, writes: list[IncomingWrite], rnd: random.Random
) -> None:
    # So the server may key conflicts by (entity, id, field, losing clock).
    order = list(writes)
    rnd.shuffle(order)
    _, steps = apply_in_order(initial, order)
    losing_clocks = [c.losing.clock for c in conflicts_of(steps)]
    assert len(losing_clocks) == len(set(losing_clocks))


@given(initial_states, writes_to_one_field, st.randoms(use_true_random=False))
def test_a_conflict_is_only_recorded_between_different_values(
    initial: FieldState | None, writes: list[IncomingWrite], rnd: random.Random
) -> None:
    order = list(writes)
    rnd.shuffle(order)
    for conflict in conflicts_of(apply_in_order(initial, order)[1]):
        assert not values_equal(conflict.winning.value, conflict.losing.value)
        assert conflict.losing.clock is None or (
            conflict.winning.clock is not None and conflict.losing.clock <= conflict.winning.clock
        )


ENTITY_REV = 5
entity_fields = st.sampled_from(["name", "sex", "insured"])
submissions = st.lists(
    st.dictionaries(
        entity_fields,
        st.builds(
            IncomingWrite,
            value=values,
            clock=field_clocks,
            base_rev=st.one_of(st.none(), st.integers(0, ENTITY_REV)),
            origin=origins,
        ),
        min_size=1,
    ),
    min_size=1,
    max_size=5,
)


@given(submissions, st.randoms(use_true_random=False))
def test_multi_field_submissions_commute(
    subs: list[dict[str, IncomingWrite]], rnd: random.Random
) -> None:
    # One submission stamps all its fields with one clock; distinct submissions, distinct clocks.
    stamped = [
        {
            name: IncomingWrite(w.value, Hlc(T + i, 0, TABLET_A), w.base_rev, w.origin)
            for name, w in sub.items()
        }
        for i, sub in enumerate(subs)
    ]
    start = {"name": FieldState("初始", None, ENTITY_REV, None)}

    def merge_all(order: list[dict[str, IncomingWrite]]) -> tuple[dict[str, object], int]:
        fields: Mapping[str, FieldState] = dict(start)
        rev = ENTITY_REV
        for sub in order:
            outcome = merge_entity(fields, sub, rev)
            assert outcome.rev == (rev + 1 if outcome.changed else rev)
            fields, rev = outcome.fields, outcome.rev
        return {name: summary(state) for name, state in fields.items()}, rev

    shuffled = list(stamped)
    rnd.shuffle(shuffled)
    (in_order, rev_in_order), (out_of_order, rev_shuffled) = merge_all(stamped), merge_all(shuffled)
    assert in_order == out_of_order
    assert ENTITY_REV < rev_in_order <= ENTITY_REV + len(subs)
    assert ENTITY_REV < rev_shuffled <= ENTITY_REV + len(subs)
