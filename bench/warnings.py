"""Early warning: what the risk rules cost the push, and the nightly re-evaluation of a register.

1. Push throughput with the rules on and off, in the same run against the same served app:
   batches of `household_visit` submissions (bench/push.py's machinery), alternating off / on so
   the machine's load falls on both alike. Limit: on >= 85 % of off.
2. The nightly re-evaluation (`server.warnings.service.reevaluate`, what the nightly job runs) of
   the whole register: a first run (full: raises every warning the register holds), a forced
   full run with nothing changed (what any full run costs), and the next night's run with 1 % of
   the households written since (incremental: only those are evaluated), with the resident set
   sampled after every chunk (memory flat). Limit: < 60 s.

With `--departments` the register carries department data, as after a year of imports (saved
with the register under its own name): medical insurance's `insured` and `medical_costs` for 95 %
of the members (a tenth of `insured` contradicting the register, 2 % of the costs large), civil
affairs' `minimum_allowance` for the households the register says receive it and 3 % of the
others (a twentieth no longer listed), housing's `dilapidated_house` for 2 % of the households.

    python bench/warnings.py [--db sqlite|postgresql|both] [--reuse] [--size 50k|500k]
        [--batches 6] [--skip-push] [--departments] [--skip-workers]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import register as registers
from register import (
    COUNTY_COLLECTOR,
    PASSWORD,
    DbKind,
    Extra,
    Register,
    add_common_arguments,
    database_kinds,
    prepared_register,
    print_machine,
)
from sqlalchemy import func, select, text, update
from tablet import HttpTablet, known_households, served_app, visit_batches

from server.auth.actor import system_actor
from server.db import Database, utcnow
from server.departments.models import DepartmentImport, ImportOrigin, ImportStatus
from server.departments.sources import create_source
from server.households.models import Household
from server.warnings import evaluation, hooks, service, set_based
from server.warnings.models import RiskWarning

NAME = "fieldsync_bench_warnings"
WITH_DEPARTMENTS = "fieldsync_bench_warnings_departments"
registers.BENCH_NAMES = (*registers.BENCH_NAMES, WITH_DEPARTMENTS)  # type: ignore[assignment]
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


# One INSERT … SELECT per fact: (fact, department, subject table, value expression, share of the
# subjects listed) per dialect. `random()` is PostgreSQL's [0, 1) and SQLite's 64-bit integer.
_MEMBER_KEY = {
    "postgresql": "s.id::text",
    "sqlite": "lower(substr(s.id, 1, 8) || '-' || substr(s.id, 9, 4) || '-' || substr(s.id, 13, 4)"
    " || '-' || substr(s.id, 17, 4) || '-' || substr(s.id, 21))",
}
_CHANCE = {"postgresql": "random() < {p}", "sqlite": "abs(random()) % 10000 < {p} * 10000"}
_FACTS: tuple[tuple[str, str, str, dict[str, str], str], ...] = (
    (
        "insured",
        "medical_insurance",
        "members",
        {
            "postgresql": "to_jsonb(CASE WHEN random() < 0.1 THEN NOT coalesce(s.insured, true) "
            "ELSE coalesce(s.insured, true) END)",
            "sqlite": "CASE WHEN (abs(random()) % 10 = 0) = (coalesce(s.insured, 1) = 1) "
            "THEN 'false' ELSE 'true' END",
        },
        "0.95",
    ),
    (
        "medical_costs",
        "medical_insurance",
        "members",
        {
            "postgresql": "to_jsonb(to_char(CASE WHEN random() < 0.02 THEN 10000 + random() * 40000"
            " ELSE random() * 5000 END, 'FM99999990.00'))",
            "sqlite": "json_quote(printf('%.2f', CASE WHEN abs(random()) % 50 = 0 THEN 10000 + "
            "abs(random()) % 4000000 / 100.0 ELSE abs(random()) % 500000 / 100.0 END))",
        },
        "0.95",
    ),
    (
        "minimum_allowance",
        "civil_affairs",
        "households",
        {
            "postgresql": "to_jsonb(coalesce(s.receives_minimum_allowance, false) AND random() >= "
            "0.05)",
            "sqlite": "CASE WHEN coalesce(s.receives_minimum_allowance, 0) = 1 AND "
            "abs(random()) % 20 <> 0 THEN 'true' ELSE 'false' END",
        },
        "1",
    ),
    (
        "dilapidated_house",
        "housing",
        "households",
        {"postgresql": "'true'::jsonb", "sqlite": "'true'"},
        "0.02",
    ),
)


def add_department_facts(kind: DbKind, url: str) -> None:
    """Department data for every rule that reads it (see the module's description), written
    set-based as a year of imports would have left it: one source and import per department."""
    db = Database(url)
    try:
        with db.unit_of_work() as session:
            imports: dict[str, Any] = {}
            for department in sorted({f[1] for f in _FACTS}):
                codes = [f[0] for f in _FACTS if f[1] == department]
                source = create_source(
                    session,
                    system_actor("bench"),
                    {
                        "name": f"bench-{department}",
                        "department": department,
                        "mapping": {
                            "id_number": "id",
                            "facts": {code: {"column": code} for code in codes},
                        },
                        "list_kind": "full",
                    },
                )
                record = DepartmentImport(
                    source_id=source.id,
                    status=ImportStatus.APPLIED,
                    origin=ImportOrigin.COMMAND_LINE,
                    started_at=utcnow(),
                    finished_at=utcnow(),
                )
                session.add(record)
                session.flush()
                imports[department] = (record.id, source.id)

            def hexed(value: uuid.UUID) -> Any:
                return value.hex if kind == "sqlite" else value

            for fact, department, table, value, share in _FACTS:
                member = table == "members"
                listed = "1" if share == "1" else _CHANCE[kind].format(p=share)
                if fact == "minimum_allowance":
                    listed = "s.receives_minimum_allowance = true OR " + _CHANCE[kind].format(
                        p="0.03"
                    )
                key = _MEMBER_KEY[kind] if member else "''"
                session.execute(
                    text(
                        "INSERT INTO department_facts (department, fact, household_id, "
                        "subject_key, member_id, value, present, as_of, import_id, source_row, "
                        "source_id, updated_at) "
                        f"SELECT :department, :fact, {'s.household_id' if member else 's.id'}, "
                        f"{key}, {'s.id' if member else 'NULL'}, {value[kind]}, true, "
                        ":as_of, :import_id, NULL, :source_id, s.updated_at "
                        f"FROM {table} AS s WHERE s.deleted = false AND ({listed})"
                    ),
                    {
                        "department": department,
                        "fact": fact,
                        "as_of": "2026-03-31",
                        "import_id": hexed(imports[department][0]),
                        "source_id": hexed(imports[department][1]),
                    },
                )
    finally:
        db.dispose()


DEPARTMENT_DATA = Extra("departments-1", add_department_facts)


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


def measure_nightly(register: Register, *, workers: bool = True) -> list[dict[str, Any]]:
    """The three runs of `NIGHTLY_RUNS`. The clock is set two hours ahead (and a day further for
    the third run) so the freshly generated register counts as written before the first run."""
    db = Database(register.url)
    runs = []
    real = set_based.evaluate_scope
    samples: list[float] = []

    def sampled(*args: Any, **kwargs: Any) -> evaluation.Outcome:
        outcome = real(*args, **kwargs)
        samples.append(_rss_mb())
        return outcome

    base = datetime.now(UTC) + timedelta(hours=2)
    try:
        for label, days, full, count in NIGHTLY_RUNS:
            if count > 1 and (db.kind != "postgresql" or not workers):
                continue
            now = base + timedelta(days=days)
            touched = _touch(db, 0.01, now - timedelta(hours=6)) if days else 0
            samples.clear()
            set_based.evaluate_scope = sampled
            try:
                started = time.perf_counter()
                outcome = service.reevaluate(db, now=now, full=full, workers=count)
                seconds = time.perf_counter() - started
            finally:
                set_based.evaluate_scope = real
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


def run(register: Register, batches: int, skip_push: bool, workers: bool) -> None:
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
    for figures in measure_nightly(register, workers=workers):
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
    parser.add_argument("--size", choices=("4k", "50k", "500k"), default="50k")
    parser.add_argument("--batches", type=int, default=6, help="measured batches of 500, on+off")
    parser.add_argument("--skip-push", action="store_true", help="only the nightly run")
    parser.add_argument(
        "--departments", action="store_true", help="a register with department data"
    )
    parser.add_argument(
        "--skip-workers", action="store_true", help="no full run in 2 worker processes"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    kinds = database_kinds(args.db)
    print_machine(kinds)
    for kind in kinds:
        with prepared_register(
            kind,
            args.size,
            reuse=args.reuse,
            name=WITH_DEPARTMENTS if args.departments else NAME,
            extra=DEPARTMENT_DATA if args.departments else None,
        ) as register:
            run(register, args.batches, args.skip_push, not args.skip_workers)


if __name__ == "__main__":
    main()
