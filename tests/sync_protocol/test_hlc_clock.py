"""The hybrid logical clock: wire format, total order, send/receive rules, overflow, restart."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_protocol.clock import (
    DEFAULT_MAX_CLOCK_SKEW_MS,
    MAX_COUNTER,
    MAX_MILLIS,
    ClockFormatError,
    Hlc,
    HybridClock,
    is_too_far_ahead,
)

DEVICE = "8f1c0c7e-1111-4222-8333-444455556666"
NOW_MS = 1_763_795_400_123

nodes = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
)
stamps = st.builds(
    Hlc,
    millis=st.integers(0, MAX_MILLIS),
    counter=st.integers(0, MAX_COUNTER),
    node=nodes,
)
# Few distinct values, so equal millis and equal counters are common.
close_stamps = st.builds(
    Hlc,
    millis=st.integers(NOW_MS, NOW_MS + 3),
    counter=st.sampled_from([0, 1, MAX_COUNTER - 1, MAX_COUNTER]),
    node=st.sampled_from(["a", "b", DEVICE, "server"]),
)
physical_times = st.one_of(
    st.integers(NOW_MS - 5, NOW_MS + 5), st.integers(-(10**6), 10**6), st.just(NOW_MS)
)


class ScriptedTime:
    """A physical clock that returns the values it is given, then keeps the last one."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.current = values[0] if values else NOW_MS

    def set(self, value: int) -> None:
        self.values.append(value)

    def __call__(self) -> int:
        if self.values:
            self.current = self.values.pop(0)
        return self.current


# --- wire format ------------------------------------------------------------------------------


def test_stamp_is_written_as_13_digit_millis_5_digit_counter_and_node() -> None:
    assert str(Hlc(1763795400123, 2, DEVICE)) == f"1763795400123-00002-{DEVICE}"
    assert Hlc(5, 0, "server").format() == "0000000000005-00000-server"


def test_parse_reads_the_contract_example_with_a_uuid_node_containing_dashes() -> None:
    stamp = Hlc.parse(f"1763597700000-00001-{DEVICE}")
    assert stamp == Hlc(1763597700000, 1, DEVICE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1763795400123",
        "1763795400123-00000",
        "1763795400123-00000-",
        "176379540012-00000-server",  # 12-digit millis
        "17637954001230-00000-server",  # 14-digit millis
        "1763795400123-0000-server",  # 4-digit counter
        "1763795400123-000000-server",  # 6-digit counter
        "1763795400123-0000a-server",
        "-1763795400123-00000-server",
        "1763795400123--00000-server",
        "1763795400123-00000-ser ver",
        "1763795400123-00000-server\n",
        "1763795400123-00000-sérver",
        "١٧٦٣٧٩٥٤٠٠١٢٣-00000-server",  # Arabic-Indic digits are digits, but not ASCII ones
        "1763795400123-00000-" + "n" * 65,
    ],
)
def test_parse_rejects_malformed_stamps_with_a_clock_format_error(text: str) -> None:
    with pytest.raises(ClockFormatError, match="clock"):
        Hlc.parse(text)


@pytest.mark.parametrize("value", [None, 1763795400123, b"1763795400123-00000-server", ["x"]])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(ClockFormatError, match="must be a string"):
        Hlc.parse(value)  # type: ignore[arg-type]


def test_clock_format_error_is_a_value_error() -> None:
    assert issubclass(ClockFormatError, ValueError)


@pytest.mark.parametrize(
    ("millis", "counter", "node"),
    [
        (-1, 0, "n"),
        (MAX_MILLIS + 1, 0, "n"),
        (0, -1, "n"),
        (0, MAX_COUNTER + 1, "n"),
        (True, 0, "n"),
        (0, 0, ""),
        (0, 0, "a b"),
        (0, 0, "x" * 65),
    ],
)
def test_a_stamp_outside_what_the_wire_format_carries_cannot_be_built(
    millis: int, counter: int, node: str
) -> None:
    with pytest.raises(ClockFormatError):
        Hlc(millis, counter, node)


@given(stamps)
def test_parse_is_the_inverse_of_format(stamp: Hlc) -> None:
    assert Hlc.parse(str(stamp)) == stamp


@given(stamps, stamps)
def test_order_is_millis_then_counter_then_node(a: Hlc, b: Hlc) -> None:
    as_tuples = (a.millis, a.counter, a.node) < (b.millis, b.counter, b.node)
    assert (a < b) == as_tuples
    assert (a == b) == ((a.millis, a.counter, a.node) == (b.millis, b.counter, b.node))


@given(stamps, stamps)
def test_wire_text_sorts_in_clock_order(a: Hlc, b: Hlc) -> None:
    # Fixed-width numbers make the text order the clock order: stored as text, clocks can be
    # compared and sorted by a database without parsing.
    assert (str(a) < str(b)) == (a < b)


# --- local and receive events -----------------------------------------------------------------


def test_now_follows_physical_time_when_it_advances() -> None:
    clock = HybridClock(DEVICE, ScriptedTime(NOW_MS, NOW_MS + 7))
    assert clock.now() == Hlc(NOW_MS, 0, DEVICE)
    assert clock.now() == Hlc(NOW_MS + 7, 0, DEVICE)


