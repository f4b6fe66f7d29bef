"""Early warning: what the risk rules cost the push, and the nightly re-evaluation of a register.

1. Push throughput with the rules on and off, in the same run against the same served app:
   batches of `household_visit` submissions (bench/push.py's machinery), alternating off / on so
   the machine's load falls on both alike. Limit: on >= 85 % of off.
2. The nightly re-evaluation (`server.warnings.service.reevaluate`, what the nightly job runs) of
   the whole register: a first run (full: raises every warning the register holds), a forced
   full run with nothing changed (what any full run costs), and the next night's run with 1 % of
   the households written since (incremental: only those are evaluated), with the resident set
   sampled after every chunk (memory flat). Limit: < 60 s.

    python bench/warnings.py [--db sqlite|postgresql|both] [--reuse] [--size 50k|500k]
        [--batches 6] [--skip-push]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from register import (
    COUNTY_COLLECTOR,
    PASSWORD,
    Register,
    add_common_arguments,
    database_kinds,
    prepared_register,
    print_machine,
)
from sqlalchemy import func, select, update
from tablet import HttpTablet, known_households, served_app, visit_batches

from server.db import Database
from server.households.models import Household
from server.warnings import evaluation, hooks, service
from server.warnings.models import RiskWarning

NAME = "fieldsync_bench_warnings"
BATCH_SIZE = 500
TARGET_SHARE = 0.85
TARGET_NIGHTLY_SECONDS = 60.0


def _rss_mb() -> float:
    pages = int(Path(f"/proc/{os.getpid()}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _push_seconds(tablet: HttpTablet, body: bytes) -> float:
    started = time.perf_counter()
    response = tablet.push(body)
    seconds = time.perf_counter() - started
    statuses = {r["status"] for r in response["results"]}
    assert statuses == {"accepted"}, statuses
    return seconds


def measure_push(register: Register, batches: int) -> dict[str, Any]:
    households = known_households(register.settings, (2 * batches + 1) * BATCH_SIZE, seed=11)
    real_after_push = hooks.after_push

    def rules_off(*args: Any, **kwargs: Any) -> None:
        return None

    on: list[float] = []
    off: list[float] = []
    with served_app(register.settings) as served:
        tablet = HttpTablet.login(served.url, COUNTY_COLLECTOR, PASSWORD)
        bodies = visit_batches(tablet, households, BATCH_SIZE, seed=12)
        _push_seconds(tablet, bodies[0])  # warm-up
        for index, body in enumerate(bodies[1:]):
            rules_on = index % 2 == 1
            hooks.after_push = real_after_push if rules_on else rules_off
            try:
                (on if rules_on else off).append(_push_seconds(tablet, body))
            finally:
                hooks.after_push = real_after_push
        with served.runtime.db.unit_of_work(write=False) as session:
            raised = session.scalar(select(func.count()).select_from(RiskWarning)) or 0
    return {
        "on": BATCH_SIZE * len(on) / sum(on),
        "off": BATCH_SIZE * len(off) / sum(off),
        "on_batches": on,
        "off_batches": off,
        "warnings": raised,
    }


def _touch(db: Database, share: float, at: datetime) -> int:
    """A day's visits, as far as the nightly run can tell: `share` of the households (every
    hundredth by id) written at `at`."""
    with db.unit_of_work() as session:
        ids = session.scalars(select(Household.id).order_by(Household.id)).all()
        step = max(1, round(1 / share))
        chosen = ids[::step]
        for start in range(0, len(chosen), 5000):
            session.execute(
                update(Household)
                .where(Household.id.in_(chosen[start : start + 5000]))
                .values(updated_at=at)
            )
    return len(chosen)


NIGHTLY_RUNS = (
    ("first (full: no earlier run)", 0, False, 1),
    ("full again (nothing changed, --full)", 0, True, 1),
    ("full again, 2 worker processes (PostgreSQL)", 0, True, 2),
    ("a night later (1 % of households changed)", 1, False, 1),
)


def measure_nightly(register: Register) -> list[dict[str, Any]]:
    """The three runs of `NIGHTLY_RUNS`. The clock is set two hours ahead (and a day further for
    the third run) so the freshly generated register counts as written before the first run."""
    db = Database(register.url)
    runs = []
    real = evaluation.evaluate_households
    samples: list[float] = []

    def sampled(*args: Any, **kwargs: Any) -> evaluation.Outcome:
        outcome = real(*args, **kwargs)
        samples.append(_rss_mb())
        return outcome

    base = datetime.now(UTC) + timedelta(hours=2)
    try:
        for label, days, full, workers in NIGHTLY_RUNS:
            if workers > 1 and db.kind != "postgresql":
                continue
            now = base + timedelta(days=days)
            touched = _touch(db, 0.01, now - timedelta(hours=6)) if days else 0
            samples.clear()
            service.evaluate_households = sampled  # type: ignore[attr-defined]
            try:
                started = time.perf_counter()
                outcome = service.reevaluate(db, now=now, full=full, workers=workers)
                seconds = time.perf_counter() - started
            finally:
                service.evaluate_households = real  # type: ignore[attr-defined]
            tenth = max(1, len(samples) // 10)
            runs.append(
                {
                    **outcome.as_dict(),
                    "label": label,
                    "mode": outcome.mode,
                    "skipped": outcome.skipped,
                    "touched": touched,
                    "seconds": seconds,
                    "rss_first_tenth": statistics.mean(samples[:tenth]) if samples else 0.0,
                    "rss_last_tenth": statistics.mean(samples[-tenth:]) if samples else 0.0,
                    "rss_max": max(samples) if samples else 0.0,
                }
            )
    finally:
        db.dispose()
    return runs


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def run(register: Register, batches: int, skip_push: bool) -> None:
    households = register.size.households
    print(f"\n== early warning on {register.kind} ({households:,}-household register)")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not skip_push:
        push = measure_push(register, batches)
        share = push["on"] / push["off"]
        print(
            f"push     : rules on {push['on']:,.0f} submissions/s, off {push['off']:,.0f}/s "
            f"({batches} batches of {BATCH_SIZE} each, alternating; on/off = {share:.0%})"
            f"   limit >= {TARGET_SHARE:.0%}  {_verdict(share >= TARGET_SHARE)}"
        )
        print(
            f"           batches on  {' '.join(f'{s:.2f}' for s in push['on_batches'])} s; "
            f"off {' '.join(f'{s:.2f}' for s in push['off_batches'])} s; "
            f"{push['warnings']:,} warnings raised by the pushes"
        )
    for figures in measure_nightly(register):
        seconds = figures["seconds"]
        evaluated = figures["households"]
        print(
            f"nightly  : {figures['label']}: {seconds:.1f} s, mode {figures['mode']}, "
            f"{evaluated:,} households evaluated ({evaluated / seconds:,.0f}/s), "
            f"{figures['skipped']:,} skipped; raised {figures['raised']:,}, still holding "
            f"{figures['refreshed']:,}, no longer holding {figures['no_longer_hold']:,}   "
            f"limit < {TARGET_NIGHTLY_SECONDS:.0f} s  {_verdict(seconds < TARGET_NIGHTLY_SECONDS)}"
        )
        print(
            f"           resident set {figures['rss_first_tenth']:.0f} MB over the first tenth "
            f"of chunks, {figures['rss_last_tenth']:.0f} MB over the last, "
            f"max {figures['rss_max']:.0f} MB"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: Iterator[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--size", choices=("50k", "500k"), default="50k")
    parser.add_argument("--batches", type=int, default=6, help="measured batches of 500, on+off")
    parser.add_argument("--skip-push", action="store_true", help="only the nightly run")
    args = parser.parse_args(None if argv is None else list(argv))
    kinds = database_kinds(args.db)
    print_machine(kinds)
    for kind in kinds:
        with prepared_register(kind, args.size, reuse=args.reuse, name=NAME) as register:
            run(register, args.batches, args.skip_push)


if __name__ == "__main__":
    main()
