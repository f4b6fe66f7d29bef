"""Pull latency over HTTP from the real app: a collector's initial sync of one village (500
households, 2,000 members, in pages of 1,000 entities) and an incremental pull that returns 20
changed entities, each on the 50,000- and the 500,000-household register, so that growth with the
register's size shows (the incremental pull must not grow). Also what the village's list of due
follow-up visits adds to that incremental pull (the register's ~5 % monitored households, each
given a last visit 0-45 days ago): the same pull with and without the list, alternated.

    python bench/pull.py [--db sqlite|postgresql|both] [--sizes 50k,500k] [--reuse] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from register import (
    FIRST_VILLAGE,
    PASSWORD,
    SIZES,
    VILLAGE_COLLECTOR,
    Register,
    add_common_arguments,
    database_kinds,
    prepared_register,
    print_machine,
)
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from tablet import HttpTablet, ServedApp, known_households, served_app, visit_batches

from forms.register import MonitoringStatus
from server.auth.actor import Actor
from server.db import Database
from server.households.models import Household
from server.monitoring import followups
from server.monitoring.help_models import HouseholdFollowup

INITIAL_RUNS = 5
INCREMENTAL_RUNS = 30
CHANGED_HOUSEHOLDS = 4  # one visit writes a household and its 4 members: 20 entities
TARGET_INITIAL_S = 0.5
TARGET_INCREMENTAL_MS = 20.0
TARGET_DUE_LIST_MS = 5.0
LAST_VISIT_DAYS = 45  # monitored households were last visited 0-45 days ago (30-day interval)
HORIZON_WAIT_S = 30.0


@dataclass
class PullFigures:
    kind: str
    households: int
    initial_entities: int
    initial_first: float
    initial_seconds: list[float]
    incremental_entities: int
    incremental_seconds: list[float]
    monitored: int = 0
    due_listed: int = 0
    with_due_seconds: list[float] | None = None
    without_due_seconds: list[float] | None = None
    profile: str | None = None

    @property
    def due_list_ms(self) -> float:
        """Median of the pull with the due list minus the median without it."""
        assert self.with_due_seconds is not None and self.without_due_seconds is not None
        return (
            statistics.median(self.with_due_seconds) - statistics.median(self.without_due_seconds)
        ) * 1000

    @property
    def initial_median(self) -> float:
        return statistics.median(self.initial_seconds)

    @property
    def incremental_median_ms(self) -> float:
        return statistics.median(self.incremental_seconds) * 1000


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def seed_last_visits(register: Register) -> int:
    """Give every monitored household of the register a last visit 0-45 days ago (seeded); the
    number of monitored households."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    db = Database(register.settings.database_url)
    try:
        with db.unit_of_work() as session:
            ids = session.scalars(
                select(Household.id).where(
                    Household.monitoring_status == MonitoringStatus.MONITORED
                )
            ).all()
            rows = [
                {
                    "household_id": household_id,
                    "last_visit_at": now - timedelta(days=rng.uniform(0, LAST_VISIT_DAYS)),
                    "updated_at": now,
                }
                for household_id in ids
            ]
            for start in range(0, len(rows), 5000):
                session.execute(insert(HouseholdFollowup), rows[start : start + 5000])
    finally:
        db.dispose()
    return len(rows)


def _due_list_runs(tablet: HttpTablet, cursor: str) -> tuple[list[float], list[float], int]:
    """The same incremental pull with and without the due list, alternated (so that drift in
    the machine's load falls on both alike); and the list's length."""
    listed = len(tablet.pull(cursor)["followups"]["due"])
    real = followups.due_list

    def no_due_list(session: Session, actor: Actor, as_of: datetime) -> list[dict[str, Any]]:
        return []

    with_list: list[float] = []
    without_list: list[float] = []
    try:
        for _ in range(INCREMENTAL_RUNS):
            followups.due_list = real
            with_list.append(_timed(lambda: tablet.pull(cursor)))
            followups.due_list = no_due_list
            without_list.append(_timed(lambda: tablet.pull(cursor)))
    finally:
        followups.due_list = real
    return with_list, without_list, listed


def measure(register: Register, profile: bool) -> PullFigures:
    monitored = seed_last_visits(register)
    with served_app(register.settings) as served:
        village_tablet = HttpTablet.login(served.url, VILLAGE_COLLECTOR, PASSWORD)
        # Initial sync: the first one also records the scope snapshot; then the steady state.
        started = time.perf_counter()
        entities, cursor = village_tablet.pull_all()
        first = time.perf_counter() - started
        initial = [_timed(village_tablet.pull_all) for _ in range(INITIAL_RUNS)]
        # Another tablet of the same collector visits four households of the village.
        visitor = HttpTablet.login(served.url, VILLAGE_COLLECTOR, PASSWORD)
        visited = known_households(
            register.settings, CHANGED_HOUSEHOLDS, village=FIRST_VILLAGE, seed=5
        )
        [body] = visit_batches(visitor, visited, CHANGED_HOUSEHOLDS)
        response = visitor.push(body)
        assert {r["status"] for r in response["results"]} == {"accepted"}, response
        changed = _wait_for_changes(village_tablet, cursor)
        incremental = [_timed(lambda: village_tablet.pull(cursor)) for _ in range(INCREMENTAL_RUNS)]
        with_due, without_due, listed = _due_list_runs(village_tablet, cursor)
        report = _profile(served, village_tablet, cursor) if profile else None
    return PullFigures(
        kind=register.kind,
        households=register.size.households,
        initial_entities=len(entities),
        initial_first=first,
        initial_seconds=initial,
        incremental_entities=changed,
        incremental_seconds=incremental,
        monitored=monitored,
        due_listed=listed,
        with_due_seconds=with_due,
        without_due_seconds=without_due,
        profile=report,
    )


