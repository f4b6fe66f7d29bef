"""The fixed cost of everyday sync requests: what an authenticated no-op (`GET /api/v1/auth/me`),
a push of 1 and of 5 visits, and an incremental pull cost per request — time and SQL statements —
in process (Flask's test client, no HTTP), then their throughput over HTTP against the app as
deployed (`gunicorn -c gunicorn.conf.py wsgi:app`) with N tablets at once, each on its own
keep-alive connection.

The register is the demo county (611 households in a dozen villages), loaded fresh; every
tablet is a collector of its own with one village, so tablets of one village push visits to the
same households. Cheap password hashing: logins are not what is measured here.

    python bench/sync_overhead.py [--db sqlite|postgresql|both] [--clients 16,64] [--seconds 8]
                                  [--no-http] [--profile push5]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import multiprocessing
import os
import pstats
import random
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from register import POSTGRES_ADMIN_URL, print_machine
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from tablet import KnownHousehold, base_revs, gunicorn_app, known_households, visit_answers

from server import migrate
from server.app import create_app
from server.auth.actor import system_actor
from server.auth.passwords import PasswordHasher
from server.config import Settings
from server.db import Database
from server.demo.county import VILLAGE_CODES
from server.demo.service import load_demo_county
from server.runtime import Runtime
from server.sensitive import SensitiveCodec
from server.users.models import Role, User
from server.users.service import create_user
from sync_protocol.clock import HybridClock

WORK_DIR = Path("/tmp/fieldsync-overhead")
WORK_DATABASE = "fieldsync_overhead"
PASSWORD = "overhead-password-2026"
IN_PROCESS_RUNS = 60
VILLAGES = [code for codes in VILLAGE_CODES.values() for code in codes]
SHAPES = ("noop", "push1", "push5", "pull", "sync5")


# --- the register ------------------------------------------------------------------------------


def settings_for(url: str) -> Settings:
    instance = WORK_DIR / "instance"
    return Settings(
        database_url=url,
        instance_dir=instance,
        attachment_dir=instance / "attachments",
        secret_key="overhead-bench-secret-key-of-enough-length",
        log_level="WARNING",
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
    )


def fresh_database(kind: str) -> str:
    if kind == "sqlite":
        shutil.rmtree(WORK_DIR, ignore_errors=True)
        WORK_DIR.mkdir(parents=True)
        return f"sqlite:///{WORK_DIR / 'fieldsync.db'}"
    import psycopg

    admin = make_url(POSTGRES_ADMIN_URL)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{WORK_DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{WORK_DATABASE}"')
    return admin.set(database=WORK_DATABASE).render_as_string(hide_password=False)


class _OneHash(PasswordHasher):
    """Hashes every account's (equal) password once: an account per tablet at full cost would
    take minutes to create, and the server checks the hash the same either way."""

    def hash(self, password: str) -> str:
        made: dict[str, str] = self.__dict__.setdefault("_made", {})
        if password not in made:
            made[password] = super().hash(password)
        return made[password]


def build_register(kind: str, tablets: int, *, production_hashing: bool = False) -> Settings:
    """The demo county and `tablets` collectors (`tab0`, `tab1`, …), each with one village.
    With `production_hashing`, passwords are hashed (and checked) at the default cost."""
    settings = settings_for(fresh_database(kind))
    if production_hashing:
        defaults = Settings()
        settings = dataclasses.replace(
            settings,
            password_hash_time_cost=defaults.password_hash_time_cost,
            password_hash_memory_kib=defaults.password_hash_memory_kib,
        )
    migrate.upgrade(settings.database_url, data_key=settings.data_key_bytes)
    db = Database(settings.database_url)
    passwords = _OneHash(
        time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
    )
    try:
        with db.unit_of_work() as session:
            load_demo_county(session, SensitiveCodec(settings.data_key_bytes), passwords)
            for number in range(tablets):
                create_user(
                    session,
                    passwords,
                    username=f"tab{number}",
                    password=PASSWORD,
                    role=Role.COLLECTOR,
                    regions=[VILLAGES[number % len(VILLAGES)]],
                )
        with db.unit_of_work(write=False) as session:
            assert session.scalar(select(User.id).where(User.username == "tab0")) is not None
    finally:
        db.dispose()
    _ = system_actor
    return settings


# --- a lean tablet -----------------------------------------------------------------------------


@dataclass
class Tablet:
    """One collector's device: its token, its village's households, its clock and sequence."""

    token: str
    device_id: str
    households: list[KnownHousehold]
    rng: random.Random
    clock: HybridClock
    cursor: str | None = None
    seq: int = 0
    # A few visits' answers per household, made once (the client's CPU is the server's too).
    answers: dict[uuid.UUID, list[dict[str, Any]]] | None = None

    def push_body(self, visits: int) -> bytes:
        now = datetime.now(UTC)
        if self.answers is None:
            self.answers = {
                h.id: [visit_answers(h, self.rng, now) for _ in range(3)] for h in self.households
            }
        submissions = []
        for household in self.rng.sample(self.households, visits):
            self.seq += 1
            submissions.append(
                {
                    "instance_id": str(uuid.uuid4()),
                    "form_id": "household_visit",
                    "form_version": 1,
                    "collected_at": now.isoformat(),
                    "hlc": str(self.clock.now()),
                    "device_seq": self.seq,
                    "base_revs": base_revs(household),
                    "data": self.rng.choice(self.answers[household.id]),
                }
            )
        body = {
            "device_id": self.device_id,
            "batch_id": str(uuid.uuid4()),
            "clock": str(self.clock.now()),
            "submissions": submissions,
        }
        return json.dumps(body, ensure_ascii=False).encode()


def village_households(settings: Settings) -> dict[str, list[KnownHousehold]]:
    return {
        village: known_households(settings, 20, village=village, seed=index)
        for index, village in enumerate(VILLAGES)
    }


# --- in process --------------------------------------------------------------------------------


@contextmanager
def counted_statements(rt: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)


@dataclass
class Cost:
    shape: str
    milliseconds: list[float]
    cpu_milliseconds: list[float]
    statements: int
    response_bytes: int

    def line(self) -> str:
        ms = sorted(self.milliseconds)
        return (
            f"  {self.shape:<6} p50 {statistics.median(ms):6.1f} ms   "
            f"p95 {ms[int(len(ms) * 0.95)]:6.1f} ms   "
            f"CPU p50 {statistics.median(self.cpu_milliseconds):6.1f} ms   "
            f"{self.statements:3d} statements   "
            f"{self.response_bytes:6,d} response bytes"
        )


def in_process(
    settings: Settings, households: dict[str, list[KnownHousehold]], profile: str
) -> None:
    from server.serving import tune_for_serving

    app = create_app(settings)
    tune_for_serving()
    rt: Runtime = app.extensions["fieldsync"]
    client = app.test_client()
    device_id = str(uuid.uuid4())
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "tab0", "password": PASSWORD, "device_id": device_id},
    )
    assert login.status_code == 200, login.get_json()
    token = login.get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    tablet = Tablet(
        token, device_id, households[VILLAGES[0]], random.Random(1), HybridClock(device_id)
    )
    cursor = None
    while True:
        page = client.get(
            "/api/v1/sync/pull", query_string={"cursor": cursor} if cursor else {}, headers=headers
        ).get_json()
        cursor = page["cursor"]
        if not page["more"]:
            break

    def noop() -> Any:
        return client.get("/api/v1/auth/me", headers=headers)

    def push(visits: int) -> Callable[[], Any]:
        def run() -> Any:
            body = tablet.push_body(visits)
            response = client.post(
                "/api/v1/sync/push",
                data=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.get_json()
            return response

        return run

    def pull() -> Any:
        nonlocal cursor
        response = client.get("/api/v1/sync/pull", query_string={"cursor": cursor}, headers=headers)
        assert response.status_code == 200, response.get_json()
        cursor = response.get_json()["cursor"]
        return response

    runs: dict[str, Callable[[], Any]] = {
        "noop": noop,
        "push1": push(1),
        "push5": push(5),
        "pull": pull,
    }
    print("in process (Flask test client, one request at a time):")
    for shape, run in runs.items():
        run()  # warm
        times: list[float] = []
        cpu_times: list[float] = []
        counted = 0
        size = 0
        profiler = (
            cProfile.Profile(time.thread_time) if profile == shape else None
        )  # CPU time: waits on the database are not what a profile of our code should show
        for _ in range(IN_PROCESS_RUNS):
            with counted_statements(rt) as statements:
                if profiler:
                    profiler.enable()
                started, cpu_started = time.perf_counter(), time.thread_time()
                response = run()
                times.append((time.perf_counter() - started) * 1000)
                cpu_times.append((time.thread_time() - cpu_started) * 1000)
                if profiler:
                    profiler.disable()
            counted, size = len(statements), len(response.data)
        print(Cost(shape, times, cpu_times, counted, size).line())
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
            if os.environ.get("OVERHEAD_PROFILE_DUMP"):
                profiler.dump_stats(os.environ["OVERHEAD_PROFILE_DUMP"])
            print(out.getvalue())
    if os.environ.get("OVERHEAD_SHOW_SQL"):
        for shape, run in runs.items():
            with counted_statements(rt) as statements:
                run()
            print(f"-- {shape}")
            for statement in statements:
                print("   ", " ".join(statement.split())[:160])
    rt.db.dispose()


# --- over HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    url: str
    shape: str
    seconds: float
    tablets: list[tuple[str, str, str]]  # username, token, device id
    households: dict[str, list[dict[str, Any]]]


def _client_process(job: Job) -> tuple[list[float], int, int]:
    """Run one thread per tablet of `job` for `job.seconds`, each on a keep-alive session.
    Returns every sync's seconds, the number of submissions and of errors."""
    latencies: list[float] = []
    counts = [0, 0]
    lock = threading.Lock()
    ready = threading.Barrier(len(job.tablets))

    def run(index: int, username: str, token: str, device_id: str) -> None:
        village = VILLAGES[int(username[3:]) % len(VILLAGES)]
        households = [_known_from(h) for h in job.households[village]]
        tablet = Tablet(token, device_id, households, random.Random(index), HybridClock(device_id))
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        cursor = _pull_to_end(http, job.url, None)
        tablet.push_body(1)  # makes its answers
        mine: list[float] = []
        submissions = errors = 0
        ready.wait()
        stop = time.monotonic() + job.seconds
        while time.monotonic() < stop:
            visits = {"push1": 1, "push5": 5, "sync5": 5}.get(job.shape, 0)
            body = tablet.push_body(visits) if visits else b""
            began = time.perf_counter()
            try:
                if job.shape == "noop":
                    ok = http.get(f"{job.url}/api/v1/auth/me", timeout=120).status_code == 200
                elif job.shape == "pull":
                    cursor = _pull_to_end(http, job.url, cursor)
                    ok = True
                else:
                    response = http.post(
                        f"{job.url}/api/v1/sync/push",
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=120,
                    )
                    ok = response.status_code == 200 and all(
                        r["status"] == "accepted" for r in response.json()["results"]
                    )
                    if ok and job.shape == "sync5":
                        cursor = _pull_to_end(http, job.url, cursor)
                    submissions += visits if ok else 0
            except (requests.RequestException, ValueError):
                ok = False
            mine.append(time.perf_counter() - began)
            errors += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            counts[0] += submissions
            counts[1] += errors

    threads = [
        threading.Thread(target=run, args=(index, *tablet))
        for index, tablet in enumerate(job.tablets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, counts[0], counts[1]


def _pull_to_end(http: requests.Session, url: str, cursor: str | None) -> str:
    while True:
        params = {"cursor": cursor} if cursor else {}
        response = http.get(f"{url}/api/v1/sync/pull", params=params, timeout=120)
        response.raise_for_status()
        page = response.json()
        cursor = str(page["cursor"])
        if not page["more"]:
            return cursor


def _known_from(raw: dict[str, Any]) -> KnownHousehold:
    from datetime import date
    from decimal import Decimal

    from tablet import KnownMember

    return KnownHousehold(
        id=uuid.UUID(raw["id"]),
        village_code=raw["village_code"],
        annual_income=Decimal(raw["annual_income"]) if raw["annual_income"] else None,
        rev=raw["rev"],
        members=tuple(
            KnownMember(
                id=uuid.UUID(m["id"]),
                name=m["name"],
                birth_date=date.fromisoformat(m["birth_date"]),
                insured=m["insured"],
                health=m["health"],
                employment=m["employment"],
            )
            for m in raw["members"]
        ),
        member_revs=tuple(raw["member_revs"]),
    )


def _raw(household: KnownHousehold) -> dict[str, Any]:
    return {
        "id": str(household.id),
        "village_code": household.village_code,
        "annual_income": str(household.annual_income) if household.annual_income else None,
        "rev": household.rev,
        "members": [
            {
                "id": str(m.id),
                "name": m.name,
                "birth_date": m.birth_date.isoformat(),
                "insured": m.insured,
                "health": m.health,
                "employment": m.employment,
            }
            for m in household.members
        ],
        "member_revs": list(household.member_revs),
    }


def over_http(
    settings: Settings,
    households: dict[str, list[KnownHousehold]],
    clients: list[int],
    seconds: float,
    processes: int,
) -> None:
    raw = {village: [_raw(h) for h in known] for village, known in households.items()}
    with gunicorn_app(settings, int(os.environ.get("OVERHEAD_WORKERS", "0")) or None) as url:
        tablets = []
        for number in range(max(clients)):
            device_id = str(uuid.uuid4())
            response = requests.post(
                f"{url}/api/v1/auth/login",
                json={"username": f"tab{number}", "password": PASSWORD, "device_id": device_id},
                timeout=120,
            )
            response.raise_for_status()
            tablets.append((f"tab{number}", response.json()["token"], device_id))
        print(f"over HTTP ({url}, gunicorn.conf.py), {seconds:.0f} s per shape:")
        for count in clients:
            rates: dict[str, float] = {}
            for shape in SHAPES:
                chosen = tablets[:count]
                parts = [chosen[i::processes] for i in range(processes)]
                jobs = [Job(url, shape, seconds, part, raw) for part in parts if part]
                with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
                    results = pool.map(_client_process, jobs)
                latencies = sorted(x for r in results for x in r[0])
                submissions = sum(r[1] for r in results)
                errors = sum(r[2] for r in results)
                rate = len(latencies) / seconds
                rates[shape] = rate
                p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0
                p95 = latencies[int(len(latencies) * 0.95)] * 1000 if latencies else 0
                p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0
                print(
                    f"  {count:3d} tablets {shape:<6} {rate:7.1f} requests/s  "
                    f"{submissions / seconds:7.1f} submissions/s  p50 {p50:6.0f} ms  "
                    f"p95 {p95:6.0f} ms  p99 {p99:6.0f} ms  errors {errors}"
                )
            if rates.get("noop"):
                print(
                    f"  {count:3d} tablets: push1 at {rates['push1'] / rates['noop']:.0%} of the "
                    "no-op rate"
                )


def _cold_tablet(url: str, number: int) -> tuple[float, float, int, bool]:
    """Log in as `tab{number}` on a new device and pull its village to the end: the seconds
    the login and the whole took, the entities received, and whether all went well."""
    began = time.perf_counter()
    http = requests.Session()
    try:
        response = http.post(
            f"{url}/api/v1/auth/login",
            json={"username": f"tab{number}", "password": PASSWORD, "device_id": str(uuid.uuid4())},
            timeout=300,
        )
        response.raise_for_status()
        logged_in = time.perf_counter() - began
        http.headers["Authorization"] = f"Bearer {response.json()['token']}"
        cursor, entities = None, 0
        while True:
            params: dict[str, str] = {"cursor": cursor} if cursor else {}
            page = http.get(f"{url}/api/v1/sync/pull", params=params, timeout=300)
            page.raise_for_status()
            body = page.json()
            entities += len(body["entities"])
            cursor = body["cursor"]
            if not body["more"]:
                break
        return logged_in, time.perf_counter() - began, entities, entities > 0
    except (requests.RequestException, ValueError):
        return 0.0, time.perf_counter() - began, 0, False


def _cold_process(job: tuple[str, list[int], float]) -> list[tuple[float, float, int, bool]]:
    url, numbers, start_at = job
    results: list[tuple[float, float, int, bool]] = [(0.0, 0.0, 0, False)] * len(numbers)

    def run(index: int, number: int) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        results[index] = _cold_tablet(url, number)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(numbers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def cold_start(kind: str, tablets: int, processes: int) -> None:
    """`tablets` tablets logging in (passwords at the default Argon2 cost) and pulling their
    village all at once, on a server that has just started."""
    settings = build_register(kind, tablets, production_hashing=True)
    with gunicorn_app(settings) as url:
        start_at = time.time() + 2.0
        parts = [list(range(tablets))[i::processes] for i in range(processes)]
        jobs = [(url, part, start_at) for part in parts if part]
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            results = [r for part in pool.map(_cold_process, jobs) for r in part]
    logins = sorted(r[0] for r in results if r[3])
    wholes = sorted(r[1] for r in results if r[3])
    failed = sum(1 for r in results if not r[3])
    entities = sum(r[2] for r in results)
    if not wholes:
        print(f"  cold start, {tablets} tablets: every one failed")
        return
    print(
        f"  cold start, {tablets} tablets at once: all done in {wholes[-1]:.1f} s "
        f"(login p50 {statistics.median(logins):.1f} s, "
        f"p95 {logins[int(len(logins) * 0.95)]:.1f} s; "
        f"login + first pull p50 {statistics.median(wholes):.1f} s, "
        f"p95 {wholes[int(len(wholes) * 0.95)]:.1f} s), {entities:,} entities, failed {failed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="ignored: the register is small")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--profile", default="", choices=["", *SHAPES], help="cProfile one shape")
    parser.add_argument("--cold", type=int, default=0, help="cold start of N tablets only")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print_machine(kinds)  # type: ignore[arg-type]
    for kind in kinds:
        print(f"== {kind}")
        if args.cold:
            cold_start(kind, args.cold, args.processes)
            continue
        settings = build_register(kind, max(clients))
        households = village_households(settings)
        if not args.no_in_process:
            in_process(settings, households, args.profile)
        if not args.no_http:
            over_http(settings, households, clients, args.seconds, args.processes)


if __name__ == "__main__":
    main()
