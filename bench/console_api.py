"""Speed of the console's read APIs on a generated register (`register.py`), each requested over
HTTP from the real app served on a local port: household search by township, by a part of the
head's name, by identity number (hashed lookup, audited), a page deep into the cursor, the region
tree below the county with its counts, and the users and devices listings. A township supervisor
and the administrator ask. Registers are kept under the name `fieldsync_bench_console_api`
(/tmp/fieldsync-bench/console_api, PostgreSQL `fieldsync_bench_console_api_<size>`), apart from
the other benchmarks' copies. No limit is stated for these; the figures are for comparison.

    python bench/console_api.py [--db sqlite|postgresql|both] [--reuse] [--size 50k] [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import register
import requests
from register import (
    COUNTY,
    SIZES,
    Register,
    add_common_arguments,
    database_kinds,
    prepared_register,
    print_machine,
    township_code,
)
from sqlalchemy import select
from tablet import served_app

from server.auth.passwords import PasswordHasher
from server.db import Database
from server.households.models import Member
from server.sensitive import SensitiveCodec
from server.users.models import Role
from server.users.service import create_user

NAME = "fieldsync_bench_console_api"
register.SQLITE_DIR = Path("/tmp/fieldsync-bench/console_api")
PASSWORD = "bench-console-password"


def _prepare(reg: Register) -> str:
    """Users asking (admin, a supervisor of township 1) and an identity number of township 1."""
    db = Database(reg.url)
    codec = SensitiveCodec(reg.settings.data_key_bytes)
    passwords = PasswordHasher(time_cost=1, memory_kib=64)
    try:
        with db.unit_of_work() as session:
            for username, role, regions in (
                ("bench_console_admin", Role.ADMIN, []),
                ("bench_console_township", Role.SUPERVISOR, [township_code(1)]),
            ):
                create_user(
                    session,
                    passwords,
                    username=username,
                    password=PASSWORD,
                    role=role,
                    regions=regions,
                )
            cipher = session.scalars(
                select(Member.id_number_cipher).where(Member.id_number_cipher.is_not(None)).limit(1)
            ).one()
        assert cipher is not None
        return codec.reveal("id_number", cipher)
    finally:
        db.dispose()


def _timed(runs: int, call: Callable[[], requests.Response]) -> tuple[float, float, int]:
    samples = []
    status = 0
    for _ in range(runs):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        status = response.status_code
        assert status == 200, response.text
    return statistics.median(samples), max(samples), status


def measure(reg: Register, runs: int, id_number: str) -> None:
    with served_app(reg.settings) as served:
        http = requests.Session()

        def token(username: str) -> dict[str, str]:
            answer = http.post(
                f"{served.url}/api/v1/auth/login",
                json={"username": username, "password": PASSWORD},
                timeout=60,
            )
            return {"Authorization": f"Bearer {answer.json()['token']}"}

        admin, township = token("bench_console_admin"), token("bench_console_township")

        def get(path: str, headers: dict[str, str], **args: str | int) -> requests.Response:
            return http.get(f"{served.url}{path}", params=args, headers=headers, timeout=60)

        deep = get("/api/v1/households", admin, limit=1000)
        for _ in range(4):  # the cursor after 5,000 households
            deep = get("/api/v1/households", admin, limit=1000, cursor=deep.json()["next_cursor"])
        cursor = deep.json()["next_cursor"]
        figures = {
            "search: township supervisor, first page of 50": lambda: get(
                "/api/v1/households", township
            ),
            "search: admin, township 2": lambda: get(
                "/api/v1/households", admin, region=township_code(2)
            ),
            "search: admin, head name contains 王": lambda: get(
                "/api/v1/households", admin, head_name="王"
            ),
            "search: admin, identity number (audited)": lambda: get(
                "/api/v1/households", admin, id_number=id_number
            ),
            "search: admin, page after 5,000": lambda: get(
                "/api/v1/households", admin, cursor=cursor
            ),
            "regions below the county, with counts": lambda: get(
                "/api/v1/regions", admin, parent=COUNTY
            ),
            "users, first page": lambda: get("/api/v1/users", admin),
            "devices, first page": lambda: get("/api/v1/devices", admin),
        }
        for name, call in figures.items():
            median, worst, _ = _timed(runs, call)
            print(f"    {name:<48} median {median:7.1f} ms, worst {worst:7.1f} ms ({runs} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--size", choices=sorted(SIZES), default="50k")
    parser.add_argument("--runs", type=int, default=15, help="timed requests per figure")
    args = parser.parse_args()
    kinds = database_kinds(args.db)
    print_machine(kinds)
    size = SIZES[args.size]
    print(f"register: {size.households:,} households, {size.villages} villages")
    for kind in kinds:
        with prepared_register(kind, args.size, reuse=args.reuse, name=NAME) as reg:
            id_number = _prepare(reg)
            print(f"{kind}:")
            measure(reg, args.runs, id_number)


if __name__ == "__main__":
    main()
