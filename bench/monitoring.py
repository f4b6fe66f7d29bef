"""Speed of the monitoring reports on the 500,000-household register of `register.py`: the summary
of the county with its townships and of the whole province, and a household's timeline, each
requested over HTTP from the real app (served on a local port) by a supervisor of the province.

About 5 % of the households are put under monitoring first — the three types, every status
(entry under review, monitored, exit under review, risk eliminated) — with referrals from the
three channels and the cases and steps their statuses imply (closed entry cases approved at the
county step in 2025 or 2026, exit cases for households out of risk, open cases at every stage).
Registers are kept under /tmp/fieldsync-bench/monitoring and in the PostgreSQL database
`fieldsync_bench_monitoring_500k` (with `--reuse`), apart from the other benchmarks' copies.

    python bench/monitoring.py [--db sqlite|postgresql|both] [--reuse] [--size 500k] [--runs 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import register
import requests
from register import (
    COUNTY,
    COUNTY_COLLECTOR,
    PASSWORD,
    PROVINCE,
    SIZES,
    Register,
    add_common_arguments,
    database_kinds,
    prepared_register,
    print_machine,
)
from sqlalchemy import Index, Table, bindparam, func, inspect, select, text
from sqlalchemy.schema import CreateIndex, DropIndex
from tablet import HttpTablet, known_households, served_app, visit_batches

from forms.register import Category, MonitoringStatus, MonitoringType, RiskCause
from server.auth.passwords import PasswordHasher
from server.changes.models import Change
from server.db import Database
from server.households.models import Household, Member
from server.monitoring import case_intake, followups
from server.monitoring.models import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    CaseStep,
    MonitoringCase,
    Referral,
    ReferralChannel,
    StepDecision,
)
from server.monitoring.summary import SECTIONS, year_window
from server.users.models import Role
from server.users.service import create_user

# This benchmark's own saved registers and working database (see the module docstring).
register.SQLITE_DIR = Path("/tmp/fieldsync-bench/monitoring")
NAME = "fieldsync_bench_monitoring"

SEED = 20261205
SUPERVISOR = "bench_province_supervisor"
TARGETS_MS = {"county": 300.0, "province": 1000.0}
# Of the register's `monitored`-category households (10 %), half stay under monitoring (5 %).
STATUS_WEIGHTS = {
    MonitoringStatus.ENTRY_REVIEW: 0.10,
    MonitoringStatus.MONITORED: 0.50,
    MonitoringStatus.EXIT_REVIEW: 0.10,
    MonitoringStatus.RISK_ELIMINATED: 0.30,
}
CHANNEL_WEIGHTS = {
    ReferralChannel.SELF_APPLICATION: 0.25,
    ReferralChannel.CADRE_SCREENING: 0.55,
    ReferralChannel.DEPARTMENT_WARNING: 0.20,
}
CHAIN = (
    CaseStage.VERIFICATION,
    CaseStage.VILLAGE_REVIEW,
    CaseStage.TOWNSHIP_REVIEW,
    CaseStage.COUNTY_REVIEW,
)
DEPARTMENTS = ("民政", "教育", "人社", "住建", "医保", "残联")
HOUSEHOLDS = cast(Table, Household.__table__)
CASES = cast(Table, MonitoringCase.__table__)
STEPS = cast(Table, CaseStep.__table__)
REFERRALS = cast(Table, Referral.__table__)


@dataclass
class MonitoringLoad:
    households: int
    by_status: dict[str, int]
    referrals: int
    cases: int
    steps: int
    seconds: float


class MonitoringGenerator:
    """Statuses, referrals, cases and steps for the households of the `monitored` category."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.start = datetime(2025, 1, 1, tzinfo=UTC)
        self.updates: list[dict[str, Any]] = []
        self.referrals: list[dict[str, Any]] = []
        self.cases: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []

    def moment(self, after: datetime, days: int = 40) -> datetime:
        return after + timedelta(days=self.rng.uniform(1, days))

    def add(self, household_id: uuid.UUID, village: str) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            self.updates.append(
                {"hid": household_id, "st": MonitoringStatus.NOT_MONITORED, "ty": None}
            )
            return
        status = rng.choices(list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values()))[0]
        kind = None
        if status is not MonitoringStatus.ENTRY_REVIEW:
            kind = rng.choice(list(MonitoringType))
        self.updates.append({"hid": household_id, "st": status, "ty": kind})
        referred = self.moment(self.start, 600)
        entry = self.case(household_id, village, CaseDirection.ENTRY, referred)
        for _ in range(1 if rng.random() < 0.8 else 2):
            self.referral(household_id, village, entry, referred)
        if status is MonitoringStatus.ENTRY_REVIEW:
            self.run(entry, referred, open_at=rng.choice(CHAIN))
            return
        approved = self.run(entry, referred, open_at=None)
        if status in (MonitoringStatus.EXIT_REVIEW, MonitoringStatus.RISK_ELIMINATED):
            exit_case = self.case(household_id, village, CaseDirection.EXIT, approved)
            open_at = rng.choice(CHAIN) if status is MonitoringStatus.EXIT_REVIEW else None
            self.run(exit_case, self.moment(approved, 200), open_at=open_at)

    def referral(
        self, household_id: uuid.UUID, village: str, case: dict[str, Any], at: datetime
    ) -> None:
        channel = self.rng.choices(list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values()))[0]
        self.referrals.append(
            {
                "id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
                "household_id": household_id,
                "village_code": village,
                "case_id": case["id"],
                "channel": channel,
                "department": self.rng.choice(DEPARTMENTS)
                if channel is ReferralChannel.DEPARTMENT_WARNING
                else None,
                "causes": sorted({self.rng.choice(list(RiskCause)).value for _ in range(2)}),
                "note": None,
                "evidence": {},
                "created_at": at,
            }
        )

    def case(
        self, household_id: uuid.UUID, village: str, direction: CaseDirection, at: datetime
    ) -> dict[str, Any]:
        row = {
            "id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
            "household_id": household_id,
            "village_code": village,
            "direction": direction,
            "stage": CaseStage.CLOSED,
            "outcome": CaseOutcome.APPROVED,
            "prior_status": MonitoringStatus.NOT_MONITORED
            if direction is CaseDirection.ENTRY
            else MonitoringStatus.MONITORED,
            "monitoring_type": None,
            "risk_causes": [],
            "version": 0,
            "opened_at": at,
            "updated_at": at,
            "closed_at": None,
        }
        self.cases.append(row)
        return row

    def run(self, case: dict[str, Any], at: datetime, *, open_at: CaseStage | None) -> datetime:
        """Steps of the chain up to `open_at` (where the case waits), or all four approved."""
        seq = 0
        for stage in CHAIN:
            if stage is open_at:
                case["stage"], case["outcome"] = stage, CaseOutcome.OPEN
                break
            at = self.moment(at, 12)
            seq += 1
            self.steps.append(
                {
                    "id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
                    "case_id": case["id"],
                    "seq": seq,
                    "stage": stage,
                    "decision": StepDecision.APPROVE,
                    "taken_at": at,
                    "comment": None,
                    "details": {},
                    "attachments": [],
                }
            )
        case["version"] = seq
        if open_at is None:
            case["closed_at"] = at
        return at


