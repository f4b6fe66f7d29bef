"""Many tablets, small batches: N simulated tablets, each logged in as its own collector on its own
device and granted two villages that each other tablet's grants overlap, repeatedly syncing — push k
`household_visit` submissions to households of its villages, then pull what changed — against the
app as deployed (gunicorn with `gunicorn.conf.py`: its workers and threads) on a 4,000-household
register (16 villages of 250), on SQLite and PostgreSQL. In the same run, two limits: an
authenticated no-op request (`GET /api/v1/auth/me`) at the same concurrency, and the throughput of
pushes of 500. Before the syncs of each N, a cold start: all N tablets log in (Argon2id at the
production cost) and pull their villages at once. After each run the register is checked against
every submission it accepted. Each sync's push and pull are timed apart; 1 visit is also run as
pushes alone; the CPU a sync costs the app, the run database's backends and the tablets is read
from /proc.

    python bench/tablets.py [--db sqlite|postgresql|both] [--reuse] [--tablets 16,64,256]
                            [--visits 1,5,20] [--seconds 30] [--processes 16]
                            [--cheap-passwords]

Tablets are threads, spread over `--processes` worker processes (each with its own interpreter,
so the client side does not queue on one interpreter lock); each tablet has its own HTTP
keep-alive session, device id, clock, submission sequence, pull cursor and copy of its villages.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

import orjson
import requests
from push_cpu import cpu_of
from register import (
    COUNTY_COLLECTOR,
    MEMBERS_PER_HOUSEHOLD,
    PASSWORD,
    Register,
    add_common_arguments,
    database_kinds,
    machine_lines,
    prepared_register,
    print_machine,
    village_codes,
)
from sqlalchemy import select
from sqlalchemy.engine import make_url
from tablet import (
    HttpTablet,
    KnownHousehold,
    KnownMember,
    base_revs,
    gunicorn_app,
    known_households,
    visit_answers,
    visit_batches,
)
from tablet_figures import (
    Timed,
    WindowFigures,
    latest_writes,
    percentile,
    register_mismatches,
    window_figures,
)

from forms.bundled import load_bundled_form
from forms.submission import check_submission
from server.auth.passwords import PasswordHasher
from server.config import Settings
from server.db import Database
from server.submissions.models import Submission
from server.users.models import Role
from server.users.service import create_user
from sync_protocol.clock import Hlc, HybridClock

NAME = "fieldsync_bench_tablets"  # its databases and saved registers: never another bench's
SIZE = "4k"
BATCH_SIZE = 500  # the big-batch limit
BATCH_TABLETS = 2  # tablets pushing batches of 500 at once (one per worker)
BATCH_ROUNDS = 3  # measured batches per tablet, after one warm-up batch
VILLAGES_PER_TABLET = 2
WARM_UP_S = 3.0  # tablets sync this long before the measuring window opens
START_DELAY_S = 1.0  # time for every worker process to receive its command
PULL_LIMIT = 1000
HTTP_TIMEOUT = 600  # a stuck request shows as a slow sync, not as a client-side failure
TARGET_BATCH_SHARE = 0.5  # 5-visit syncs of 64 tablets / 500-batch submissions/s
TARGET_P95_S = 1.0
TARGET_NOOP_SHARE = 0.4  # 1-visit syncs / no-op requests, same concurrency
TARGET_COLD_S = 60.0
PRODUCTION = Settings()  # the default (production) password hashing cost


def collector_name(index: int) -> str:
    return f"bench_tablet_{index:03d}"


def tablet_villages(index: int, villages: Sequence[str]) -> tuple[str, ...]:
    """Tablet `index`'s grants: its own village and the next one, so each village is shared with
    the tablets on either side and merges and conflicts happen between neighbours."""
    return tuple(villages[(index + i) % len(villages)] for i in range(VILLAGES_PER_TABLET))


# --- the simulated tablet ----------------------------------------------------------------------


@dataclass(frozen=True)
class TabletSpec:
    index: int
    username: str
    seed: int


@dataclass
class Sent:
    """One submission a tablet sent, and what became of it as far as the tablet knows
    (`status` None: the push failed, so the tablet does not know)."""

    instance_id: str
    hlc: str
    collected_at: str
    data: dict[str, Any]
    status: str | None = None


class ProtocolError(RuntimeError):
    pass


class SimTablet:
    """A lean tablet speaking the sync protocol: it keeps what it pulled (revisions and fields of
    its villages' households and members), fills visits from it, pushes them with the pulled
    revisions as `base_revs`, advances its clock from every response."""

    def __init__(self, base_url: str, spec: TabletSpec) -> None:
        self.base_url = base_url
        self.spec = spec
        self.http = requests.Session()
        self.device_id = str(uuid.uuid4())
        self.clock = HybridClock(self.device_id)
        self.rng = random.Random(spec.seed)
        self.seq = 0
        self.cursor: str | None = None
        self.entities: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.members_of: dict[str, set[str]] = {}
        self.sent: list[Sent] = []
        self.conflicts = 0
        self.retries = 0

    def _send(self, method: str, url: str, **options: Any) -> requests.Response:
        """One request, sent again once if the connection broke under it — a keep-alive
        connection the server closed as it was reused — as the reference client's transport
        does (every request here is idempotent: pushes by instance id). Counted in `retries`."""
        try:
            return self.http.request(method, url, timeout=HTTP_TIMEOUT, **options)
        except requests.ConnectionError:
            self.retries += 1
            return self.http.request(method, url, timeout=HTTP_TIMEOUT, **options)

    def _check(self, response: requests.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise ProtocolError(f"{response.request.method} {response.status_code}")
        # orjson, as a lean tablet would: a first sync is ~3 MB of JSON per tablet, and the
        # tablets share the server's cores here.
        body: dict[str, Any] = orjson.loads(response.content)
        return body

    def login(self) -> None:
        response = self._send(
            "POST",
            f"{self.base_url}/api/v1/auth/login",
            json={
                "username": self.spec.username,
                "password": PASSWORD,
                "device_id": self.device_id,
            },
        )
        token = self._check(response)["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def me(self) -> None:
        self._check(self._send("GET", f"{self.base_url}/api/v1/auth/me"))

    def pull(self) -> int:
        """Every page from the cursor (none: the initial sync); returns the entities received."""
        received = 0
        while True:
            params: dict[str, str | int] = {"limit": PULL_LIMIT}
            if self.cursor:
                params["cursor"] = self.cursor
            page = self._check(
                self._send("GET", f"{self.base_url}/api/v1/sync/pull", params=params)
            )
            for entity in page["entities"]:
                self._store(entity)
            for gone in page["removed"]:
                self._drop(gone["entity"], gone["id"])
            received += len(page["entities"])
            self.cursor = page["cursor"]
            self.clock.observe(Hlc.parse(page["clock"]))
            if not page["more"]:
                return received

    def _store(self, entity: dict[str, Any]) -> None:
        kind, entity_id, fields = entity["entity"], entity["id"], entity["fields"]
        if entity["deleted"]:
            self._drop(kind, entity_id)
            return
        if kind == "member":
            previous = self.entities.get(("member", entity_id))
            if previous is not None:
                self.members_of.get(previous[1].get("household_id") or "", set()).discard(entity_id)
            self.members_of.setdefault(fields.get("household_id") or "", set()).add(entity_id)
        self.entities[(kind, entity_id)] = (entity["rev"], fields)

    def _drop(self, kind: str, entity_id: str) -> None:
        previous = self.entities.pop((kind, entity_id), None)
        if kind == "member" and previous is not None:
            self.members_of.get(previous[1].get("household_id") or "", set()).discard(entity_id)

    @property
    def households(self) -> list[str]:
        return [entity_id for kind, entity_id in self.entities if kind == "household"]

    def known(self, household_id: str) -> KnownHousehold:
        """The household as this tablet pulled it, in the shape the visit builder takes."""
        rev, fields = self.entities[("household", household_id)]
        members = []
        for member_id in sorted(self.members_of.get(household_id, ())):
            member_rev, m = self.entities[("member", member_id)]
            known = KnownMember(
                id=uuid.UUID(member_id),
                name=m.get("name") or "",
                birth_date=date.fromisoformat(m.get("birth_date") or "1970-01-01"),
                insured=m.get("insured"),
                health=m.get("health"),
                employment=m.get("employment"),
            )
            members.append((known, member_rev))
        income = fields.get("annual_income")
        return KnownHousehold(
            id=uuid.UUID(household_id),
            village_code=fields.get("village_code") or "",
            annual_income=None if income is None else Decimal(str(income)),
            rev=rev,
            members=tuple(m for m, _ in members),
            member_revs=tuple(r for _, r in members),
        )

    def visits(self, count: int) -> tuple[bytes, list[Sent]]:
        """A push body of `count` visits to distinct households of this tablet's villages, filled
        as a cadre would on the tablet (before the sync starts)."""
        now = datetime.now(UTC)
        chosen = self.rng.sample(self.households, min(count, len(self.households)))
        submissions, sent = [], []
        for household_id in chosen:
            household = self.known(household_id)
            data = visit_answers(household, self.rng, now)
            self.seq += 1
            instance_id, hlc, collected_at = (
                str(uuid.uuid4()),
                str(self.clock.now()),
                now.isoformat(),
            )
            item = {
                "instance_id": instance_id,
                "form_id": "household_visit",
                "form_version": 1,
                "collected_at": collected_at,
                "hlc": hlc,
                "device_seq": self.seq,
                "base_revs": base_revs(household),
                "data": data,
            }
            submissions.append(item)
            sent.append(Sent(instance_id, hlc, collected_at, data))
        body = {
            "device_id": self.device_id,
            "batch_id": str(uuid.uuid4()),
            "clock": str(self.clock.now()),
            "submissions": submissions,
        }
        return orjson.dumps(body), sent

    def push(self, body: bytes, sent: list[Sent]) -> int:
        """Push one body; returns how many of its submissions were accepted (anything else is a
        failure of the benchmark's visits: raised)."""
        self.sent.extend(sent)
        response = self._send(
            "POST",
            f"{self.base_url}/api/v1/sync/push",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        result = self._check(response)
        self.clock.observe(Hlc.parse(result["clock"]))
        by_id = {s.instance_id: s for s in sent}
        accepted, refused = 0, []
        for item in result["results"]:
            # "duplicate": this tablet's own re-send after a broken connection (`_send`), whose
            # first copy the server had accepted; the answer replays its revisions.
            status = "accepted" if item["status"] == "duplicate" else item["status"]
            by_id[item["instance_id"]].status = status
            self.conflicts += len(item.get("conflicts") or ())
            if status == "accepted":
                accepted += 1
            else:
                refused.append(item)
        if refused:
            raise ProtocolError(f"{len(refused)} not accepted, e.g. {refused[0]}")
        return accepted


# --- the worker processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    action: str  # "cold", "noop", "sync", "push" (a sync without its pull), "collect", "stop"
    begin: float = 0.0  # monotonic time at which the tablets start
    end: float = 0.0  # no new exchange starts after it
    visits: int = 0


@dataclass
class WorkerReport:
    records: list[Timed] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the worker processes' own CPU time during the command
    retries: int = 0  # requests sent again after a broken connection


def _timed(action: Callable[[], int], started: float | None = None) -> Timed:
    began = time.monotonic() if started is None else started
    try:
        moved = action()
    except Exception as error:
        return Timed(began, time.monotonic(), error=f"{type(error).__name__}: {error}")
    return Timed(began, time.monotonic(), submissions=moved)


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _tablet_loop(tablet: SimTablet, command: Command, out: list[Timed]) -> None:
    _sleep_until(command.begin)
    if command.action == "cold":
        logged_in: list[float] = []

        def cold() -> int:
            tablet.login()
            logged_in.append(time.monotonic())
            return tablet.pull()

        record = _timed(cold, started=command.begin)
        login = (logged_in[0] if logged_in else record.ended) - record.started
        out.append(dataclasses.replace(record, first_step=login))
        return
    while time.monotonic() < command.end:
        if command.action == "noop":

            def noop() -> int:
                tablet.me()
                return 0

            out.append(_timed(noop))
            continue
        body, sent = tablet.visits(command.visits)  # filled offline: not part of the sync
        pushed: list[float] = []

        def sync(body: bytes = body, sent: list[Sent] = sent, pushed: list[float] = pushed) -> int:
            accepted = tablet.push(body, sent)
            pushed.append(time.monotonic())
            if command.action == "sync":
                tablet.pull()
            return accepted

        record = _timed(sync)
        push_seconds = (pushed[0] if pushed else record.ended) - record.started
        out.append(dataclasses.replace(record, first_step=push_seconds))


def worker_main(connection: Connection, base_url: str, specs: list[TabletSpec]) -> None:
    """A worker process: its tablets, each a thread per command, until told to stop."""
    tablets = [SimTablet(base_url, spec) for spec in specs]
    while True:
        command: Command = connection.recv()
        if command.action == "stop":
            connection.close()
            return
        report = WorkerReport()
        if command.action == "collect":
            for tablet in tablets:
                report.sent.extend(tablet.sent)
                report.conflicts += tablet.conflicts
                report.retries += tablet.retries
                tablet.sent, tablet.conflicts, tablet.retries = [], 0, 0
            connection.send(report)
            continue
        cpu_before = time.process_time()
        outs: list[list[Timed]] = [[] for _ in tablets]
        threads = [
            threading.Thread(target=_guarded, args=(_tablet_loop, t, command, out, report.errors))
            for t, out in zip(tablets, outs, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report.records = [r for out in outs for r in out]
        report.cpu_seconds = time.process_time() - cpu_before
        connection.send(report)


def _guarded(
    loop: Callable[[SimTablet, Command, list[Timed]], None],
    tablet: SimTablet,
    command: Command,
    out: list[Timed],
    errors: list[str],
) -> None:
    try:
        loop(tablet, command, out)
    except Exception:
        errors.append(traceback.format_exc(limit=3))


class TabletPool:
    """N tablets over a few worker processes; every command goes to all of them at once."""

    def __init__(self, base_url: str, specs: Sequence[TabletSpec], processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        count = max(1, min(processes, len(specs)))
        self.connections: list[Connection] = []
        self.processes = []
        for part in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=worker_main, args=(theirs, base_url, list(specs[part::count])), daemon=True
            )
            process.start()
            theirs.close()
            self.connections.append(ours)
            self.processes.append(process)

    def run(self, command: Command) -> WorkerReport:
        for connection in self.connections:
            connection.send(command)
        total = WorkerReport()
        for connection in self.connections:
            report: WorkerReport = connection.recv()
            total.records += report.records
            total.sent += report.sent
            total.conflicts += report.conflicts
            total.errors += report.errors
            total.cpu_seconds += report.cpu_seconds
            total.retries += report.retries
        return total

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(Command("stop"))
        deadline = time.monotonic() + 60  # in all: an interrupted run must not linger
        for process in self.processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()


@contextlib.contextmanager
def tablet_pool(base_url: str, specs: Sequence[TabletSpec], processes: int) -> Iterator[TabletPool]:
    pool = TabletPool(base_url, specs, processes)
    try:
        yield pool
    finally:
        pool.close()


# --- where the machine's CPU goes -------------------------------------------------------------


@dataclass(frozen=True)
class CpuMeter:
    """The CPU seconds used so far by the app's gunicorn workers and the run database's PostgreSQL
    backends (`push_cpu.cpu_of`, from /proc; a process that ended in between is not counted)."""

    base_url: str
    database: str | None

    def read(self) -> tuple[float, float]:
        app, backends = cpu_of(int(self.base_url.rsplit(":", 1)[1]), self.database or "")
        return app, backends if self.database else 0.0


# --- the register: collectors, and the check against what was accepted -------------------------


class _HashedOnce(PasswordHasher):
    """Hashes the benchmark's one password once, at the server's cost: 256 accounts cost one
    hash to create, and each login checks a hash as expensive as the server makes."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
        )
        self._hashed: dict[str, str] = {}

    def hash(self, password: str) -> str:
        if password not in self._hashed:
            self._hashed[password] = super().hash(password)
        return self._hashed[password]


def add_collectors(settings: Settings, villages: Sequence[str], count: int) -> list[TabletSpec]:
    """`count` collectors, each granted its `tablet_villages`, with hashes of the server's cost."""
    db = Database(settings.database_url)
    passwords = _HashedOnce(settings)
    specs = []
    try:
        with db.unit_of_work() as session:
            for index in range(count):
                create_user(
                    session,
                    passwords,
                    username=collector_name(index),
                    password=PASSWORD,
                    role=Role.COLLECTOR,
                    regions=list(tablet_villages(index, villages)),
                )
                specs.append(TabletSpec(index, collector_name(index), seed=1000 + index))
    finally:
        db.dispose()
    return specs


@dataclass
class Ledger:
    """Every submission sent during a database's run, and the register writes each implies."""

    sent: dict[str, Sent] = field(default_factory=dict)
    updates: dict[str, list[tuple[str, str, dict[str, Any]]]] = field(default_factory=dict)

    def add(self, sent: Sequence[Sent]) -> None:
        definition = _visit_form()
        for s in sent:
            self.sent[s.instance_id] = s
            collected = datetime.fromisoformat(s.collected_at)
            checked = check_submission(definition, s.data, today=collected.date(), now=collected)
            self.updates[s.instance_id] = [(u.type, u.id, dict(u.fields)) for u in checked.updates]


_definition: list[Any] = []


def _visit_form() -> Any:
    if not _definition:
        _definition.append(load_bundled_form("household_visit"))
    return _definition[0]


@dataclass
class Check:
    checked_fields: int
    accepted: int
    problems: list[str]


def check_register(url: str, base_url: str, ledger: Ledger) -> Check:
    """Every submission the tablets were told was accepted is stored as accepted (and none they
    were told was refused is); every register field written by an accepted submission holds the
    value and clock of the latest-clock accepted write to it (read with a county-wide pull)."""
    stored = _stored_statuses(url, list(ledger.sent))
    problems: list[str] = []
    accepted = []
    for instance_id, sent in ledger.sent.items():
        status = stored.get(instance_id)
        if sent.status == "accepted" and status != "accepted":
            problems.append(f"submission {instance_id} was accepted but is stored as {status}")
        elif sent.status is not None and sent.status != "accepted" and status == "accepted":
            problems.append(f"submission {instance_id} was answered {sent.status}, stored accepted")
        if status == "accepted":  # also those whose push failed on the way back
            accepted.append((instance_id, sent.hlc, ledger.updates[instance_id]))
    latest = latest_writes(accepted)
    reader = HttpTablet.login(base_url, COUNTY_COLLECTOR, PASSWORD)
    entities, _ = reader.pull_all()
    register = {(e["entity"], e["id"]): (e["fields"], e["clocks"]) for e in entities}
    mismatches = register_mismatches(latest, register)
    problems += [str(m) for m in mismatches[:20]]
    if len(mismatches) > 20:
        problems.append(f"… and {len(mismatches) - 20} more fields")
    return Check(len(latest), len(accepted), problems)


def _stored_statuses(url: str, instance_ids: Sequence[str]) -> dict[str, str]:
    db = Database(url)
    statuses: dict[str, str] = {}
    try:
        with db.unit_of_work(write=False) as session:
            for start in range(0, len(instance_ids), 500):
                part = [uuid.UUID(i) for i in instance_ids[start : start + 500]]
                query = select(Submission.instance_id, Submission.status).where(
                    Submission.instance_id.in_(part)
                )
                for instance_id, status in session.execute(query):
                    statuses[str(instance_id)] = status.value
    finally:
        db.dispose()
    return statuses


# --- the limits --------------------------------------------------------------------------------


@dataclass
class BatchFigures:
    submissions: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.submissions / self.seconds


def measure_batches(register: Register, base_url: str, ledger: Ledger) -> BatchFigures:
    """`BATCH_TABLETS` tablets of the county collector push batches of 500 visits at once, one
    warm-up batch each, then `BATCH_ROUNDS` measured: all accepted submissions over the time from
    the first request to the last response (as bench/push.py's two-worker figure)."""
    per_tablet = (1 + BATCH_ROUNDS) * BATCH_SIZE
    households = known_households(register.settings, register.size.households, seed=3)
    tablets = [HttpTablet.login(base_url, COUNTY_COLLECTOR, PASSWORD) for _ in range(BATCH_TABLETS)]
    work = []
    for i, t in enumerate(tablets):
        mine = [households[(i * per_tablet + j) % len(households)] for j in range(per_tablet)]
        work.append(visit_batches(t, mine, BATCH_SIZE, seed=10 + i))
    accepted = [0] * BATCH_TABLETS
    failures: list[str] = []
    answered: list[tuple[bytes, dict[str, Any]]] = []

    def push_all(i: int, bodies: Sequence[bytes], count: bool) -> None:
        for body in bodies:
            try:
                response = tablets[i].push(body)
            except requests.RequestException as error:
                failures.append(str(error))
                continue
            answered.append((body, response))
            if count:
                accepted[i] += sum(r["status"] == "accepted" for r in response["results"])

    _together([(push_all, (i, work[i][:1], False)) for i in range(BATCH_TABLETS)])
    started = time.perf_counter()
    _together([(push_all, (i, work[i][1:], True)) for i in range(BATCH_TABLETS)])
    seconds = time.perf_counter() - started
    for body, response in answered:
        _record_batch(ledger, body, response)
    if failures:
        raise RuntimeError(f"pushes of {BATCH_SIZE} failed: {failures[:3]}")
    return BatchFigures(sum(accepted), seconds)


def _record_batch(ledger: Ledger, body: bytes, response: dict[str, Any]) -> None:
    status = {r["instance_id"]: r["status"] for r in response["results"]}
    sent = [
        Sent(s["instance_id"], s["hlc"], s["collected_at"], s["data"], status.get(s["instance_id"]))
        for s in json.loads(body)["submissions"]
    ]
    ledger.add(sent)


def _together(calls: Sequence[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    threads = [threading.Thread(target=target, args=args) for target, args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Options:
    tablets: list[int]
    visits: list[int]
    seconds: float
    processes: int
    cheap_passwords: bool = False


@dataclass
class ColdFigures:
    tablets: int
    all_done: float
    p50: float
    p95: float
    slowest: float
    errors: int
    login_p50: float
    login_p95: float
    production_hashing: bool = True
    retries: int = 0


def cold_start(pool: TabletPool, tablets: int, entities: int) -> tuple[ColdFigures, list[str]]:
    """All tablets log in and pull their villages (`entities` households and members) at once."""
    begin = time.monotonic() + START_DELAY_S
    report = pool.run(Command("cold", begin=begin))
    records = [
        r
        if r.error is not None or r.submissions == entities
        else dataclasses.replace(r, error=f"pulled {r.submissions} entities, not {entities}")
        for r in report.records
    ]
    good = [r.seconds for r in records if r.error is None]
    logins = [r.first_step for r in records if r.error is None]
    errors = [r.error for r in records if r.error is not None] + report.errors
    done = max((r.ended for r in report.records), default=begin) - begin
    figures = ColdFigures(
        tablets=tablets,
        all_done=done,
        p50=percentile(good, 50),
        p95=percentile(good, 95),
        slowest=max(good, default=float("nan")),
        errors=len(errors),
        login_p50=percentile(logins, 50),
        login_p95=percentile(logins, 95),
    )
    return figures, errors


@dataclass(frozen=True)
class CpuPerSync:
    """CPU milliseconds per completed sync over a whole phase (warm-up and drain included)."""

    app: float
    database: float
    tablets: float
    syncs: int


@dataclass
class ShapeFigures:
    tablets: int
    visits: int
    window: WindowFigures
    conflicts: int
    check: Check
    errors: list[str]
    cpu: CpuPerSync | None = None
    pulls: bool = True  # False: pushes alone, no pull after them
    retries: int = 0  # requests sent again after a broken connection (not errors)

    @property
    def label(self) -> str:
        return str(self.visits) if self.pulls else f"{self.visits} (push only)"


def timed_phase(
    pool: TabletPool, action: str, seconds: float, visits: int = 0, meter: CpuMeter | None = None
) -> tuple[WindowFigures, WorkerReport, CpuPerSync | None]:
    begin = time.monotonic() + START_DELAY_S
    start = begin + WARM_UP_S
    end = start + seconds
    before = meter.read() if meter else (0.0, 0.0)
    report = pool.run(Command(action, begin=begin, end=end, visits=visits))
    cpu = None
    done = sum(1 for r in report.records if r.error is None)
    if meter and done:
        app, database = (b - a for a, b in zip(before, meter.read(), strict=True))
        cpu = CpuPerSync(
            app * 1000 / done, database * 1000 / done, report.cpu_seconds * 1000 / done, done
        )
    return window_figures(report.records, start, end), report, cpu


def run_tablets(
    register: Register,
    base_url: str,
    specs: Sequence[TabletSpec],
    options: Options,
    ledger: Ledger,
) -> tuple[ColdFigures, WindowFigures, list[ShapeFigures], list[str]]:
    """Cold start, the no-op limit, then syncs of each visit count, with `specs` tablets; the
    register is checked after each sync run against everything `ledger` holds."""
    n = len(specs)
    with tablet_pool(base_url, specs, options.processes) as pool:
        size = register.size
        entities = VILLAGES_PER_TABLET * size.per_village * (1 + MEMBERS_PER_HOUSEHOLD)
        cold, cold_errors = cold_start(pool, n, entities)
        cold.production_hashing = not options.cheap_passwords
        noop, noop_report, _ = timed_phase(pool, "noop", options.seconds)
        cold.retries = pool.run(Command("collect")).retries  # of the cold start and the no-op
        database = make_url(register.url).database if register.kind == "postgresql" else None
        meter = CpuMeter(base_url, database)
        shapes = []
        # Each visit count as whole syncs; 1 visit also as pushes alone, to read the push's own
        # cost against the no-op request apart from the pull's.
        phases = [("sync", k) for k in options.visits]
        phases += [("push", 1)] if 1 in options.visits else []
        for action, k in phases:
            window, report, cpu = timed_phase(pool, action, options.seconds, k, meter)
            collected = pool.run(Command("collect"))
            ledger.add(collected.sent)
            check = check_register(register.url, base_url, ledger)
            errors = [r.error for r in report.records if r.error] + report.errors + check.problems
            shapes.append(
                ShapeFigures(
                    n,
                    k,
                    window,
                    collected.conflicts,
                    check,
                    errors,
                    cpu,
                    pulls=action == "sync",
                    retries=collected.retries,
                )
            )
    return cold, noop, shapes, cold_errors + [r.error for r in noop_report.records if r.error]


def run(register: Register, options: Options) -> None:
    kind = register.kind
    villages = village_codes(register.size)
    settings = register.settings  # cheap hashing, as the other benchmarks
    if not options.cheap_passwords:
        settings = dataclasses.replace(
            settings,
            password_hash_time_cost=PRODUCTION.password_hash_time_cost,
            password_hash_memory_kib=PRODUCTION.password_hash_memory_kib,
        )
    specs = add_collectors(settings, villages, max(options.tablets))
    ledger = Ledger()  # every submission sent to this database
    print(
        f"\n== {kind}: {register.size.households:,} households in {len(villages)} villages of "
        f"{register.size.per_village}; each tablet holds {VILLAGES_PER_TABLET} villages; "
        f"gunicorn -c gunicorn.conf.py wsgi:app; {options.seconds:.0f} s per run; Argon2id "
        f"time cost {settings.password_hash_time_cost}, {settings.password_hash_memory_kib} KiB"
    )
    with gunicorn_app(settings) as base_url:
        batches = measure_batches(register, base_url, ledger)
        print(
            f"500-batch limit : {batches.per_second:,.0f} submissions/s ({BATCH_TABLETS} tablets "
            f"pushing {BATCH_ROUNDS} batches of {BATCH_SIZE} at once: {batches.submissions:,} in "
            f"{batches.seconds:.1f} s)"
        )
        for n in options.tablets:
            cold, noop, shapes, errors = run_tablets(register, base_url, specs[:n], options, ledger)
            report_tablets(cold, noop, shapes, batches, errors)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def report_tablets(
    cold: ColdFigures,
    noop: WindowFigures,
    shapes: list[ShapeFigures],
    batches: BatchFigures,
    errors: list[str],
) -> None:
    n = cold.tablets
    print(f"\n-- {n} tablets")
    verdict = ""
    if n >= 256:
        verdict = _verdict(cold.errors == 0 and cold.all_done < TARGET_COLD_S)
    if not cold.production_hashing:
        verdict = "(cheap password hashing: not the target's conditions)"
    print(
        f"cold start      : all {n} logged in and holding their villages after "
        f"{cold.all_done:.1f} s; per tablet p50 {cold.p50:.1f} s, p95 {cold.p95:.1f} s, max "
        f"{cold.slowest:.1f} s (of which login p50 {cold.login_p50:.1f} s, p95 "
        f"{cold.login_p95:.1f} s); errors {cold.errors}, requests retried (cold start and no-op) "
        f"{cold.retries}   {verdict}".rstrip()
    )
    print(
        f"no-op limit     : {noop.per_second:,.0f} requests/s (GET /api/v1/auth/me, {n} at once; "
        f"p50 {_ms(noop.p50)} ms, p95 {_ms(noop.p95)} ms; errors {noop.errors})"
    )
    header = (
        f"{'visits':>6} {'syncs/s':>8} {'subs/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'syncs':>6} {'confl.':>6} {'errors':>6} {'retried':>7}  checked"
    )
    print(header)
    for s in shapes:
        w = s.window
        print(
            f"{s.label:>6} {w.per_second:>8.1f} {w.submissions_per_second:>7.1f} "
            f"{_ms(w.p50):>7} {_ms(w.p95):>7} {_ms(w.p99):>7} {_ms(w.slowest):>7} "
            f"{w.completed:>6} {s.conflicts:>6} {len(s.errors):>6} {s.retries:>7}  "
            f"{s.check.accepted:,} accepted, {s.check.checked_fields:,} fields: "
            f"{'ok' if not s.check.problems else f'{len(s.check.problems)} MISMATCHES'}"
        )
    for s in shapes:
        w = s.window
        if s.pulls:
            print(
                f"{s.label:>6} visits: push p50 {_ms(w.first_p50)} / p95 {_ms(w.first_p95)} ms, "
                f"pull p50 {_ms(w.rest_p50)} / p95 {_ms(w.rest_p95)} ms"
            )
        if s.cpu:
            database = f", database {s.cpu.database:.1f} ms" if s.cpu.database else ""
            print(
                f"{s.label:>6} visits: CPU per sync: app {s.cpu.app:.1f} ms{database}, tablets "
                f"{s.cpu.tablets:.1f} ms (over {s.cpu.syncs} syncs, warm-up and drain included)"
            )
    for s in shapes:
        w = s.window
        if s.visits == 5 and s.pulls:
            share = w.submissions_per_second / batches.per_second
            ok = share >= TARGET_BATCH_SHARE and w.p95 < TARGET_P95_S
            mark = f"   target >= {TARGET_BATCH_SHARE:.0%}, p95 < 1 s  {_verdict(ok)}"
            print(
                f"5 visits / 500-batch : {share:.0%} of {batches.per_second:,.0f} submissions/s, "
                f"p95 {_ms(w.p95)} ms{mark if n == 64 else ''}"
            )
        if s.visits == 1 and s.pulls:
            share = w.per_second / noop.per_second
            ok = share >= TARGET_NOOP_SHARE
            print(
                f"1 visit / no-op      : {share:.0%} ({w.per_second:.1f} syncs/s against "
                f"{noop.per_second:.1f} no-op requests/s)   target >= {TARGET_NOOP_SHARE:.0%}  "
                f"{_verdict(ok)}"
            )
        if s.visits == 1 and not s.pulls:
            share = w.per_second / noop.per_second
            print(
                f"1-visit pushes alone / no-op: {share:.0%} ({w.per_second:.1f} pushes/s against "
                f"{noop.per_second:.1f} no-op requests/s; the same target read as pushes alone)"
            )
    everything = errors + [e for s in shapes for e in s.errors]
    for line in sorted(set(everything))[:10]:
        print(f"  error: {line.strip().splitlines()[-1]}")


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--tablets", default="16,64,256", help="tablet counts (default 16,64,256)")
    parser.add_argument("--visits", default="1,5,20", help="visits per push (default 1,5,20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument(
        "--processes", type=int, default=16, help="worker processes the tablets are spread over"
    )
    parser.add_argument(
        "--cheap-passwords",
        action="store_true",
        help="hash passwords as the other benchmarks do (time cost 1, 64 KiB) instead of at the "
        "production cost: quicker logins, and a cold start without the hashing",
    )
    args = parser.parse_args(None if argv is None else list(argv))
    options = Options(
        cheap_passwords=args.cheap_passwords,
        tablets=_numbers(args.tablets),
        visits=_numbers(args.visits),
        seconds=args.seconds,
        processes=args.processes,
    )
    kinds = database_kinds(args.db)
    print_machine(kinds)
    for kind in kinds:
        with prepared_register(kind, SIZE, reuse=args.reuse, name=NAME) as register:
            run(register, options)
    print(f"\nended: {machine_lines()[0]}")


if __name__ == "__main__":
    main()
