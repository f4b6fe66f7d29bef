"""Export speed and memory on the benchmark register: the members of every household (four per
household: 200,000 rows at 50k, 2,000,000 at 500k) as CSV and XLSX through the export service,
beside the raw limits measured in the same run — PostgreSQL `COPY (SELECT …) TO STDOUT WITH CSV`
of the same columns, on SQLite a plain cursor loop into csv.writer, for XLSX openpyxl's
write-only mode fed the same rows from a list — plus peak RSS of each exporting process and an
incremental export of 1,000 changes. Prints figures; never part of the tests.

    python bench/export.py [--size 50k|500k] [--db sqlite|postgresql|both] [--reuse]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import multiprocessing
import os
import resource
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
from register import (
    SIZES,
    SQLITE_DIR,
    Register,
    _Postgres,
    _remove_sqlite,
    add_common_arguments,
    bench_settings,
    database_kinds,
    prepared_register,
    print_machine,
)
from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url

from server import migrate
from server.auth.actor import system_actor
from server.changes.models import Change
from server.config import Settings
from server.db import utcnow
from server.exports import service
from server.exports.registry import ExportFilters
from server.households.models import Household
from server.runtime import Runtime
from server.sync.feed import transaction_marker

NAME = "fieldsync_bench_exports"
MEMBER_SQL = """
    SELECT m.id, m.household_id, h.household_no, h.village_code, m.name, m.id_number_masked,
           m.relation, m.sex, m.birth_date, m.in_school, m.education_level, m.health,
           m.disability, m.labor_capacity, m.insured, m.employment, m.phone_masked, m.extra,
           m.rev, m.updated_at
    FROM members m JOIN households h ON h.id = m.household_id
    WHERE h.merged_into_id IS NULL AND NOT h.deleted AND NOT m.deleted
"""


class NullSink:
    """A text or binary sink that only counts."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(work: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `work` in a fresh process (spawned, not forked: a forked child would start with this
    process's memory and report its high-water mark); its result and that process's peak RSS."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_run_in_child, args=(work, args, child))
    process.start()
    result: dict[str, Any] = parent.recv()
    process.join()
    return result


def _run_in_child(work: Callable[..., dict[str, Any]], args: tuple[Any, ...], conn: Any) -> None:
    result = work(*args)
    result["rss_mb"] = peak_rss_mb()
    conn.send(result)


def _counted(rows: Iterator[list[Any]], into: list[int]) -> Iterator[list[Any]]:
    for row in rows:
        into[0] += 1
        yield row


def ours(settings: Settings, fmt: str) -> dict[str, Any]:
    rt = Runtime.build(settings)
    count = [0]
    started = time.perf_counter()
    cpu_started = time.process_time()
    with rt.db.unit_of_work(write=False) as session:
        plan = service.plan_export(
            session, system_actor(), settings, "members", service.ExportOptions()
        )
    size = 0
    with tempfile.TemporaryFile() as out:
        for chunk in service.render(
            rt.db, rt.codec, [plan], fmt, rows=lambda r: _counted(r, count)
        ):
            out.write(chunk)
            size += len(chunk)
    seconds = time.perf_counter() - started
    rt.db.dispose()
    return {
        "rows": count[0],
        "seconds": seconds,
        "bytes": size,
        "cpu": time.process_time() - cpu_started,
    }


def raw_csv(kind: str, url: str) -> dict[str, Any]:
    started = time.perf_counter()
    cpu_started = time.process_time()
    sink = NullSink()
    rows = 0
    if kind == "postgresql":
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain) as conn, conn.cursor() as cur:
            with cur.copy(f"COPY ({MEMBER_SQL}) TO STDOUT WITH CSV HEADER") as copy:
                for block in copy:
                    sink.write(block)
                    rows += bytes(block).count(b"\n")
            rows -= 1
    else:
        lite = sqlite3.connect(make_url(url).database or "")
        cursor = lite.execute(MEMBER_SQL)
        writer = csv.writer(sink)
        writer.writerow([d[0] for d in cursor.description or ()])
        for row in cursor:
            writer.writerow(row)
            rows += 1
        lite.close()
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "bytes": sink.size,
        "cpu": time.process_time() - cpu_started,
    }


def raw_xlsx(settings: Settings) -> dict[str, Any]:
    """openpyxl write-only fed the export's own cell rows from a list (reading them untimed)."""
    rt = Runtime.build(settings)
    with rt.db.unit_of_work(write=False) as session:
        plan = service.plan_export(
            session, system_actor(), settings, "members", service.ExportOptions()
        )
    from server.exports.formats import xlsx_converter

    convert = xlsx_converter(plan.columns, "code")
    rows = [convert(row) for row in service.stream_rows(rt.db, rt.codec, plan)]
    rt.db.dispose()
    from openpyxl import Workbook

    started = time.perf_counter()
    cpu_started = time.process_time()
    book = Workbook(write_only=True)
    sheet = book.create_sheet("members")
    sheet.append([c.zh for c in plan.columns])
    for row in rows:
        sheet.append(row)
    with tempfile.TemporaryFile() as out:
        book.save(out)
    return {
        "rows": len(rows),
        "seconds": time.perf_counter() - started,
        "bytes": 0,
        "cpu": time.process_time() - cpu_started,
    }