def ensure_indexes(url: str) -> list[str]:
    """Create the indexes of the current models that a saved register (built by an earlier
    revision of the same migration) lacks or has with other columns. Returns their names."""
    db = Database(url)
    fixed = []
    try:
        with db.engine.begin() as conn:
            inspector = inspect(conn)
            for model in (Household, Member, Change, MonitoringCase, CaseStep, Referral):
                table = cast(Table, model.__table__)
                found = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
                for index in table.indexes:
                    columns = [c.name for c in index.columns]
                    if found.get(str(index.name)) == columns:
                        continue
                    if index.name in found:
                        conn.execute(DropIndex(index))
                    conn.execute(CreateIndex(index))
                    fixed.append(str(index.name))
    finally:
        db.dispose()
    return fixed


def add_monitoring(url: str) -> MonitoringLoad:
    """Put ~5 % of the register under monitoring, with referrals, cases and steps, and a
    supervisor of the province to ask for the reports."""
    started = time.perf_counter()
    db = Database(url)
    try:
        with db.unit_of_work() as session:
            rows = session.execute(
                select(Household.id, Household.village_code)
                .where(Household.category == Category.MONITORED)
                .order_by(Household.household_no)
            ).all()
            generator = MonitoringGenerator()
            for household_id, village in rows:
                generator.add(household_id, village)
            session.connection().execute(
                HOUSEHOLDS.update()
                .where(HOUSEHOLDS.c.id == bindparam("hid"))
                .values(monitoring_status=bindparam("st"), monitoring_type=bindparam("ty")),
                generator.updates,
            )
            for table, batch in (
                (CASES, generator.cases),
                (STEPS, generator.steps),
                (REFERRALS, generator.referrals),
            ):
                for chunk in _chunks(batch, 5000):
                    session.execute(table.insert(), chunk)
            passwords = PasswordHasher(time_cost=1, memory_kib=64)
            create_user(
                session,
                passwords,
                username=SUPERVISOR,
                password=PASSWORD,
                role=Role.SUPERVISOR,
                regions=[PROVINCE],
            )
            by_status: dict[MonitoringStatus, int] = {
                status: int(n)
                for status, n in session.execute(
                    select(Household.monitoring_status, func.count()).group_by(
                        Household.monitoring_status
                    )
                )
            }
        if db.kind == "postgresql":
            # What autovacuum does after such a load: statistics, and the visibility map that
            # lets index-only scans skip the table.
            with db.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in ("households", "members", "monitoring_cases", "case_steps"):
                    conn.execute(text(f"VACUUM ANALYZE {name}"))
                conn.execute(text("ANALYZE referrals"))
    finally:
        db.dispose()
    monitored = sum(n for s, n in by_status.items() if s is not MonitoringStatus.NOT_MONITORED)
    return MonitoringLoad(
        households=monitored,
        by_status={s.value: int(n) for s, n in by_status.items()},
        referrals=len(generator.referrals),
        cases=len(generator.cases),
        steps=len(generator.steps),
        seconds=time.perf_counter() - started,
    )


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


