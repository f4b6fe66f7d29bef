"""Hybrid logical clock (HLC) stamps and the clock that issues them, per Kulkarni et al. (2014).

Stamps order every register write across devices and the server. This module is pure: it never
reads the environment at import, never touches a database and never imports Flask.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MILLIS_DIGITS = 13
COUNTER_DIGITS = 5
MAX_MILLIS = 10**MILLIS_DIGITS - 1  # 2286-11-20; the wire format has no room for more
MAX_COUNTER = 10**COUNTER_DIGITS - 1
MAX_NODE_LENGTH = 64
SERVER_NODE = "server"
DEFAULT_MAX_CLOCK_SKEW_MS = 10 * 60 * 1000

# A node is printable ASCII without whitespace, so it compares the same as text in every language
# and database collation (code-point order == byte order). It may contain '-' (UUIDs do).
_NODE_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_NODE_LENGTH}}}")
_MILLIS_RE = re.compile(rf"[0-9]{{{MILLIS_DIGITS}}}")
_COUNTER_RE = re.compile(rf"[0-9]{{{COUNTER_DIGITS}}}")


class ClockFormatError(ValueError):
    """A clock stamp or one of its parts is not valid."""


@dataclass(frozen=True, order=True)
class Hlc:
    """One hybrid logical clock stamp: `<13-digit ms>-<5-digit counter>-<node>` on the wire.

    Stamps are totally ordered by (millis, counter, node), numbers as numbers and node as text;
    `order=True` compares exactly that tuple. Construction validates every part and raises
    `ClockFormatError`, so an `Hlc` instance is always a stamp the wire format can carry.
    """

    millis: int
    counter: int
    node: str

    def __post_init__(self) -> None:
        if type(self.millis) is not int or not 0 <= self.millis <= MAX_MILLIS:
            raise ClockFormatError(f"clock millis must be an integer in 0..{MAX_MILLIS}")
        if type(self.counter) is not int or not 0 <= self.counter <= MAX_COUNTER:
            raise ClockFormatError(f"clock counter must be an integer in 0..{MAX_COUNTER}")
        if not isinstance(self.node, str) or not _NODE_RE.fullmatch(self.node):
            raise ClockFormatError(
                f"clock node must be 1..{MAX_NODE_LENGTH} printable ASCII characters "
                "without whitespace"
            )

    @classmethod
    def parse(cls, text: str) -> Hlc:
        """Parse a wire stamp such as `1763795400123-00002-8f1c…` (exact inverse of `str()`).

        Only the first two `-` separate parts, so device UUIDs work as nodes. Raises
        `ClockFormatError` (a `ValueError`) naming what is wrong for anything else, including
        non-strings, wrong digit counts, non-ASCII digits and an empty or over-long node.
        """
        if not isinstance(text, str):
            raise ClockFormatError(f"clock must be a string, not {type(text).__name__}")
        parts = text.split("-", 2)
        if len(parts) != 3:
            raise ClockFormatError(
                f"clock {text[:100]!r} is not of the form <13-digit ms>-<5-digit counter>-<node>"
            )
        millis, counter, node = parts
        if not _MILLIS_RE.fullmatch(millis):
            raise ClockFormatError(f"clock {text[:100]!r}: milliseconds must be exactly 13 digits")
        if not _COUNTER_RE.fullmatch(counter):
            raise ClockFormatError(f"clock {text[:100]!r}: counter must be exactly 5 digits")
        if not _NODE_RE.fullmatch(node):
            raise ClockFormatError(
                f"clock {text[:100]!r}: node must be 1..{MAX_NODE_LENGTH} printable ASCII "
                "characters without whitespace"
            )
        return cls(int(millis), int(counter), node)

    def format(self) -> str:
        """The wire form, zero-padded: `f"{millis:013d}-{counter:05d}-{node}"`."""
        return f"{self.millis:0{MILLIS_DIGITS}d}-{self.counter:0{COUNTER_DIGITS}d}-{self.node}"

    def __str__(self) -> str:
        return self.format()


def wall_clock_ms() -> int:
    """The system's wall clock in Unix milliseconds (the default physical time source)."""
    return time.time_ns() // 1_000_000


class HybridClock:
    """The hybrid logical clock of one node (a device, or the server), safe to share by threads.

    `now()` stamps a local or send event, `observe(remote)` a receive event. Every stamp it returns
    is strictly greater than every stamp it returned or observed before, whatever the physical
    clock does (it may stall or go backwards). `last` is the state to persist and pass back as
    `last=` after a restart, so stamps stay monotonic across runs.

    Counter overflow: when more than 99 999 events share one millisecond the clock moves its
    logical millisecond forward by one and restarts the counter at 0, instead of emitting a
    six-digit counter the wire format cannot carry. The logical time then runs ahead of physical
    time by at most a millisecond per 100 000 events and is caught up by the physical clock.
    """

    def __init__(
        self,
        node: str,
        physical_time_ms: Callable[[], int] = wall_clock_ms,
        last: Hlc | None = None,
    ) -> None:
        Hlc(0, 0, node)  # validates the node, raising ClockFormatError
        self._node = node
        self._physical_time_ms = physical_time_ms
        self._lock = threading.Lock()
        self._last: Hlc | None = None if last is None else Hlc(last.millis, last.counter, node)

    @property
    def node(self) -> str:
        return self._node

    @property
    def last(self) -> Hlc | None:
        """The latest stamp issued by `now()` or `observe()`, or None before the first event."""
        with self._lock:
            return self._last

    def now(self) -> Hlc:
        """A stamp for a local or send event: max(last, physical time), counter bumped on ties.

        Raises `ClockFormatError` only if time passes year 2286 (13 digits of milliseconds).
        """
        with self._lock:
            physical = self._physical_time_ms()
            last = self._last
            if last is None or physical > last.millis:
                stamp = self._stamp(physical, 0)
            else:
                stamp = self._stamp(last.millis, last.counter + 1)
            self._last = stamp
            return stamp

    def observe(self, remote: Hlc) -> Hlc:
        """Merge a received stamp: the result is greater than `remote` and than `last`.

        The server must refuse stamps too far ahead (`is_too_far_ahead`) *before* observing them;
        otherwise one tablet with a wrong date drags this clock into the future with it.
        """
        with self._lock:
            physical = self._physical_time_ms()
            last_millis = -1 if self._last is None else self._last.millis
            last_counter = -1 if self._last is None else self._last.counter
            millis = max(last_millis, remote.millis, physical)
            if millis == last_millis == remote.millis:
                counter = max(last_counter, remote.counter) + 1
            elif millis == last_millis:
                counter = last_counter + 1
            elif millis == remote.millis:
                counter = remote.counter + 1
            else:
                counter = 0
            stamp = self._stamp(millis, counter)
            self._last = stamp
            return stamp

    def _stamp(self, millis: int, counter: int) -> Hlc:
        if millis < 0:  # a broken physical clock before 1970 and nothing seen yet
            millis = 0
        if counter > MAX_COUNTER:
            millis, counter = millis + 1, 0
        return Hlc(millis, counter, self._node)


def is_too_far_ahead(stamp: Hlc, server_now_ms: int, max_skew_ms: int) -> bool:
    """True when `stamp` is more than `max_skew_ms` ahead of the server's physical time.

    The server rejects such a submission with `clock_ahead` (and does not observe its stamp).
    A stamp exactly `max_skew_ms` ahead is still accepted; stamps in the past always are.
    """
    return stamp.millis - server_now_ms > max_skew_ms
