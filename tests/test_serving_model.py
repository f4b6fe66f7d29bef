"""The serving model (`gunicorn -c gunicorn.conf.py wsgi:app`, as production and `make run` start
it): one worker serves other requests while a client is slow to send its body, keeps the
connection open between requests, and its threads pushing to the same households at once lose
nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from server.config import DEV_SECRET_KEY, Settings
from server.households.models import Household
from server.runtime import Runtime
from server.submissions.models import Submission
from tests.conftest import PASSWORD, VILLAGE_A1
from tests.patience import PATIENCE, wait_until
from tests.sync.harness import PROJECT_ROOT, build_register, free_port
from tests.sync.helpers import HOUSEHOLD_A, visit

THREADS = 6
PUSHES_PER_THREAD = 3


@contextmanager
def gunicorn(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """gunicorn with the project's configuration and one worker process, on a free port."""
    port = free_port()
    executable = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert executable, "gunicorn is installed with fieldsync"
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "INSTANCE_DIR": str(settings.instance_dir),
        "ATTACHMENT_DIR": str(settings.attachment_dir),
        "SECRET_KEY": DEV_SECRET_KEY,
        "ENVIRONMENT": "testing",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "64",
        "LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / f"gunicorn-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                executable,
                "--config",
                "gunicorn.conf.py",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{port}",
                "wsgi:app",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited: {log_path.read_text(errors='replace')}")
        try:
            return requests.get(f"{url}/api/v1/health", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, what="gunicorn answering")
        yield url
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=PATIENCE)


def _login(url: str, username: str) -> tuple[str, str]:
    device_id = str(uuid.uuid4())
    response = requests.post(
        f"{url}/api/v1/auth/login",
        json={"username": username, "password": PASSWORD, "device_id": device_id},
        timeout=PATIENCE,
    )
    assert response.status_code == 200, response.text
    return response.json()["token"], device_id


def test_a_slow_upload_does_not_hold_the_only_worker(settings, rt: Runtime, tmp_path):
    build_register(rt, {"collector": [VILLAGE_A1]})
    with gunicorn(settings, tmp_path) as url:
        token, device_id = _login(url, "collector")
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as slow:
            # A push whose body is announced but not sent yet: a tablet on a weak link.
            slow.sendall(
                b"POST /api/v1/sync/push HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {token}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            response = requests.get(
                f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            assert response.status_code == 200
            assert response.json()["user"]["username"] == "collector"
        assert device_id


def test_the_connection_stays_open_between_requests(settings, rt: Runtime, tmp_path):
    build_register(rt, {"collector": [VILLAGE_A1]})
    with gunicorn(settings, tmp_path) as url:
        token, _ = _login(url, "collector")
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=PATIENCE)
        try:
            sockets = []
            for _ in range(3):
                connection.request(
                    "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
                )
                response = connection.getresponse()
                assert response.status == 200
                response.read()
                assert not response.will_close
                sockets.append(connection.sock)
            assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
        finally:
            connection.close()


def test_threads_of_one_worker_pushing_to_one_household_lose_nothing(
    settings, rt: Runtime, tmp_path
):
    build_register(rt, {f"collector{n}": [VILLAGE_A1] for n in range(THREADS)})
    with gunicorn(settings, tmp_path) as url:
        tablets = [_login(url, f"collector{n}") for n in range(THREADS)]
        # Stamps after the register's own (it was loaded just now), one per thread and round.
        base_ms = int(time.time() * 1000)
        incomes: list[int] = []
        failures: list[Any] = []
        lock = threading.Lock()

        def push(number: int, token: str, device_id: str) -> None:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {token}"
            for round_ in range(PUSHES_PER_THREAD):
                income = 10_000 + number * 100 + round_
                body = {
                    "device_id": device_id,
                    "batch_id": str(uuid.uuid4()),
                    "clock": f"{base_ms + number * 10 + round_}-00000-{device_id}",
                    "submissions": [
                        {
                            "instance_id": str(uuid.uuid4()),
                            "form_id": "household_visit",
                            "form_version": 1,
                            "collected_at": "2026-11-20T08:15:00+08:00",
                            "hlc": f"{base_ms + number * 10 + round_}-00000-{device_id}",
                            "device_seq": round_ + 1,
                            "base_revs": {},
                            "data": visit(HOUSEHOLD_A, annual_income=income),
                        }
                    ],
                }
                response = http.post(f"{url}/api/v1/sync/push", json=body, timeout=PATIENCE)
                with lock:
                    if response.status_code != 200:
                        failures.append(response.text)
                    elif response.json()["results"][0]["status"] != "accepted":
                        failures.append(response.json()["results"][0])
                    else:
                        incomes.append(income)

        threads = [
            threading.Thread(target=push, args=(n, *tablet)) for n, tablet in enumerate(tablets)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=PATIENCE)
        assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(incomes) == THREADS * PUSHES_PER_THREAD
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        stored = session.scalar(select(func.count()).select_from(Submission))
    assert stored == THREADS * PUSHES_PER_THREAD
    assert household is not None and household.rev > 1
    # The latest stamp wins whatever the order of arrival: the last thread's last round.
    assert float(household.annual_income or 0) == 10_000 + (THREADS - 1) * 100 + (
        PUSHES_PER_THREAD - 1
    )
