"""Server time of the console's forms and exports pages on the demo county (issue 14: every page
under 300 ms). Builds the demo county in a fresh SQLite file (or, with --postgres URL, in a
database `fieldsync_bench_console_forms` created and dropped on that server), logs in through
the login form as `admin` and `supervisor`, and renders each page `--repeats` times through the
app's test client (no network), after one warm-up.

    python bench/console_forms_exports.py [--repeats 15] [--postgres postgresql+psycopg://...]

Prints, for each page, the median and slowest milliseconds and the median as a share of the
300 ms limit.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from html import unescape
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from server import migrate
from server.app import create_app
from server.config import Settings
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.service import load_demo_county

LIMIT_MS = 300.0
DATABASE = "fieldsync_bench_console_forms"
PASSWORDS = {account.username: account.password for account in DEMO_ACCOUNTS}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

PAGES = {
    "admin": [
        "/forms",
        "/forms/household_visit",
        "/forms/household_visit/versions/1",
        "/exports",
        "/exports?dataset=visits",
    ],
    "supervisor": ["/exports", "/exports?dataset=members", "/exports/jobs"],
}


def logged_in(client: FlaskClient, username: str) -> FlaskClient:
    page = client.get("/login").get_data(as_text=True)
    match = _CSRF.search(page)
    assert match is not None
    response = client.post(
        "/login",
        data={
            "csrf_token": unescape(match.group(1)),
            "username": username,
            "password": PASSWORDS[username],
        },
    )
    assert response.status_code == 302, response.status_code
    return client


def time_page(client: FlaskClient, path: str, repeats: int) -> list[float]:
    first = client.get(path)
    assert first.status_code == 200, (path, first.status_code)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(path)
        response.get_data()
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return timings


def run(database_url: str, folder: Path, repeats: int) -> None:
    migrate.upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        instance_dir=folder,
        attachment_dir=folder / "attachments",
        log_level="WARNING",
    )
    app = create_app(settings)
    rt = app.extensions["fieldsync"]
    with rt.db.unit_of_work() as session:
        load_demo_county(session, rt.codec, rt.passwords)
    try:
        print(f"{'page':48} {'user':11} {'median ms':>10} {'max ms':>8} {'of limit':>9}")
        for username, paths in PAGES.items():
            client = logged_in(app.test_client(), username)
            for path in paths:
                timings = time_page(client, path, repeats)
                median = statistics.median(timings)
                print(
                    f"{path:48} {username:11} {median:10.1f} {max(timings):8.1f} "
                    f"{median / LIMIT_MS:9.0%}"
                )
    finally:
        rt.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (its `postgres` database)")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-console-") as folder:
        if not args.postgres:
            print("database: SQLite")
            run(f"sqlite:///{folder}/fieldsync.db", Path(folder), args.repeats)
            return
        server = make_url(args.postgres)
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
            connection.execute(text(f"CREATE DATABASE {DATABASE}"))
        try:
            print("database: PostgreSQL")
            url = server.set(database=DATABASE).render_as_string(hide_password=False)
            run(url, Path(folder), args.repeats)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            admin.dispose()


if __name__ == "__main__":
    main()