def incremental(settings: Settings, changes: int) -> dict[str, Any]:
    """Cursor, then `changes` household writes logged as sync logs them, then the export."""
    rt = Runtime.build(settings)
    with rt.db.unit_of_work(write=False) as session:
        start = service.plan_export(
            session, system_actor(), settings, "households", service.ExportOptions()
        )
        picked = session.execute(
            select(Household.id, Household.village_code, Household.rev).limit(changes)
        ).all()
    with rt.db.unit_of_work() as session:
        txid = transaction_marker(session)
        now = utcnow()
        rows = []
        for household_id, village, rev in picked:
            session.execute(
                update(Household)
                .where(Household.id == household_id)
                .values(annual_income=Decimal("12345.00"), rev=rev + 1)
            )
            rows.append(
                {
                    "entity_type": "household",
                    "entity_id": household_id,
                    "fields": {"annual_income": 12345},
                    "clock": "1764900000000-00000-server",
                    "rev": rev + 1,
                    "village_code": village,
                    "txid": txid,
                    "changed_at": now,
                }
            )
        session.execute(insert(Change), rows)
    started = time.perf_counter()
    cpu_started = time.process_time()
    count = [0]
    options = service.ExportOptions(filters=ExportFilters(), cursor=start.next_cursor)
    with rt.db.unit_of_work(write=False) as session:
        plan = service.plan_export(session, system_actor(), settings, "households", options)
    size = 0
    for chunk in service.render(rt.db, rt.codec, [plan], "csv", rows=lambda r: _counted(r, count)):
        size += len(chunk)
    seconds = time.perf_counter() - started
    rt.db.dispose()
    return {
        "rows": count[0],
        "seconds": seconds,
        "bytes": size,
        "cpu": time.process_time() - cpu_started,
    }


@contextlib.contextmanager
def upgraded_saved_register(kind: str, size_name: str) -> Iterator[Register]:
    """A working copy of this benchmark's saved register whatever schema it was saved at,
    migrated to head (later migrations only add tables the export does not read), dropped
    afterwards. For a busy machine, where rebuilding the register takes longer than the run."""
    size = SIZES[size_name]
    if kind == "sqlite":
        saved = SQLITE_DIR / f"{NAME}-register-{size.name}.db"
        work = SQLITE_DIR / f"{NAME}-work-{os.getpid()}-{size.name}.db"
        assert saved.exists(), f"no saved register {saved}"
        shutil.copyfile(saved, work)
        try:
            url = f"sqlite:///{work}"
            migrate.upgrade(url)
            yield Register("sqlite", size, url, bench_settings(url), None)
        finally:
            _remove_sqlite(work)
        return
    server = _Postgres()
    saved_name = f"{NAME}_{size.name}"
    assert server.exists(saved_name), f"no saved register {saved_name}"
    try:
        server.create(NAME, template=saved_name)
        url = server.url(NAME)
        migrate.upgrade(url)
        yield Register("postgresql", size, url, bench_settings(url), None)
    finally:
        server.drop(NAME)
        server.dispose()


def _rate(result: dict[str, Any]) -> float:
    return float(result["rows"]) / result["seconds"] if result["seconds"] else 0.0


def _line(label: str, result: dict[str, Any]) -> str:
    return (
        f"  {label:<34} {result['rows']:>10,} rows {result['seconds']:8.1f} s "
        f"{_rate(result):>10,.0f} rows/s  CPU {result['cpu']:7.1f} s  "
        f"peak RSS {result['rss_mb']:6.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--size", choices=sorted(SIZES), default="50k")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--skip-xlsx", action="store_true")
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument(
        "--saved-any-schema",
        action="store_true",
        help="use the saved register even if saved at an older schema (migrated on a copy)",
    )
    args = parser.parse_args()
    kinds = database_kinds(args.db)
    print_machine(kinds)
    print(f"load average at start: {os.getloadavg()}")
    for kind in kinds:
        if args.saved_any_schema:
            prepared = upgraded_saved_register(kind, args.size)
        else:
            prepared = prepared_register(kind, args.size, reuse=args.reuse, name=NAME)
        with prepared as register:
            settings = register.settings
            print(f"{kind} ({args.size} register):")
            # One unmeasured pass first: the register was just copied or built, and whichever
            # export ran first would otherwise pay for reading it from disk.
            in_child(raw_csv, kind, register.url)
            if not args.skip_csv:
                ours_csv = in_child(ours, settings, "csv")
                limit_csv = in_child(raw_csv, kind, register.url)
                print(_line("CSV export (service)", ours_csv))
                raw = "COPY … TO STDOUT (raw)" if kind == "postgresql" else "cursor→csv (raw)"
                print(_line(raw, limit_csv))
                ratio = _rate(ours_csv) / _rate(limit_csv)
                print(
                    f"  CSV ratio {ratio:.0%} of raw (target ≥ 50 %); by this process's CPU time "
                    f"{limit_csv['cpu'] / ours_csv['cpu']:.0%}"
                )
            if not args.skip_xlsx:
                ours_xlsx = in_child(ours, settings, "xlsx")
                limit_xlsx = in_child(raw_xlsx, settings)
                print(_line("XLSX export (service)", ours_xlsx))
                print(_line("openpyxl write-only from a list", limit_xlsx))
                print(
                    f"  XLSX ratio {_rate(ours_xlsx) / _rate(limit_xlsx):.0%} of openpyxl's own "
                    f"(target ≥ 70 %); by this process's CPU time "
                    f"{limit_xlsx['cpu'] / ours_xlsx['cpu']:.0%}"
                )
            change = in_child(incremental, settings, args.changes)
            print(_line(f"incremental, {args.changes} changes", change))
            print(f"  load average now: {os.getloadavg()}")


if __name__ == "__main__":
    main()