@dataclass
class Timing:
    name: str
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def worst(self) -> float:
        return max(self.samples_ms)


def timed(http: requests.Session, url: str, runs: int, warmup: int = 2) -> tuple[list[float], Any]:
    body = None
    samples = []
    for i in range(warmup + runs):
        started = time.perf_counter()
        response = http.get(url, timeout=120)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        if i >= warmup:
            samples.append(elapsed)
    return samples, body


def measure(reg: Register, runs: int) -> list[Timing]:
    with served_app(reg.settings) as served:
        http = requests.Session()
        login = http.post(
            f"{served.url}/api/v1/auth/login",
            json={"username": SUPERVISOR, "password": PASSWORD},
            timeout=60,
        )
        assert login.status_code == 200, login.text
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        timings = []
        base = f"{served.url}/api/v1/monitoring/summary?year=2026&region="
        county, body = timed(http, base + COUNTY, runs)
        total = body["region"]["sections"]["monitored"]["total"]
        children = sum(c["sections"]["monitored"]["total"]["households"] for c in body["children"])
        assert total["households"] == children, "a county must equal the sum of its townships"
        print(
            f"    county summary: {len(body['children'])} townships, {total['households']:,} "
            f"households / {total['persons']:,} persons under monitoring"
        )
        timings.append(Timing("summary, county with its townships", county))
        province, body = timed(http, base + PROVINCE, runs)
        assert body["region"]["sections"]["monitored"]["total"] == total
        timings.append(Timing("summary, whole province", province))
        db = Database(reg.url)
        with db.unit_of_work(write=False) as session:
            household = session.scalars(
                select(Household.id)
                .where(Household.monitoring_status == MonitoringStatus.RISK_ELIMINATED)
                .order_by(Household.household_no)
                .limit(1)
            ).one()
        db.dispose()
        url = f"{served.url}/api/v1/households/{household}/timeline?limit=50"
        first, page = timed(http, url, runs)
        timings.append(Timing(f"timeline, first page ({len(page['events'])} events)", first))
        if page["next_cursor"]:
            later, _ = timed(http, f"{url}&cursor={page['next_cursor']}", runs)
            timings.append(Timing("timeline, next page", later))
        return timings


