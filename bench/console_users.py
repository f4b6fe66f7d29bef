"""Server time of the console's users and devices pages on the demo county (issue 14: every page
< 300 ms).

Builds the demo county (`server/demo/`) in its own SQLite file and, when a PostgreSQL server
answers, in a database named `fieldsync_bench_console_users`; adds 150 more collectors (so the
users list pages) and 300 tablets with missing `device_seq` ranges (so the devices list pages);
logs in through the login form and times each page's whole request inside the app (WSGI in, HTML
out — no network, no browser). Prints p50 and max per page beside the 300 ms limit.

    python bench/console_users.py [--db sqlite|postgresql|both] [--runs 15]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import time
import uuid
from html import unescape

from flask import Flask
from flask.testing import FlaskClient
from register import POSTGRES_ADMIN_URL, SQLITE_DIR, _Postgres, bench_settings, print_machine
from sqlalchemy import create_engine, select, text

from server import migrate
from server.app import create_app
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.county import COUNTY_CODE, TOWNSHIP_CODES, VILLAGE_CODES
from server.demo.service import load_demo_county
from server.devices.models import Device, DeviceEnrolment, DeviceSequenceGap
from server.runtime import Runtime
from server.users.models import Role, User
from server.users.service import create_user

NAME = "fieldsync_bench_console_users"
LIMIT_MS = 300.0
EXTRA_USERS = 150
TABLETS = 300
PASSWORDS = {account.username: account.password for account in DEMO_ACCOUNTS}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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


def add_people_and_tablets(rt: Runtime) -> None:
    """More collectors across the county's villages, and tablets with gaps for all collectors."""
    villages = [code for township in TOWNSHIP_CODES for code in VILLAGE_CODES[township]]
    with rt.db.unit_of_work() as session:
        for i in range(EXTRA_USERS):
            create_user(
                session,
                rt.passwords,
                username=f"bench.collector{i:03d}",
                password="bench-password-2026",
                role=Role.COLLECTOR,
                regions=[villages[i % len(villages)]],
            )
        collectors = session.scalars(select(User.id).where(User.role == Role.COLLECTOR)).all()
        for i in range(TABLETS):
            device = Device(
                id=uuid.uuid4(),
                label=f"平板 {i + 1}",
                registered_by_id=collectors[i % len(collectors)],
                highest_seq=100,
            )
            session.add(device)
            session.flush()
            session.add_all(
                DeviceSequenceGap(device_id=device.id, first_seq=first, last_seq=first + 2)
                for first in range(10, 60, 10)
            )


def pages_to_time(rt: Runtime, enrolment_id: uuid.UUID) -> list[tuple[str, str, str]]:
    """(name, user, path) of each page measured."""
    township, village = TOWNSHIP_CODES[0], VILLAGE_CODES[TOWNSHIP_CODES[0]][0]
    return [
        ("users, list", "admin", "/users"),
        ("users, page 3", "admin", "/users?offset=100"),
        ("users, collectors of a township", "admin", f"/users?role=collector&region={township}"),
        ("user collector1", "admin", "/users/collector1"),
        (
            "user collector1, picker at the county",
            "admin",
            f"/users/collector1?under={COUNTY_CODE}",
        ),
        ("user, picker at a village", "admin", f"/users/collector1?under={village}"),
        ("devices, admin", "admin", "/devices"),
        ("devices, admin, page 4", "admin", "/devices?offset=150"),
        ("devices, one user", "admin", "/devices?owner=collector1"),
        ("devices, county supervisor", "supervisor", "/devices"),
        ("enrolment page", "admin", f"/devices/enrolments/{enrolment_id}"),
        ("enrolment QR code (SVG, audited)", "admin", f"/devices/enrolments/{enrolment_id}/qr.svg"),
    ]


def measure(app: Flask, rt: Runtime, runs: int) -> None:
    clients = {user: log_in(app, user) for user in ("supervisor", "admin")}
    admin = clients["admin"]
    form = admin.get("/devices").get_data(as_text=True)
    token = unescape(_CSRF.search(form).group(1))  # type: ignore[union-attr]
    made = admin.post("/devices/enrolments", data={"csrf_token": token, "username": "collector1"})
    assert made.status_code == 302, made.status_code
    with rt.db.unit_of_work(write=False) as session:
        enrolment_id = session.scalars(select(DeviceEnrolment.id)).one()
    print(f"{'page':<42} {'status':>6} {'p50 ms':>8} {'max ms':>8} {'p50/limit':>10}")
    worst = 0.0
    for name, user, path in pages_to_time(rt, enrolment_id):
        client = clients[user]
        client.get(path)  # warm-up: templates compiled, caches filled
        times, status = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            status = client.get(path).status_code
            times.append((time.perf_counter() - started) * 1000)
        p50, top = statistics.median(times), max(times)
        worst = max(worst, p50)
        print(f"{name:<42} {status:>6} {p50:>8.1f} {top:>8.1f} {p50 / LIMIT_MS:>9.0%}")
    verdict = "within" if worst < LIMIT_MS else "OVER"
    print(f"slowest p50: {worst:.1f} ms ({worst / LIMIT_MS:.0%} of {LIMIT_MS:.0f} ms), {verdict}")


def demo_app(url: str) -> tuple[Flask, Runtime]:
    migrate.upgrade(url)
    app = create_app(bench_settings(url))
    rt: Runtime = app.extensions["fieldsync"]
    with rt.db.unit_of_work() as session:
        summary = load_demo_county(session, rt.codec, rt.passwords)
    add_people_and_tablets(rt)
    print(f"demo county: {summary}; +{EXTRA_USERS} collectors, {TABLETS} tablets")
    return app, rt


def run_sqlite(runs: int) -> None:
    folder = SQLITE_DIR / "console-users"
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
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not postgres_answers():
        print("PostgreSQL does not answer: SQLite only")
        kinds = ["sqlite"]
    print_machine(kinds)  # type: ignore[arg-type]
    if "sqlite" in kinds:
        run_sqlite(args.runs)
    if "postgresql" in kinds:
        run_postgres(args.runs)


if __name__ == "__main__":
    main()
