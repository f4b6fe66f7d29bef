"""Push throughput end to end: batches of `household_visit` submissions (each one household and
its four members) POSTed over HTTP to the real app (`gunicorn wsgi:app`, one worker) on a
50,000-household register, through decoding, validation, binding, field merge and commit; then
the raw database limit for the same rows (written back as driver values, no application logic),
the peak memory of a 1,000-item batch, and the throughput of gunicorn with two worker processes
serving two tablets pushing at once.

    python bench/push.py [--db sqlite|postgresql|both] [--reuse] [--batches 6] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from psycopg.types.json import Jsonb
from register import (
    COUNTY_COLLECTOR,
    PASSWORD,
    DbKind,
    Register,
    add_common_arguments,
    database_kinds,
    prepared_register,
    print_machine,
)
from sqlalchemy import Connection, Table
from tablet import (
    HttpTablet,
    ServedApp,
    gunicorn_app,
    known_households,
    served_app,
    visit_batches,
)

from server.changes.models import Change
from server.db import Database
from server.households.models import Household, Member
from server.submissions.models import Submission

BATCH_SIZE = 500
MEMORY_BATCH_SIZE = 1000
TARGETS = {"sqlite": 1500, "postgresql": 1000}  # submissions/s on a 2-core machine
TARGET_SHARE_OF_RAW = 0.30
TARGET_MEMORY_MB = 150

HOUSEHOLDS = cast(Table, Household.__table__)
MEMBERS = cast(Table, Member.__table__)
CHANGES = cast(Table, Change.__table__)
SUBMISSIONS = cast(Table, Submission.__table__)


@dataclass
class PushFigures:
    batch_seconds: list[float]
    submissions: int
    batch_ids: list[str]

    @property
    def per_second(self) -> float:
        return self.submissions / sum(self.batch_seconds)


def measure_app(tablet: HttpTablet, bodies: Sequence[bytes]) -> PushFigures:
    seconds, batch_ids, count = [], [], 0
    for body in bodies:
        started = time.perf_counter()
        response = tablet.push(body)
        seconds.append(time.perf_counter() - started)
        statuses = {r["status"] for r in response["results"]}
        assert statuses == {"accepted"}, f"not all accepted: {statuses} {response['results'][:1]}"
        batch_ids.append(response["batch_id"])
        count += len(response["results"])
    return PushFigures(seconds, count, batch_ids)


# --- several workers ------------------------------------------------------------------------------

WORKERS = 2  # one per core of the benchmark machine
WORKER_BATCHES = 3  # per tablet


@dataclass
class WorkersFigures:
    submissions: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.submissions / self.seconds


def measure_workers(register: Register, households: Sequence[Any]) -> WorkersFigures:
    """gunicorn with `WORKERS` worker processes; as many tablets (devices of the county
    collector, each visiting its own households) push `WORKER_BATCHES` batches of 500 each at the
    same time. Throughput: all accepted submissions over the wall time from the first request
    to the last response (one warm-up batch per tablet first, not counted)."""
    per_tablet = (1 + WORKER_BATCHES) * BATCH_SIZE
    with gunicorn_app(register.settings, WORKERS) as url:
        tablets = [HttpTablet.login(url, COUNTY_COLLECTOR, PASSWORD) for _ in range(WORKERS)]
        work = [
            visit_batches(tablet, households[i * per_tablet : (i + 1) * per_tablet], BATCH_SIZE)
            for i, tablet in enumerate(tablets)
        ]
        warm = [
            threading.Thread(target=measure_app, args=(t, b[:1]))
            for t, b in zip(tablets, work, strict=True)
        ]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()
        results: list[PushFigures] = []

        def push_all(tablet: HttpTablet, bodies: Sequence[bytes]) -> None:
            results.append(measure_app(tablet, bodies))

        threads = [
            threading.Thread(target=push_all, args=(t, b[1:]))
            for t, b in zip(tablets, work, strict=True)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    assert len(results) == WORKERS, "a tablet's pushes failed"
    return WorkersFigures(sum(r.submissions for r in results), seconds)


# --- the raw limit -------------------------------------------------------------------------------


@dataclass
class BatchRows:
    """One batch's rows as the driver returned them (and takes them back), per table, with the
    column names."""

    households: tuple[list[str], list[tuple[Any, ...]]]
    members: tuple[list[str], list[tuple[Any, ...]]]
    changes: tuple[list[str], list[tuple[Any, ...]]]
    submissions: tuple[list[str], list[tuple[Any, ...]]]

    @property
    def count(self) -> int:
        return sum(len(rows) for _, rows in self.tables)

    @property
    def tables(self) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
        return [self.households, self.members, self.changes, self.submissions]


def _raw_rows(
    connection: Connection, table: Table, column: str, values: Sequence[Any], kind: DbKind
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows of `table` whose `column` is among `values` (driver values), as the driver gives
    them: no conversion at all."""
    if not values:
        return [c.name for c in table.columns], []
    parameter: Any
    if kind == "postgresql":
        condition, parameter = f"{column} = ANY(%s)", list(values)
    else:
        condition = f"{column} IN (SELECT value FROM json_each(?))"
        parameter = json.dumps(list(values))
    result = connection.exec_driver_sql(
        f"SELECT * FROM {table.name} WHERE {condition}", (parameter,)
    )
    names = [d[0] for d in result.cursor.description]
    rows = [tuple(row) for row in result.fetchall()]
    if kind == "postgresql":
        # psycopg reads jsonb as Python values and takes them back wrapped.
        rows = [tuple(_param(value) for value in row) for row in rows]
    return names, rows


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