def section_times(url: str, region: str, runs: int) -> list[Timing]:
    """Each section's query alone, in process, for `region` (where a summary's time goes)."""
    db = Database(url)
    window = year_window(region, 2026)
    timings = []
    try:
        for section in SECTIONS:
            samples = []
            for i in range(runs + 1):
                with db.unit_of_work(write=False) as session:
                    started = time.perf_counter()
                    list(section.count(session, window))
                    if i:  # the first one warms up
                        samples.append((time.perf_counter() - started) * 1000)
            timings.append(Timing(f"section {section.name}", samples))
    finally:
        db.dispose()
    return timings


# The indexes migration 0013 adds for the reports: what they cost a push is measured by pushing
# with them and without them, in alternation, on the same register.
REPORT_INDEXES: tuple[Index, ...] = tuple(
    index
    for model in (Household, Member, Change)
    for index in cast(Table, model.__table__).indexes
    if index.name
    in {"ix_households_monitoring", "ix_members_household_live", "ix_changes_village_seq"}
)
PUSH_BATCH = 500


@dataclass
class PushCost:
    on: list[float]  # batches with what is measured (the indexes, the bookkeeping)
    off: list[float]  # and without it

    @staticmethod
    def rate(seconds: list[float]) -> float:
        return PUSH_BATCH * len(seconds) / sum(seconds)


def measure_push_cost(reg: Register, rounds: int, batches: int) -> PushCost:
    """Batches of 500 visits to households anywhere in the county, pushed over HTTP by one
    tablet; each round pushes `batches` with the report indexes, then `batches` without."""
    households = known_households(reg.settings, (1 + 2 * rounds * batches) * PUSH_BATCH, seed=7)
    db = Database(reg.url)
    cost = PushCost([], [])
    try:
        with served_app(reg.settings) as served:
            tablet = HttpTablet.login(served.url, COUNTY_COLLECTOR, PASSWORD)
            bodies = iter(visit_batches(tablet, households, PUSH_BATCH))
            tablet.push(next(bodies))  # warm-up
            for _ in range(rounds):
                for with_indexes in (True, False):
                    if not with_indexes:
                        _run_ddl(db, [DropIndex(index) for index in REPORT_INDEXES])
                    for _ in range(batches):
                        started = time.perf_counter()
                        response = tablet.push(next(bodies))
                        elapsed = time.perf_counter() - started
                        assert {r["status"] for r in response["results"]} == {"accepted"}
                        (cost.on if with_indexes else cost.off).append(elapsed)
                    if not with_indexes:
                        _run_ddl(db, [CreateIndex(index) for index in REPORT_INDEXES])
    finally:
        db.dispose()
    return cost