def _wait_for_changes(tablet: HttpTablet, cursor: str) -> int:
    """Pull with `cursor` until the visits show: a change is served once every transaction that
    might precede it has ended (the horizon); on a busy PostgreSQL server that takes a moment."""
    deadline = time.monotonic() + HORIZON_WAIT_S
    while True:
        page = tablet.pull(cursor)
        count = len(page["entities"])
        if count >= CHANGED_HOUSEHOLDS * 5 or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def _profile(served: ServedApp, tablet: HttpTablet, cursor: str) -> str:
    """cProfile of one initial sync and one incremental pull, handled in this thread."""
    client = served.app.test_client()
    headers = {"Authorization": f"Bearer {tablet.token}"}
    profiler = cProfile.Profile()
    profiler.enable()
    next_cursor: str | None = None
    while True:
        query = "?limit=1000" + (f"&cursor={next_cursor}" if next_cursor else "")
        page = client.get(f"/api/v1/sync/pull{query}", headers=headers).get_json()
        next_cursor = page["cursor"]
        if not page["more"]:
            break
    for _ in range(INCREMENTAL_RUNS):
        client.get(f"/api/v1/sync/pull?limit=1000&cursor={cursor}", headers=headers)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"(server|forms|sync_protocol)/", 25)
    stats.sort_stats("tottime").print_stats(20)
    return out.getvalue()


def report(figures: list[PullFigures]) -> None:
    print("\n== pull (one village: 500 households, 2,000 members; pages of 1,000 entities)")
    initial = f"initial sync (median of {INITIAL_RUNS})"
    incremental = f"incremental (median of {INCREMENTAL_RUNS})"
    print(f"{'database':<11}{'register':>10}  {initial:>28}{'first':>8}  {incremental:>30}")
    for f in figures:
        initial_ok = f.initial_median < TARGET_INITIAL_S
        incremental_ok = f.incremental_median_ms < TARGET_INCREMENTAL_MS
        print(
            f"{f.kind:<11}{f.households:>10,}  "
            f"{f.initial_median:>9.3f} s for {f.initial_entities:,} entities "
            f"{'ok' if initial_ok else 'MISSED':>6}"
            f"{f.initial_first:>7.2f}s  "
            f"{f.incremental_median_ms:>9.1f} ms for {f.incremental_entities} entities "
            f"{'ok' if incremental_ok else 'MISSED':>6}"
        )
    print(f"targets: initial < {TARGET_INITIAL_S} s; incremental < {TARGET_INCREMENTAL_MS:.0f} ms")
    print("\n== the village's due follow-up visits in that incremental pull")
    print(
        f"{'database':<11}{'register':>10}{'monitored':>11}{'listed':>8}"
        f"{'with list':>12}{'without':>10}{'adds':>10}"
    )
    for f in figures:
        assert f.with_due_seconds is not None and f.without_due_seconds is not None
        print(
            f"{f.kind:<11}{f.households:>10,}{f.monitored:>11,}{f.due_listed:>8}"
            f"{statistics.median(f.with_due_seconds) * 1000:>9.1f} ms"
            f"{statistics.median(f.without_due_seconds) * 1000:>7.1f} ms"
            f"{f.due_list_ms:>7.2f} ms {'ok' if f.due_list_ms < TARGET_DUE_LIST_MS else 'MISSED'}"
        )
    print(
        f"target: the due list adds < {TARGET_DUE_LIST_MS:.0f} ms (medians of {INCREMENTAL_RUNS})"
    )
    for f in figures:
        if f.profile:
            print(f"\n-- cProfile of one initial sync and {INCREMENTAL_RUNS} incremental pulls")
            print(f"   on {f.kind}, {f.households:,} households\n{f.profile}")


def main(argv: Iterator[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--sizes",
        default="50k,500k",
        help="registers to measure on, comma-separated (default: 50k,500k)",
    )
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the pulls")
    args = parser.parse_args(None if argv is None else list(argv))
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {sorted(SIZES)}")
    kinds = database_kinds(args.db)
    print_machine(kinds)
    figures = []
    for kind in kinds:
        for size in sizes:
            with prepared_register(kind, size, reuse=args.reuse) as register:
                if register.report is not None:
                    seconds = register.report.seconds
                    print(f"({kind}: {size} register generated in {seconds:.0f} s)")
                figures.append(measure(register, args.profile))
    report(figures)


if __name__ == "__main__":
    main()
