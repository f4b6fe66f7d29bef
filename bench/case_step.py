"""The time of one case step (a reviewer's decision on a monitoring case), through the same
service and unit of work the API uses, on SQLite and PostgreSQL: the village review (notice
checks against the region's settings), the township review and the county approval (which writes
the household's status, type and causes through the change log). Median and p95; target < 20 ms.

The bench builds its own database under its own name (`fieldsync_bench_case_step`; SQLite under
/tmp/fieldsync-bench/) with 20,000 households in 40 villages and 5 % of them referred.

    python bench/case_step.py [--db sqlite|postgresql|both] [--cases 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from register import (
    POSTGRES_ADMIN_URL,
    SQLITE_DIR,
    bench_settings,
    database_kinds,
    print_machine,
)
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from server import migrate
from server.auth.actor import Actor, system_actor
from server.households.loading import NewHousehold, load_households
from server.monitoring.cases import StepRequest, take_step
from server.monitoring.models import MonitoringCase
from server.monitoring.referrals import ReferralRequest, refer_many
from server.monitoring.terms import CaseStage, ReferralChannel, StepDecision
from server.regions.service import add_region
from server.runtime import Runtime
from server.users.models import Role
from server.users.service import create_user

DATABASE = "fieldsync_bench_case_step"
HOUSEHOLDS = 20_000
VILLAGES = 40
REFERRED_SHARE = 0.05
TARGET_MS = 20.0
PROVINCE, CITY, COUNTY = "980000000000", "980100000000", "980102000000"


def _database_url(kind: str) -> str:
    if kind == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        path = SQLITE_DIR / f"{DATABASE}.db"
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = make_url(POSTGRES_ADMIN_URL)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    engine.dispose()
    return admin.set(database=DATABASE).render_as_string(hide_password=False)


def _villages() -> list[str]:
    townships = [f"980102{t:03d}000" for t in range(1, 5)]
    return [f"{t[:9]}{v:03d}" for t in townships for v in range(1, VILLAGES // 4 + 1)]


def prepare(rt: Runtime, cases: int) -> tuple[Actor, list[uuid.UUID]]:
    """Regions, a county supervisor, the households, and `cases` of them referred, with their
    cases moved to the village review (the verification visit is not what is measured)."""
    villages = _villages()
    with rt.db.unit_of_work() as session:
        add_region(session, PROVINCE, "基准省")
        add_region(session, CITY, "基准市")
        add_region(session, COUNTY, "基准县")
        for township in sorted({v[:9] + "000" for v in villages}):
            add_region(session, township, f"镇{township[6:9]}")
        for village in villages:
            add_region(session, village, f"村{village[9:]}")
        user = create_user(
            session,
            rt.passwords,
            username="bench_county",
            password="bench-password-1",
            role=Role.SUPERVISOR,
            regions=[COUNTY],
        )
        user_id = user.id
    stamp = f"{int(time.time() * 1000) - 86_400_000:013d}-00000-server"
    ids = [uuid.uuid4() for _ in range(HOUSEHOLDS)]
    for start in range(0, HOUSEHOLDS, 2000):
        batch = [
            NewHousehold(
                household_id,
                {
                    "village_code": villages[i % len(villages)],
                    "household_no": f"B{i:06d}",
                    "category": "ordinary",
                },
                [(uuid.uuid4(), {"name": "基准户主", "relation": "head", "sex": "male"})],
            )
            for i, household_id in enumerate(ids[start : start + 2000], start)
        ]
        with rt.db.unit_of_work() as session:
            load_households(session, rt.codec, batch, clock=stamp)
    referred = ids[:: int(1 / REFERRED_SHARE)][: max(cases, int(HOUSEHOLDS * REFERRED_SHARE))]
    now = datetime.now(UTC)
    with rt.db.unit_of_work() as session:
        results = refer_many(
            session,
            system_actor("bench"),
            [
                ReferralRequest(h, ReferralChannel.CADRE_SCREENING, ["illness"], note="基准")
                for h in referred
            ],
            now=now,
            clock=rt.clock,
            codec=rt.codec,
        )
        session.execute(update(MonitoringCase).values(stage=CaseStage.VILLAGE_REVIEW, version=1))
    actor = Actor(
        user_id=user_id, username="bench_county", role=Role.SUPERVISOR, region_codes=(COUNTY,)
    )
    return actor, [r.case_id for r in results if r.case_id is not None][:cases]


def measure(rt: Runtime, actor: Actor, case_ids: list[uuid.UUID]) -> dict[str, list[float]]:
    today = datetime.now(UTC).date()
    requests = {
        "village_review": StepRequest(
            stage=CaseStage.VILLAGE_REVIEW,
            decision=StepDecision.APPROVE,
            deliberation_date=today - timedelta(days=10),
            notice_start=today - timedelta(days=9),
            notice_end=today - timedelta(days=3),
            objections=["无"],
            comment="评议通过",
        ),
        "township_review": StepRequest(
            stage=CaseStage.TOWNSHIP_REVIEW, decision=StepDecision.APPROVE, comment="初审通过"
        ),
        "county_review": StepRequest(
            stage=CaseStage.COUNTY_REVIEW,
            decision=StepDecision.APPROVE,
            monitoring_type="marginal",
            risk_causes=["illness"],
            comment="审定",
        ),
    }
    timings: dict[str, list[float]] = {name: [] for name in requests}
    for name, request in requests.items():
        for case_id in case_ids:
            started = time.perf_counter()
            with rt.db.unit_of_work() as session:
                take_step(
                    session,
                    actor,
                    case_id,
                    request,
                    now=datetime.now(UTC),
                    clock=rt.clock,
                    codec=rt.codec,
                )
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--cases", type=int, default=300, help="cases taken through each step")
    args = parser.parse_args()
    kinds = database_kinds(args.db)
    print_machine(kinds)
    print(f"\n== one case step ({HOUSEHOLDS:,} households, {args.cases} cases per stage)")
    print(f"{'database':<11}{'stage':<17}{'median ms':>10}{'p95 ms':>9}")
    for kind in kinds:
        url = _database_url(kind)
        migrate.upgrade(url)
        rt = Runtime.build(bench_settings(url))
        try:
            actor, case_ids = prepare(rt, args.cases)
            timings = measure(rt, actor, case_ids)
        finally:
            rt.db.dispose()
        every = [t for values in timings.values() for t in values]
        for name, values in [*timings.items(), ("every step", every)]:
            verdict = "ok" if statistics.median(values) < TARGET_MS else "MISSED"
            print(
                f"{kind:<11}{name:<17}{statistics.median(values):>10.1f}{_p95(values):>9.1f}"
                + (f"  {verdict}" if name == "every step" else "")
            )
    print(f"target: one step < {TARGET_MS:.0f} ms (median)")


if __name__ == "__main__":
    main()