def measure_bookkeeping_cost(reg: Register, batches: int) -> PushCost:
    """Batches of 500 visits anywhere in the county pushed over HTTP by one tablet, alternately
    with the case bookkeeping of a push (`case_intake.take_accepted`: referrals, verification
    visits; `followups.record_visits`) and without it, on the same served app and register."""
    households = known_households(reg.settings, (1 + 2 * batches) * PUSH_BATCH, seed=9)
    real = (case_intake.take_accepted, followups.record_visits)

    def skipped(*args: Any, **kwargs: Any) -> None:
        return None

    cost = PushCost([], [])
    with served_app(reg.settings) as served:
        tablet = HttpTablet.login(served.url, COUNTY_COLLECTOR, PASSWORD)
        bodies = visit_batches(tablet, households, PUSH_BATCH)
        tablet.push(bodies[0])  # warm-up
        for index, body in enumerate(bodies[1:]):
            on = index % 2 == 1
            case_intake.take_accepted, followups.record_visits = real if on else (skipped,) * 2
            try:
                started = time.perf_counter()
                response = tablet.push(body)
                elapsed = time.perf_counter() - started
            finally:
                case_intake.take_accepted, followups.record_visits = real
            assert {r["status"] for r in response["results"]} == {"accepted"}
            (cost.on if on else cost.off).append(elapsed)
    return cost


def _run_ddl(db: Database, statements: list[Any]) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--size", choices=sorted(SIZES), default="500k")
    parser.add_argument("--runs", type=int, default=15, help="timed requests per figure")
    parser.add_argument(
        "--push-rounds",
        type=int,
        default=0,
        help="also measure what the report indexes cost a push: rounds of batches with and "
        "without them (default: 0, not measured)",
    )
    parser.add_argument(
        "--bookkeeping-batches",
        type=int,
        default=0,
        help="also measure what the case bookkeeping costs a push: this many batches with it "
        "and as many without, alternated (default: 0, not measured)",
    )
    args = parser.parse_args()
    kinds = database_kinds(args.db)
    print_machine(kinds)
    size = SIZES[args.size]
    print(f"register: {size.households:,} households, {size.villages} villages")
    for kind in kinds:
        with prepared_register(kind, args.size, reuse=args.reuse, name=NAME) as reg:
            fixed = ensure_indexes(reg.url)
            if fixed:
                print(f"{kind:<10} indexes brought up to the models: {', '.join(fixed)}")
            load = add_monitoring(reg.url)
            share = load.households / size.households
            print(
                f"{kind:<10} under monitoring: {load.households:,} households ({share:.1%}) "
                f"{load.by_status}; {load.referrals:,} referrals, {load.cases:,} cases, "
                f"{load.steps:,} steps (added in {load.seconds:.1f} s)"
            )
            for timing in [*measure(reg, args.runs), *section_times(reg.url, COUNTY, 5)]:
                print(
                    f"    {timing.name:<40} median {timing.median:7.1f} ms, "
                    f"worst {timing.worst:7.1f} ms over {len(timing.samples_ms)} runs"
                )
            for name, target in TARGETS_MS.items():
                print(f"    target: {name} summary < {target:.0f} ms")
            if args.bookkeeping_batches:
                cost = measure_bookkeeping_cost(reg, args.bookkeeping_batches)
                on, off = cost.rate(cost.on), cost.rate(cost.off)
                print(
                    f"    push, {PUSH_BATCH}-visit batches anywhere in the county: {on:,.0f}/s "
                    f"with the case bookkeeping, {off:,.0f}/s without ({on / off - 1:+.1%}); "
                    f"batches with {' '.join(f'{x:.2f}' for x in cost.on)} s, "
                    f"without {' '.join(f'{x:.2f}' for x in cost.off)} s"
                )
            if args.push_rounds:
                cost = measure_push_cost(reg, args.push_rounds, batches=2)
                on, off = cost.rate(cost.on), cost.rate(cost.off)
                print(
                    f"    push, {PUSH_BATCH}-visit batches anywhere in the county: {on:,.0f}/s "
                    f"with the report indexes, {off:,.0f}/s without ({on / off - 1:+.1%}); "
                    f"batches with {' '.join(f'{x:.2f}' for x in cost.on)} s, "
                    f"without {' '.join(f'{x:.2f}' for x in cost.off)} s"
                )


if __name__ == "__main__":
    main()
