"""Server time of the console's review pages (cases, a case, warnings, conflicts, quarantine) on
the demo county, against the console's limit of 300 ms a page.

The bench loads the demo county into its own SQLite database under /tmp/fieldsync-bench/
(`console_review.db`), refers a share of its households (cases at verification), re-evaluates the
risk rules (warnings), then requests each page as the county supervisor through the app's own test
client: median and p95 of `--repeat` requests, the limit measured in the same run.

    python bench/console_review.py [--refer 120] [--repeat 30]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from html import unescape

from register import SQLITE_DIR, bench_settings, print_machine
from sqlalchemy import select

from server import migrate
from server.app import create_app
from server.auth.actor import system_actor
from server.db import utcnow
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.service import load_demo_county
from server.households.models import Household
from server.monitoring.models import MonitoringCase
from server.monitoring.referrals import ReferralRequest, refer_many
from server.monitoring.terms import ReferralChannel
from server.runtime import Runtime
from server.warnings import service as warnings

LIMIT_MS = 300.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refer", type=int, default=120, help="households referred (cases)")
    parser.add_argument("--repeat", type=int, default=30, help="requests per page")
    args = parser.parse_args()
    print_machine(["sqlite"])

    SQLITE_DIR.mkdir(parents=True, exist_ok=True)
    path = SQLITE_DIR / "console_review.db"
    for leftover in SQLITE_DIR.glob("console_review.db*"):
        leftover.unlink()
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    app = create_app(bench_settings(url))
    rt: Runtime = app.extensions["fieldsync"]
    with rt.db.unit_of_work() as session:
        load_demo_county(session, rt.codec, rt.passwords)
        households = list(
            session.scalars(select(Household.id).order_by(Household.id).limit(args.refer))
        )
        refer_many(
            session,
            system_actor("bench"),
            [
                ReferralRequest(h, ReferralChannel.CADRE_SCREENING, ["illness"], note="bench")
                for h in households
            ],
            now=utcnow(),
            clock=rt.clock,
            codec=rt.codec,
        )
    outcome = warnings.reevaluate(rt.db, now=utcnow())
    with rt.db.unit_of_work(write=False) as session:
        case_id = session.scalars(select(MonitoringCase.id).limit(1)).one()
    print(f"data    : {len(households)} cases, warnings {outcome.as_dict()}")

    client = app.test_client()
    password = {a.username: a.password for a in DEMO_ACCOUNTS}["supervisor"]
    page = client.get("/login").get_data(as_text=True)
    match = _CSRF.search(page)
    assert match is not None
    response = client.post(
        "/login",
        data={
            "csrf_token": unescape(match.group(1)),
            "username": "supervisor",
            "password": password,
        },
    )
    assert response.status_code == 302, response.status_code

    pages = {
        "cases (all, 50 a page)": "/cases?stage=",
        "cases (county queue)": "/cases",
        "one case": f"/cases/{case_id}",
        "warnings (all)": "/warnings?status=",
        "conflicts (all)": "/conflicts?status=",
        "quarantine": "/quarantine",
    }
    print(f"{'page':<24} {'median ms':>10} {'p95 ms':>8} {'median / limit':>15}")
    for name, target in pages.items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get(target)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (target, response.status_code)
        times.sort()
        median = statistics.median(times)
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        print(f"{name:<24} {median:>10.1f} {p95:>8.1f} {median / LIMIT_MS:>15.2f}")
    rt.db.dispose()


if __name__ == "__main__":
    main()
