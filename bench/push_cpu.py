"""Push cost per submission in wall time and in CPU time, so that two trees (e.g. main and an
older commit in a worktree of its own) can be compared on a loaded machine: batches of 500
household visits POSTed to `gunicorn wsgi:app` (one worker) on a fresh register of the tree the
script is run from (the current directory: its `bench/` and its app), with each batch's wall time,
the worker's CPU time and the CPU time of the PostgreSQL backends of the bench database (from
/proc; a local server).

    cd <tree> && .venv/bin/python <this file> postgresql|sqlite [batches]   # SIZE=50k (default)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))

from register import COUNTY_COLLECTOR, PASSWORD, DbKind, prepared_register
from tablet import HttpTablet, gunicorn_app, known_households, visit_batches

TICK = os.sysconf("SC_CLK_TCK")
BATCH = 500


def _procs() -> list[tuple[int, int, str, float]]:
    found = []
    for path in Path("/proc").iterdir():
        entry = path.name
        if not entry.isdigit():
            continue
        try:
            stat = (path / "stat").read_text()
            cmd = (path / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        found.append((int(entry), ppid, cmd, cpu))
    return found


def cpu_of(port: int, database: str) -> tuple[float, float]:
    procs = _procs()
    bound = f"--bind=127.0.0.1:{port}"
    masters = {pid for pid, _, cmd, _ in procs if bound in cmd}
    app = sum(cpu for pid, ppid, cmd, cpu in procs if ppid in masters)
    # Backends are titled "postgres: [<cluster>: ]<user> <database> <client> <state>".
    db = sum(
        cpu for _, _, cmd, cpu in procs if cmd.startswith("postgres: ") and f" {database} " in cmd
    )
    return app, db


def main() -> None:
    kind: DbKind = "postgresql" if sys.argv[1] == "postgresql" else "sqlite"
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    with prepared_register(kind, os.environ.get("SIZE", "50k"), reuse=False) as reg:
        database = reg.url.rsplit("/", 1)[1] if kind == "postgresql" else "-"
        households = known_households(reg.settings, (batches + 1) * BATCH, seed=3)
        with gunicorn_app(reg.settings, 1) as url:
            port = int(url.rsplit(":", 1)[1])
            tablet = HttpTablet.login(url, COUNTY_COLLECTOR, PASSWORD)
            bodies = visit_batches(tablet, households, BATCH)
            tablet.push(bodies[0])  # warm-up
            rows = []
            for body in bodies[1:]:
                app0, db0 = cpu_of(port, database)
                started = time.perf_counter()
                response = tablet.push(body)
                wall = time.perf_counter() - started
                app1, db1 = cpu_of(port, database)
                assert {r["status"] for r in response["results"]} == {"accepted"}
                rows.append((wall, app1 - app0, db1 - db0))
    per = [(w * 1000 / BATCH, a * 1000 / BATCH, d * 1000 / BATCH) for w, a, d in rows]
    print(f"{kind}: {len(rows)} batches of {BATCH}; per submission, ms (wall, app CPU, db CPU)")
    for w, a, d in per:
        print(f"   {w:6.2f} {a:6.2f} {d:6.2f}")
    med = [statistics.median(x[i] for x in per) for i in range(3)]
    print(
        f"median: wall {med[0]:.2f} ms ({1000 / med[0]:,.0f}/s), app CPU {med[1]:.2f} ms, "
        f"db CPU {med[2]:.2f} ms, app+db CPU {med[1] + med[2]:.2f} ms "
        f"({1000 / (med[1] + med[2]):,.0f}/s of CPU)"
    )


if __name__ == "__main__":
    main()
