"""Speed of a department import (部门信息比对): a 200,000-row medical-insurance list matched by
identity hash against the 50,000-household register of `register.py` (200,000 members), beside
the raw limit measured in the same run — the same file parsed alone, its identity numbers hashed
and looked up set-based, with nothing written.

The list names 190,000 registered members (a tenth of them with a register value it contradicts),
8,000 people not in the register and 2,000 rows given twice. Three imports are timed: the first
(every fact new), the same file again (unchanged: its hash only), and a next month's list with
a tenth of its values changed (every fact rewritten). Registers are kept under
/tmp/fieldsync-bench/departments and in the PostgreSQL database
`fieldsync_bench_departments_50k` (with `--reuse`), apart from the other benchmarks' copies.

    python bench/departments.py [--db sqlite|postgresql|both] [--reuse] [--rows 200000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterable
from pathlib import Path

import register
from register import add_common_arguments, database_kinds, prepared_register, print_machine
from sqlalchemy import select

from server.auth.actor import system_actor
from server.db import utcnow
from server.departments import importing
from server.departments.mapping import parse_mapping
from server.departments.models import ImportOrigin
from server.departments.reading import read_rows
from server.departments.sources import create_source
from server.households.models import Member
from server.runtime import Runtime

NAME = "fieldsync_bench_departments"
register.SQLITE_DIR = Path("/tmp/fieldsync-bench/departments")
register.BENCH_NAMES = (*register.BENCH_NAMES, NAME)  # type: ignore[assignment]
FILES = register.SQLITE_DIR / "files"
TARGET = 20_000  # rows a second (issue 11)
MAPPING = {
    "id_number": "身份证号",
    "name": "姓名",
    "date": "统计日期",
    "facts": {"insured": {"column": "参保状态"}, "medical_costs": {"column": "个人自付"}},
}
HEADER = "身份证号,姓名,参保状态,个人自付,统计日期\n"


def build_files(rt: Runtime, rows: int) -> tuple[Path, Path]:
    """The list and next month's, written as GB18030 CSV (as departments send them)."""
    with rt.db.unit_of_work(write=False) as session:
        ciphers = session.scalars(
            select(Member.id_number_cipher).where(Member.id_number_cipher.is_not(None))
        ).all()
    rng = random.Random(20261205)
    numbers = [rt.codec.reveal("id_number", c) for c in ciphers if c is not None]
    rng.shuffle(numbers)
    unknown, twice = rows * 4 // 100, rows // 100
    listed = numbers[: rows - unknown - twice]
    strangers = [f"99{rng.randrange(10**15):015d}{rng.randrange(10)}" for _ in range(unknown)]
    people = listed + strangers
    people += rng.sample(listed, twice)
    rng.shuffle(people)
    FILES.mkdir(parents=True, exist_ok=True)
    paths = (FILES / f"medical-{rows}.csv", FILES / f"medical-{rows}-next.csv")
    for path, flip in zip(paths, (0.0, 0.1), strict=True):
        choice = random.Random(7)
        lines = [HEADER]
        values: dict[str, str] = {}  # a person given twice is given the same values twice
        for number in people:
            if number not in values:
                insured = "是" if choice.random() > 0.1 else "否"
                if choice.random() < flip:
                    insured = "否" if insured == "是" else "是"
                values[number] = f"{insured},{choice.randrange(0, 500000) / 100:.2f}"
            lines.append(f"{number},某某,{values[number]},2026-11-30\n")
        path.write_bytes("".join(lines).encode("gb18030"))
    return paths


def raw_limit(rt: Runtime, content: bytes) -> dict[str, float]:
    """Seconds to parse the file, hash its identity numbers and look the hashes up set-based."""
    from server.departments.facts import Department

    mapping = parse_mapping(Department.MEDICAL_INSURANCE, MAPPING)
    started = time.perf_counter()
    rows = read_rows(content, mapping)
    parsed = time.perf_counter()
    hashes = list({rt.codec.lookup_hash("id_number", r.id_number) for r in rows})
    hashed = time.perf_counter()
    with rt.db.unit_of_work(write=False) as session:
        found = importing._find_members(session, hashes)
    looked = time.perf_counter()
    assert found
    return {"parse": parsed - started, "hash": hashed - parsed, "lookup": looked - hashed}


def timed_import(rt: Runtime, source_id: object, content: bytes) -> tuple[float, object]:
    from server.departments.models import DepartmentSource

    started = time.perf_counter()
    with rt.db.unit_of_work() as session:
        source = session.get(DepartmentSource, source_id)
        assert source is not None
        outcome = importing.import_content(
            session,
            system_actor("bench"),
            rt.codec,
            source,
            content,
            origin=ImportOrigin.COMMAND_LINE,
            filename="bench.csv",
            now=utcnow(),
        )
    return time.perf_counter() - started, outcome


def run(kind: register.DbKind, rows: int, reuse: bool) -> None:
    with prepared_register(kind, "50k", reuse=reuse, name=NAME) as reg:
        rt = Runtime.build(reg.settings)
        try:
            first_file, next_file = build_files(rt, rows)
            content, next_content = first_file.read_bytes(), next_file.read_bytes()
            with rt.db.unit_of_work() as session:
                source_id = create_source(
                    session,
                    system_actor("bench"),
                    {
                        "name": "medical",
                        "department": "medical_insurance",
                        "mapping": MAPPING,
                        "list_kind": "full",
                    },
                ).id
            limit = raw_limit(rt, content)
            raw = sum(limit.values())
            print(f"\n[{kind}] {rows} rows, {len(content) / 2**20:.1f} MiB GB18030 CSV")
            print(
                f"  raw limit: parse {limit['parse']:.2f} s + hash {limit['hash']:.2f} s + "
                f"lookup {limit['lookup']:.2f} s = {raw:.2f} s → {rows / raw:,.0f} rows/s"
            )
            for label, data in (
                ("first import", content),
                ("same file again", content),
                ("next month (10 % changed)", next_content),
            ):
                seconds, outcome = timed_import(rt, source_id, data)
                record = outcome.record  # type: ignore[attr-defined]
                rate = rows / seconds
                print(
                    f"  {label}: {seconds:.2f} s → {rate:,.0f} rows/s "
                    f"({rate / TARGET:.2f}× the 20,000 rows/s target, {raw / seconds:.2f}× the "
                    f"raw limit's speed); matched {record.matched}, unmatched "
                    f"{record.unmatched}, duplicates {record.duplicates}, mismatched "
                    f"{record.mismatched}, facts written {record.facts_written}"
                    + (" [unchanged]" if outcome.unchanged else "")  # type: ignore[attr-defined]
                )
        finally:
            rt.db.dispose()


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(None if argv is None else list(argv))
    kinds = database_kinds(args.db)
    print_machine(kinds)
    for kind in kinds:
        run(kind, args.rows, args.reuse)


if __name__ == "__main__":
    main()