def rows_written_by(connection: Connection, kind: DbKind, batch_id: str) -> BatchRows:
    """What the app wrote for one batch, read back as driver values: the households and members
    it updated (their final state), its change-log rows and its submission rows."""
    batch = uuid.UUID(batch_id)
    key = batch.hex if kind == "sqlite" else batch
    sub_names, submissions = _raw_rows(connection, SUBMISSIONS, "batch_id", [key], kind)
    instance = sub_names.index("instance_id")
    change_names, changes = _raw_rows(
        connection, CHANGES, "submission_id", [row[instance] for row in submissions], kind
    )
    entity_type, entity_id = change_names.index("entity_type"), change_names.index("entity_id")
    ids: dict[str, list[Any]] = {"household": [], "member": []}
    for change in changes:
        ids[change[entity_type]].append(change[entity_id])
    households = _raw_rows(connection, HOUSEHOLDS, "id", ids["household"], kind)
    members = _raw_rows(connection, MEMBERS, "id", ids["member"], kind)
    # New change rows get new sequence numbers; new submissions, same content, new ids.
    seq = change_names.index("seq")
    changes_out = (
        [n for n in change_names if n != "seq"],
        [r[:seq] + r[seq + 1 :] for r in changes],
    )
    fresh = [uuid.uuid4() for _ in submissions]
    submissions_out = (
        sub_names,
        [
            (*r[:instance], new.hex if kind == "sqlite" else new, *r[instance + 1 :])
            for r, new in zip(submissions, fresh, strict=True)
        ],
    )
    return BatchRows(households, members, changes_out, submissions_out)


def _upsert(
    connection: Connection,
    kind: DbKind,
    table: Table,
    names: list[str],
    rows: list[tuple[Any, ...]],
) -> None:
    mark = "%s" if kind == "postgresql" else "?"
    assignments = ", ".join(f"{n} = excluded.{n}" for n in names if n != "id")
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(mark for _ in names)}) "
        f"ON CONFLICT (id) DO UPDATE SET {assignments}",
        rows,
    )


def _insert(
    connection: Connection,
    kind: DbKind,
    table: Table,
    names: list[str],
    rows: list[tuple[Any, ...]],
) -> None:
    if kind == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", rows
    )


def measure_raw(kind: DbKind, url: str, batch_ids: Sequence[str]) -> tuple[float, int, int]:
    """The same rows as the app's batches, written again in one transaction per batch with no
    application logic at all: rows read back as driver values and handed straight back to the
    driver — households and members upserted (`INSERT … ON CONFLICT (id) DO UPDATE` of every
    column, one executemany each), change-log and submission rows inserted (executemany on
    SQLite, COPY on PostgreSQL). Only the writing and the commit are timed. Returns (seconds,
    rows, submissions)."""
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            batches = [rows_written_by(connection, kind, batch_id) for batch_id in batch_ids]
            connection.rollback()
        seconds = 0.0
        for rows in batches:
            with db.engine.connect() as connection:
                started = time.perf_counter()
                with connection.begin():
                    _upsert(connection, kind, HOUSEHOLDS, *rows.households)
                    _upsert(connection, kind, MEMBERS, *rows.members)
                    _insert(connection, kind, CHANGES, *rows.changes)
                    _insert(connection, kind, SUBMISSIONS, *rows.submissions)
                seconds += time.perf_counter() - started
        return (
            seconds,
            sum(r.count for r in batches),
            sum(len(r.submissions[1]) for r in batches),
        )
    finally:
        db.dispose()


# --- memory ------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class MemoryFigures:
    traced_peak: int  # bytes allocated by Python at the peak (tracemalloc)
    rss_growth: int  # peak resident set size during the push minus before it
    seconds: float


