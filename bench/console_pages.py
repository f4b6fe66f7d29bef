"""Server time of the console's pages on the demo county (issue 14: every page < 300 ms).

Builds the demo county (`server/demo/`) in its own SQLite file and, when a PostgreSQL server
answers, in a database named `fieldsync_bench_console`; logs in through the login form (CSRF
token included) and times each page's whole request inside the app (WSGI in, HTML out — no
network, no browser) over several runs: the dashboard at county, township and village level, the
register's list and searches, a household's page, and every other GET page the console blueprint
registers that needs no argument. Prints p50 and max per page beside the 300 ms limit.

    python bench/console_pages.py [--db sqlite|postgresql|both] [--runs 15]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape

from flask import Flask
from flask.testing import FlaskClient
from register import POSTGRES_ADMIN_URL, SQLITE_DIR, _Postgres, bench_settings, print_machine
from sqlalchemy import create_engine, select, text

from server import migrate
from server.app import create_app
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.county import TOWNSHIP_CODES, VILLAGE_CODES
from server.demo.service import load_demo_county
from server.households.models import Household, Member
from server.runtime import Runtime

NAME = "fieldsync_bench_console"
LIMIT_MS = 300.0
PASSWORDS = {account.username: account.password for account in DEMO_ACCOUNTS}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Console GET endpoints that are not pages to time (they redirect or serve files).
NOT_PAGES = frozenset({"console.static", "console.language"})


@dataclass(frozen=True)
class Page:
    name: str
    user: str
    # Makes the request; returns its status and the milliseconds the timed request took.
    request: Callable[[FlaskClient], tuple[int, float]]


def log_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = unescape(_CSRF.search(form).group(1))  # type: ignore[union-attr]
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORDS[username]},
    )
    assert response.status_code == 302, f"login of {username} failed: {response.status_code}"
    return client


def get(path: str) -> Callable[[FlaskClient], tuple[int, float]]:
    def request(client: FlaskClient) -> tuple[int, float]:
        started = time.perf_counter()
        status = client.get(path).status_code
        return status, (time.perf_counter() - started) * 1000

    return request


def lookup(id_number: str) -> Callable[[FlaskClient], tuple[int, float]]:
    """The identity-number lookup form posted (only the POST is timed, not the form's GET)."""

    def post(client: FlaskClient) -> tuple[int, float]:
        form = client.get("/households").get_data(as_text=True)
        token = unescape(_CSRF.search(form).group(1))  # type: ignore[union-attr]
        started = time.perf_counter()
        status = client.post(
            "/households/lookup", data={"csrf_token": token, "id_number": id_number}
        ).status_code
        return status, (time.perf_counter() - started) * 1000

    return post


def pages_to_time(app: Flask, rt: Runtime, second_page: str | None) -> list[Page]:
    """The pages measured, with the demo account each is opened as."""
    village = VILLAGE_CODES[TOWNSHIP_CODES[0]][0]
    with rt.db.unit_of_work(write=False) as session:
        # The household with the most members in the first village: the fullest page.
        household = (
            session.scalars(
                select(Household)
                .where(
                    Household.village_code == village,
                    Household.monitoring_status != "not_monitored",
                )
                .order_by(Household.household_no)
            ).first()
            or session.scalars(select(Household).order_by(Household.household_no)).first()
        )
        assert household is not None
        head = session.get(Member, household.head_member_id) if household.head_member_id else None
        head_name = (head.name or "")[:1] if head is not None else ""
        cipher = session.scalar(
            select(Member.id_number_cipher).where(Member.id_number_cipher.is_not(None)).limit(1)
        )
    id_number = rt.codec.reveal("id_number", cipher) if cipher else "990000000000000000"
    sup = "supervisor"
    pages = [
        Page("dashboard, county", sup, get("/")),
        Page("dashboard, township", sup, get(f"/?region={TOWNSHIP_CODES[0]}")),
        Page("dashboard, village", sup, get(f"/?region={village}")),
        Page("households, list", sup, get("/households")),
        Page("households, page 2", sup, get(second_page or "/households?cursor=")),
        Page("households, by head's name", sup, get(f"/households?head_name={head_name}")),
        Page(
            "households, village + status",
            sup,
            get(f"/households?region={village}&status=monitored"),
        ),
        Page(f"household {household.household_no}", sup, get(f"/households/{household.id}")),
        Page(
            "household, revealed (audited)",
            sup,
            get(f"/households/{household.id}?reveal=1"),
        ),
        Page("households, identity-number lookup", sup, lookup(id_number)),
    ]
    covered = {"console.home", "console.households"}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("console.") or rule.endpoint in NOT_PAGES:
            continue
        if rule.endpoint in covered or rule.arguments or "GET" not in (rule.methods or ()):
            continue
        pages.append(Page(rule.rule, "admin", get(rule.rule)))
    return pages


def second_page_path(client: FlaskClient) -> str | None:
    html = client.get("/households").get_data(as_text=True)
    found = re.search(r'href="([^"]+)" rel="next"', html)
    return unescape(found.group(1)) if found else None


def measure(app: Flask, rt: Runtime, runs: int) -> None:
    clients = {user: log_in(app, user) for user in ("supervisor", "admin")}
    pages = pages_to_time(app, rt, second_page_path(clients["supervisor"]))
    print(f"{'page':<42} {'status':>6} {'p50 ms':>8} {'max ms':>8} {'p50/limit':>10}")
    worst = 0.0
    for page in pages:
        client = clients[page.user]
        page.request(client)  # warm-up: templates compiled, caches filled
        measured = [page.request(client) for _ in range(runs)]
        times = [ms for _status, ms in measured]
        status = measured[-1][0]
        p50, top = statistics.median(times), max(times)
        worst = max(worst, p50)
        print(f"{page.name:<42} {status:>6} {p50:>8.1f} {top:>8.1f} {p50 / LIMIT_MS:>9.0%}")
    verdict = "within" if worst < LIMIT_MS else "OVER"
    print(f"slowest p50: {worst:.1f} ms ({worst / LIMIT_MS:.0%} of {LIMIT_MS:.0f} ms), {verdict}")


def demo_app(url: str) -> tuple[Flask, Runtime]:
    migrate.upgrade(url)
    app = create_app(bench_settings(url))
    rt: Runtime = app.extensions["fieldsync"]
    with rt.db.unit_of_work() as session:
        summary = load_demo_county(session, rt.codec, rt.passwords)
    print(f"demo county: {summary}")
    return app, rt


def run_sqlite(runs: int) -> None:
    folder = SQLITE_DIR / "console"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\n== SQLite ({folder / 'console.db'})")
    app, rt = demo_app(f"sqlite:///{folder / 'console.db'}")
    try:
        measure(app, rt, runs)
    finally:
        rt.db.dispose()


def postgres_answers() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def run_postgres(runs: int) -> None:
    if not postgres_answers():
        print("\n== PostgreSQL: no server answers; skipped")
        return
    server = _Postgres()
    server.create(NAME)
    print(f"\n== PostgreSQL (database {NAME})")
    app, rt = demo_app(server.url(NAME))
    try:
        measure(app, rt, runs)
    finally:
        rt.db.dispose()
        server.drop(NAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    print_machine(kinds)  # type: ignore[arg-type]
    if "sqlite" in kinds:
        run_sqlite(args.runs)
    if "postgresql" in kinds:
        run_postgres(args.runs)


if __name__ == "__main__":
    main()
