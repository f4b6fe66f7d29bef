"""Time of one page of the quarantine listing (`server.submissions.service.quarantine`) when most
rejected submissions have been reviewed: the review is a column now, so a page of the waiting ones
is one indexed SELECT however many were dismissed before it.

Builds the demo county in its own databases (SQLite under /tmp/fieldsync-bench/, PostgreSQL
`fieldsync_bench_quarantine`, dropped afterwards), adds `--rejected` rejected submissions spread
over its villages of which `--reviewed` (a share) are dismissed, and prints the median and p95 of
`--repeat` calls per page for a county supervisor and a township one, and PostgreSQL's plan of
the waiting page. There is no stated limit: figures only.

    python bench/quarantine.py [--rejected 20000] [--reviewed 0.9] [--repeat 20] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import timedelta

from register import SQLITE_DIR, _Postgres, bench_settings, print_machine
from sqlalchemy import insert, select, text

from server import migrate
from server.app import create_app
from server.auth.actor import Actor
from server.db import utcnow
from server.demo.county import TOWNSHIP_CODES, VILLAGE_CODES
from server.demo.service import load_demo_county
from server.devices.models import Device
from server.runtime import Runtime
from server.submissions import service
from server.submissions.models import ReviewStatus, Submission, SubmissionStatus
from server.users.models import RegionGrant, Role, User

DATABASE = "fieldsync_bench_quarantine"
PAGE = 50


def _fill(rt: Runtime, rejected: int, reviewed: float) -> tuple[Actor, Actor]:
    villages = [v for township in TOWNSHIP_CODES for v in VILLAGE_CODES[township]]
    with rt.db.unit_of_work() as session:
        load_demo_county(session, rt.codec, rt.passwords)
        users = dict(session.execute(select(User.username, User.id)).tuples().all())
        device_id = uuid.uuid4()
        session.add(Device(id=device_id, registered_by_id=users["collector1"], highest_seq=0))
        session.flush()
        now = utcnow()
        every = round(1 / (1 - reviewed)) if reviewed < 1 else rejected + 1
        rows = []
        for n in range(rejected):
            is_waiting = n % every == 0
            rows.append(
                {
                    "instance_id": uuid.uuid4(),
                    "batch_id": uuid.uuid4(),
                    "device_id": device_id,
                    "user_id": users["collector1"],
                    "form_id": "household_visit",
                    "form_version": 99,
                    "hlc": f"{1764000000000 + n}-00000-bench",
                    "payload": {"form_id": "household_visit", "data": {"n": n}},
                    "content_hash": "sha256:" + "0" * 64,
                    "status": SubmissionStatus.REJECTED,
                    "result": {},
                    "errors": [{"path": "form_version", "code": "unknown_form_version"}],
                    "quarantine_reason": "unknown form version",
                    "village_code": villages[n % len(villages)],
                    "received_at": now - timedelta(seconds=rejected - n),
                    "review_status": None if is_waiting else ReviewStatus.DISMISSED,
                    "reviewed_by_id": None if is_waiting else users["supervisor"],
                    "reviewed_at": None if is_waiting else now,
                    "review_reason": None if is_waiting else "bench",
                }
            )
        for start in range(0, len(rows), 2000):
            session.execute(insert(Submission), rows[start : start + 2000])
        grants = tuple(
            session.scalars(
                select(RegionGrant.region_code).where(RegionGrant.user_id == users["supervisor"])
            )
        )
    supervisor = users["supervisor"]
    county = Actor(user_id=supervisor, username="supervisor", role=_role(rt), region_codes=grants)
    township = Actor(
        user_id=supervisor, username="supervisor", role=_role(rt), region_codes=TOWNSHIP_CODES[:1]
    )
    return county, township


def _role(rt: Runtime) -> Role:
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(select(User.role).where(User.username == "supervisor")).one()


def _time(rt: Runtime, actor: Actor, review: str, offset: int, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with rt.db.unit_of_work(write=False) as session:
            service.quarantine(
                session, actor, rt.settings, rt.codec, limit=PAGE, offset=offset, review=review
            )
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def _run(kind: str, url: str, args: argparse.Namespace) -> None:
    migrate.upgrade(url)
    app = create_app(bench_settings(url))
    rt: Runtime = app.extensions["fieldsync"]
    try:
        county, township = _fill(rt, args.rejected, args.reviewed)
        if kind == "postgresql":
            with rt.db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        print(f"\n{kind}: {args.rejected} rejected, {args.reviewed:.0%} of them dismissed")
        print(f"{'page':<40} {'median ms':>10} {'p95 ms':>8}")
        for who, actor in (("county", county), ("township", township)):
            for review, offset in (("waiting", 0), ("waiting", 1000), ("dismissed", 0), ("all", 0)):
                median, p95 = _time(rt, actor, review, offset, args.repeat)
                name = f"{who} supervisor, {review}, offset {offset}"
                print(f"{name:<40} {median:>10.1f} {p95:>8.1f}")
        if kind == "postgresql":
            with rt.db.unit_of_work(write=False) as session:
                statement = (
                    select(Submission.instance_id)
                    .where(
                        Submission.status == SubmissionStatus.REJECTED,
                        Submission.review_status.is_(None),
                        service._reviewable(township),
                    )
                    .order_by(Submission.received_at.desc(), Submission.instance_id)
                    .limit(PAGE)
                )
                compiled = statement.compile(rt.db.engine, compile_kwargs={"literal_binds": True})
                plan = session.execute(text(f"EXPLAIN {compiled}")).scalars().all()
            print("plan of the township supervisor's waiting page:")
            print("\n".join(f"  {line}" for line in plan))
    finally:
        rt.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rejected", type=int, default=20000)
    parser.add_argument("--reviewed", type=float, default=0.9)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    print_machine(["sqlite"] if args.sqlite_only else ["sqlite", "postgresql"])
    SQLITE_DIR.mkdir(parents=True, exist_ok=True)
    path = SQLITE_DIR / "quarantine.db"
    try:
        for leftover in SQLITE_DIR.glob("quarantine.db*"):
            leftover.unlink()
        _run("sqlite", f"sqlite:///{path}", args)
    finally:
        for leftover in SQLITE_DIR.glob("quarantine.db*"):
            leftover.unlink()
    if args.sqlite_only:
        return
    server = _Postgres()
    try:
        server.create(DATABASE)
        _run("postgresql", server.url(DATABASE), args)
    finally:
        server.drop(DATABASE)
        server.dispose()


if __name__ == "__main__":
    main()
