"""The pure arithmetic of `tablets.py`: percentiles and throughput of timed syncs, and the check of
a register against every submission it accepted (the latest-clock write of each field must be
the stored value and clock). No HTTP, no database: tested on its own
(tests/test_bench_tablets.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sync_protocol.clock import Hlc


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100) of `values` by the nearest-rank method: the smallest value
    that at least q % of the values do not exceed. NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Timed:
    """One timed exchange of one tablet: when it started and ended (monotonic seconds, the same
    clock in every process of the machine), what it moved, and whether it failed."""

    started: float
    ended: float
    submissions: int = 0
    error: str | None = None
    first_step: float = 0.0  # seconds of its first step (a cold start's login)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class WindowFigures:
    """Exchanges that ended within a measuring window, per second of the window."""

    window: float
    completed: int
    submissions: int
    errors: int
    p50: float
    p95: float
    p99: float
    slowest: float
    # The same percentiles of each exchange's first step (a sync's push) and of the rest (its pull).
    first_p50: float = math.nan
    first_p95: float = math.nan
    rest_p50: float = math.nan
    rest_p95: float = math.nan

    @property
    def per_second(self) -> float:
        return self.completed / self.window

    @property
    def submissions_per_second(self) -> float:
        return self.submissions / self.window


def window_figures(records: Iterable[Timed], start: float, end: float) -> WindowFigures:
    """Throughput and latency of the exchanges that ended inside [start, end] (those that ended
    before, in the warm-up, or after, in the drain, are not counted; one that started in the
    warm-up is, or a window shorter than one exchange would count none); a failed one counts
    only as an error."""
    inside = [r for r in records if start <= r.ended <= end]
    good = [r for r in inside if r.error is None]
    seconds = [r.seconds for r in good]
    firsts = [r.first_step for r in good]
    rests = [r.seconds - r.first_step for r in good]
    return WindowFigures(
        window=end - start,
        completed=len(good),
        submissions=sum(r.submissions for r in good),
        errors=len(inside) - len(good),
        p50=percentile(seconds, 50),
        p95=percentile(seconds, 95),
        p99=percentile(seconds, 99),
        slowest=max(seconds, default=math.nan),
        first_p50=percentile(firsts, 50),
        first_p95=percentile(firsts, 95),
        rest_p50=percentile(rests, 50),
        rest_p95=percentile(rests, 95),
    )


# --- the register against what it accepted ----------------------------------------------------

FieldKey = tuple[str, str, str]  # entity type, entity id, field name


@dataclass(frozen=True)
class Write:
    clock: Hlc
    value: Any
    instance_id: str


def latest_writes(
    accepted: Iterable[tuple[str, str, Iterable[tuple[str, str, Mapping[str, Any]]]]],
) -> dict[FieldKey, Write]:
    """For every field that accepted submissions wrote, the write with the greatest clock.
    `accepted`: (instance id, hlc text, its register updates as (entity type, id, fields))."""
    latest: dict[FieldKey, Write] = {}
    for instance_id, hlc, updates in accepted:
        clock = Hlc.parse(hlc)
        for entity_type, entity_id, fields in updates:
            for name, value in fields.items():
                key = (entity_type, entity_id, name)
                known = latest.get(key)
                if known is None or clock > known.clock:
                    latest[key] = Write(clock, value, instance_id)
    return latest


def same_value(written: Any, stored: Any) -> bool:
    """Whether a value as written (the form's binding) and as read back (the pull's JSON) are the
    same register value: numbers compare by value (20000 is 20000.0 and "20000.00" for a decimal
    column), everything else by its JSON text."""
    if isinstance(written, bool) or isinstance(stored, bool):
        return written is stored
    if isinstance(written, int | float | Decimal) and isinstance(stored, int | float | str):
        try:
            return Decimal(str(written)) == Decimal(str(stored))
        except InvalidOperation:
            return False
    return _canonical(written) == _canonical(stored)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Mismatch:
    key: FieldKey
    expected: Any
    expected_clock: str
    stored: Any
    stored_clock: str | None

    def __str__(self) -> str:
        entity_type, entity_id, name = self.key
        return (
            f"{entity_type}/{entity_id}.{name}: latest accepted write {self.expected!r} at "
            f"{self.expected_clock}, register holds {self.stored!r} at {self.stored_clock}"
        )


def register_mismatches(
    latest: Mapping[FieldKey, Write],
    stored: Mapping[tuple[str, str], tuple[Mapping[str, Any], Mapping[str, str]]],
) -> list[Mismatch]:
    """Every field whose stored value or clock is not that of its latest accepted write.
    `stored`: per (entity type, id), the entity's fields and per-field clocks as pulled."""
    mismatches = []
    for key, write in latest.items():
        entity_type, entity_id, name = key
        fields, clocks = stored.get((entity_type, entity_id), ({}, {}))
        value, clock = fields.get(name), clocks.get(name)
        if clock != str(write.clock) or not same_value(write.value, value):
            mismatches.append(Mismatch(key, write.value, str(write.clock), value, clock))
    return mismatches


if __name__ == "__main__":
    print("tablet_figures.py holds the arithmetic of tablets.py; it measures nothing itself.")