def measure_memory(tablet: HttpTablet, body: bytes) -> MemoryFigures:
    """One push of `body` with tracemalloc on (it traces the server thread and the client) and
    the process's resident set size sampled every 2 ms."""
    peak_rss = before = _rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        while not done.wait(0.002):
            peak_rss = max(peak_rss, _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    sampler.start()
    started = time.perf_counter()
    try:
        response = tablet.push(body)
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert {r["status"] for r in response["results"]} == {"accepted"}
    return MemoryFigures(traced_peak, peak_rss - before, seconds)


# --- profile -----------------------------------------------------------------------------------


def profile_push(served: ServedApp, tablet: HttpTablet, body: bytes, lines: int = 30) -> str:
    """cProfile of one push handled in this thread (Flask's test client: the same WSGI app)."""
    client = served.app.test_client()
    profiler = cProfile.Profile()
    profiler.enable()
    response = client.post(
        "/api/v1/sync/push",
        data=body,
        headers={"Authorization": f"Bearer {tablet.token}", "Content-Type": "application/json"},
    )
    profiler.disable()
    assert response.status_code == 200, response.get_json()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    stats.print_callers(8)  # who calls the eight costliest functions
    stats.sort_stats("cumulative").print_stats(r"(server|forms|sync_protocol)/", lines)
    return out.getvalue()


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Options:
    batches: int
    profile: bool


def run(register: Register, options: Options) -> None:
    kind = register.kind
    count = (1 + options.batches + int(options.profile)) * BATCH_SIZE + MEMORY_BATCH_SIZE
    worker_households = WORKERS * (1 + WORKER_BATCHES) * BATCH_SIZE
    everyone = known_households(register.settings, count + worker_households)
    households, for_workers = everyone[:count], everyone[count:]
    # One worker process, as deployed (`gunicorn wsgi:app --workers=1`): the tablet runs in this
    # process and shares nothing with the server, not even the interpreter lock.
    with gunicorn_app(register.settings, 1) as url:
        tablet = HttpTablet.login(url, COUNTY_COLLECTOR, PASSWORD)
        bodies = visit_batches(tablet, households[:-MEMORY_BATCH_SIZE], BATCH_SIZE)
        measure_app(tablet, bodies[:1])  # warm-up: caches, connection pool, form definition
        app = measure_app(tablet, bodies[1 : 1 + options.batches])
    raw_seconds, raw_rows, raw_submissions = measure_raw(kind, register.url, app.batch_ids)
    # Memory and the profile need the server in this process.
    with served_app(register.settings) as served:
        tablet = HttpTablet.login(served.url, COUNTY_COLLECTOR, PASSWORD)
        memory_body = visit_batches(tablet, households[-MEMORY_BATCH_SIZE:], MEMORY_BATCH_SIZE)[0]
        memory = measure_memory(tablet, memory_body)
        profile = None
        if options.profile:  # the batch after the measured ones, for this tablet
            start = (1 + options.batches) * BATCH_SIZE
            body = visit_batches(tablet, households[start : start + BATCH_SIZE], BATCH_SIZE)[0]
            profile = profile_push(served, tablet, body)
    workers = measure_workers(register, for_workers)
    raw_per_second = raw_submissions / raw_seconds
    share = app.per_second / raw_per_second
    median = statistics.median(app.batch_seconds)
    print(f"\n== push on {kind} ({register.size.households:,}-household register)")
    print(
        f"app      : {app.per_second:,.0f} submissions/s, one worker, {options.batches} batches of "
        f"{BATCH_SIZE} (median batch {median:.2f} s; "
        f"batches {' '.join(f'{s:.2f}' for s in app.batch_seconds)} s)"
        f"   target >= {TARGETS[kind]:,}  {_verdict(app.per_second >= TARGETS[kind])}"
    )
    print(
        f"raw      : {raw_per_second:,.0f} submissions/s = {raw_rows / raw_seconds:,.0f} rows/s "
        f"({raw_rows / raw_submissions:.1f} rows per submission: 1 household + 4 members "
        "upserted, change-log and submission rows inserted, as driver values)"
    )
    print(
        f"app/raw  : {share:.0%}   target >= {TARGET_SHARE_OF_RAW:.0%}  "
        f"{_verdict(share >= TARGET_SHARE_OF_RAW)}"
    )
    print(
        f"workers  : {workers.per_second:,.0f} submissions/s with gunicorn --workers={WORKERS}, "
        f"{WORKERS} tablets pushing {WORKER_BATCHES} batches of {BATCH_SIZE} each at once "
        f"({workers.submissions:,} in {workers.seconds:.2f} s)"
    )
    traced = memory.traced_peak / 2**20
    print(
        f"memory   : {MEMORY_BATCH_SIZE:,}-submission batch: Python peak {traced:.0f} MB "
        f"(tracemalloc), resident set +{memory.rss_growth / 2**20:.0f} MB; "
        f"took {memory.seconds:.1f} s traced   target < {TARGET_MEMORY_MB} MB  "
        f"{_verdict(traced < TARGET_MEMORY_MB)}"
    )
    if profile:
        print(f"\n-- cProfile of one push of {BATCH_SIZE} on {kind}\n{profile}")


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: Iterator[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--batches", type=int, default=6, help="measured batches of 500")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of one push of 500"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    kinds = database_kinds(args.db)
    print_machine(kinds)
    for kind in kinds:
        with prepared_register(kind, "50k", reuse=args.reuse) as register:
            run(register, Options(batches=args.batches, profile=args.profile))


if __name__ == "__main__":
    main()
