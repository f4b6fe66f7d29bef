"""How fieldsync is served, everywhere: `gunicorn -c gunicorn.conf.py wsgi:app` (production, `make
run`, the benchmarks). docs/operations.md ("Serving model") has the measurements behind it.

Threaded workers (`gthread`) with keep-alive. A tablet's sync is a few small requests in a row
(push, then pull pages) on one connection; gunicorn's default sync workers close the connection
after every response and give a whole process to each request, so one slow upload or one
password hash held a worker while every other tablet queued. With threads, a worker serves
several requests at once: while one waits on the database, hashes a password (Argon2 runs
without Python's lock) or reads a slow body, its other threads go on.

gunicorn reads this file by itself when started from the repository root. Every setting can be
overridden on the command line (`--workers`, `--threads`, `--bind`) or through
`GUNICORN_CMD_ARGS`; `WEB_CONCURRENCY` sets the number of workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Processes: Python runs one thread at a time per process, so the CPU-bound part of a push
# scales with processes. Two per core: a worker whose threads all wait on the database or a
# password hash leaves its core to another.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))
worker_class = "gthread"
# Requests served at once per worker. More threads than this only queue for the same core and
# the same database connections (the pool holds as many, server/db.py).
threads = 8
bind = "127.0.0.1:8000"
# Seconds an idle keep-alive connection stays open: long enough for a tablet's push, its pull
# pages and its attachment uploads to share one connection, short enough not to hoard them.
keepalive = 15
# A push of 1,000 visits on a slow disk takes a few seconds; a request silent for this long is
# stuck, and its worker is restarted.
timeout = 120
graceful_timeout = 30
# fieldsync logs every request itself (key=value, server/request_log.py).
accesslog = None


# --- the scheduler beside the demo server (`make run`) ---------------------------------------
# With RUN_SCHEDULER=1, the gunicorn master (never a worker: the hooks below run in the master
# only, once) starts one `fieldsync scheduler` process beside the workers and stops it on exit.
# Production runs `fieldsync scheduler` as a service of its own (docs/operations.md); several of
# them, here or on other hosts, still execute each job run once.
_scheduler: subprocess.Popen[bytes] | None = None


def on_starting(server: object) -> None:
    global _scheduler
    if os.environ.get("RUN_SCHEDULER") == "1":
        command = str(Path(sys.executable).with_name("fieldsync"))
        _scheduler = subprocess.Popen([command, "scheduler"])  # noqa: S603 (our own command)


def on_exit(server: object) -> None:
    if _scheduler is not None and _scheduler.poll() is None:
        _scheduler.terminate()
        try:
            _scheduler.wait(timeout=graceful_timeout)
        except subprocess.TimeoutExpired:
            _scheduler.kill()