def test_now_bumps_the_counter_when_physical_time_stalls_or_goes_back() -> None:
    clock = HybridClock(DEVICE, ScriptedTime(NOW_MS, NOW_MS, NOW_MS - 1000))
    assert [clock.now() for _ in range(3)] == [
        Hlc(NOW_MS, 0, DEVICE),
        Hlc(NOW_MS, 1, DEVICE),
        Hlc(NOW_MS, 2, DEVICE),
    ]


@given(st.lists(physical_times, min_size=1, max_size=30))
def test_now_is_strictly_monotonic_whatever_physical_time_does(times: list[int]) -> None:
    clock = HybridClock(DEVICE, ScriptedTime(*times))
    issued = [clock.now() for _ in times]
    assert all(a < b for a, b in itertools.pairwise(issued))
    assert clock.last == issued[-1]


def test_observe_takes_a_remote_stamp_ahead_of_physical_time() -> None:
    clock = HybridClock("server", ScriptedTime(NOW_MS))
    remote = Hlc(NOW_MS + 500, 3, DEVICE)
    assert clock.observe(remote) == Hlc(NOW_MS + 500, 4, "server")
    assert clock.now() == Hlc(NOW_MS + 500, 5, "server")


def test_observe_of_an_old_remote_stamp_is_a_local_event() -> None:
    clock = HybridClock("server", ScriptedTime(NOW_MS, NOW_MS + 10))
    clock.now()
    assert clock.observe(Hlc(NOW_MS - 100, 9, DEVICE)) == Hlc(NOW_MS + 10, 0, "server")


def test_observe_with_equal_millis_continues_after_the_larger_counter() -> None:
    clock = HybridClock("server", ScriptedTime(NOW_MS))
    clock.now()  # (NOW_MS, 0)
    assert clock.observe(Hlc(NOW_MS, 41, DEVICE)) == Hlc(NOW_MS, 42, "server")


@given(
    st.lists(
        st.tuples(physical_times, st.one_of(st.none(), close_stamps, stamps)),
        min_size=1,
        max_size=30,
    )
)
def test_every_event_is_valid_and_later_than_everything_before_it(
    events: list[tuple[int, Hlc | None]],
) -> None:
    time_source = ScriptedTime()
    clock = HybridClock(DEVICE, time_source)
    previous: Hlc | None = None
    for physical, remote in events:
        time_source.set(physical)
        try:
            stamp = clock.now() if remote is None else clock.observe(remote)
        except ClockFormatError:
            # Only possible when a remote stamp sits at the very end of representable time.
            assert remote is not None and remote.millis >= MAX_MILLIS - 1
            return
        assert Hlc.parse(str(stamp)) == stamp  # always a valid wire stamp
        assert stamp.node == DEVICE
        if previous is not None:
            assert stamp > previous
        if remote is not None:
            assert (stamp.millis, stamp.counter) > (remote.millis, remote.counter)
        previous = stamp


def test_counter_overflow_moves_to_the_next_millisecond_instead_of_a_six_digit_counter() -> None:
    clock = HybridClock(DEVICE, ScriptedTime(NOW_MS), last=Hlc(NOW_MS, MAX_COUNTER, DEVICE))
    assert clock.now() == Hlc(NOW_MS + 1, 0, DEVICE)


def test_observing_a_stamp_with_a_full_counter_moves_to_the_next_millisecond() -> None:
    clock = HybridClock("server", ScriptedTime(NOW_MS))
    assert clock.observe(Hlc(NOW_MS, MAX_COUNTER, DEVICE)) == Hlc(NOW_MS + 1, 0, "server")


def test_a_restored_clock_continues_after_its_persisted_stamp_even_if_time_went_back() -> None:
    first = HybridClock(DEVICE, ScriptedTime(NOW_MS))
    first.now()
    persisted = str(first.last)
    restarted = HybridClock(DEVICE, ScriptedTime(NOW_MS - 60_000), last=Hlc.parse(persisted))
    assert restarted.now() == Hlc(NOW_MS, 1, DEVICE)


def test_a_new_clock_has_no_last_stamp() -> None:
    assert HybridClock(DEVICE, ScriptedTime(NOW_MS)).last is None


def test_a_clock_refuses_an_invalid_node() -> None:
    with pytest.raises(ClockFormatError):
        HybridClock("has space", ScriptedTime(NOW_MS))


def test_threads_sharing_a_clock_never_get_the_same_stamp() -> None:
    clock = HybridClock("server", lambda: NOW_MS)  # frozen time: every stamp needs the counter
    issued: list[Hlc] = []
    issued_lock = threading.Lock()

    def stamp_many() -> None:
        mine = [clock.now() for _ in range(2000)]
        with issued_lock:
            issued.extend(mine)

    threads = [threading.Thread(target=stamp_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(issued)) == len(issued) == 16_000
    assert clock.last == max(issued)


# --- skew -------------------------------------------------------------------------------------


def test_stamp_more_than_the_allowed_skew_ahead_is_too_far_ahead() -> None:
    limit = DEFAULT_MAX_CLOCK_SKEW_MS
    assert DEFAULT_MAX_CLOCK_SKEW_MS == 10 * 60 * 1000
    assert not is_too_far_ahead(Hlc(NOW_MS + limit, MAX_COUNTER, DEVICE), NOW_MS, limit)
    assert is_too_far_ahead(Hlc(NOW_MS + limit + 1, 0, DEVICE), NOW_MS, limit)
    assert not is_too_far_ahead(Hlc(NOW_MS - 10**9, 0, DEVICE), NOW_MS, limit)
