"""HTTP department sources against a real local server (threaded `http.server`): a timeout, a
500, half a body, a truncated CSV and a success — each failure recorded, nothing applied; and the
scheduled job fetching only what is due, once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from server.departments.fetching import fetch_source
from server.departments.jobs import fetch_due_sources
from server.departments.models import DepartmentFact, DepartmentImport, DepartmentSource
from server.runtime import Runtime
from tests.departments.world import (
    ALICE,
    BOB,
    MEDICAL_HEADER,
    MEDICAL_MAPPING,
    World,
    build_register,
    csv_bytes,
    make_source,
)

GOOD = csv_bytes([MEDICAL_HEADER, [ALICE, "a", "是", "10", ""], [BOB, "b", "是", "", ""]])


class Department(BaseHTTPRequestHandler):
    release: threading.Event
    hits: dict[str, int]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/slow":
            self.release.wait(30)  # until the test is over: the client must time out first
            return
        if self.path == "/error":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/half":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.close_connection = True
            return
        if self.path == "/truncated":  # no length, cut in the middle of a row
            body = GOOD[: GOOD.index(BOB.encode()) + 8]
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        if self.path == "/secret" and self.headers.get("Authorization") != "Bearer s3cret":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("Content-Length", str(len(GOOD)))
        self.end_headers()
        self.wfile.write(GOOD)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    release = threading.Event()
    hits: dict[str, int] = {}
    handler = type("Handler", (Department,), {"release": release, "hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def world(rt: Runtime, regions: list[str]) -> World:
    return build_register(rt)


def _imports(rt: Runtime) -> list[DepartmentImport]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(DepartmentImport)).all())


def _fact_count(rt: Runtime) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return len(session.scalars(select(DepartmentFact.fact)).all())


@pytest.mark.parametrize(
    ("path", "attempts", "message"),
    [
        ("/slow", 2, "timed out"),
        ("/error", 3, "HTTP 500"),
        ("/half", 3, "did not complete"),
        ("/truncated", 1, "bad rows"),
    ],
)
def test_a_failed_or_partial_fetch_is_recorded_and_applies_nothing(
    rt: Runtime,
    world: World,
    server: tuple[str, dict[str, int]],
    path: str,
    attempts: int,
    message: str,
) -> None:
    base, hits = server
    source_id = make_source(
        rt,
        "medical-http",
        "medical_insurance",
        MEDICAL_MAPPING,
        url=base + path,
        timeout_seconds=1,
    )
    result = fetch_source(rt, source_id, _now(), attempts=attempts, backoff=0.0)
    assert result.status == "failed"
    assert result.error is not None and message in result.error
    assert hits[path] == attempts  # retried when trying again may help, not otherwise
    (record,) = _imports(rt)
    assert record.status.value == "failed" and record.matched == 0
    assert record.error is not None and message in record.error["message"]
    assert _fact_count(rt) == 0


def test_a_successful_fetch_imports_the_file_with_the_token_from_the_environment(
    rt: Runtime,
    world: World,
    server: tuple[str, dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, _ = server
    monkeypatch.setenv("FIELDSYNC_DEPARTMENT_MEDICAL_TOKEN", "s3cret")
    source_id = make_source(
        rt,
        "medical-http",
        "medical_insurance",
        MEDICAL_MAPPING,
        url=base + "/secret",
        token_env="FIELDSYNC_DEPARTMENT_MEDICAL_TOKEN",
    )
    result = fetch_source(rt, source_id, _now(), backoff=0.0)
    assert result.status == "applied"
    (record,) = _imports(rt)
    assert (record.origin.value, record.matched, record.mismatched) == ("http", 2, 1)
    assert "s3cret" not in repr(record.report) and record.error is None
    assert fetch_source(rt, source_id, _now(), backoff=0.0).status == "unchanged"
    assert len(_imports(rt)) == 1


def test_the_scheduled_job_fetches_due_sources_once(
    rt: Runtime, world: World, server: tuple[str, dict[str, int]]
) -> None:
    base, hits = server
    source_id = make_source(
        rt,
        "medical-http",
        "medical_insurance",
        MEDICAL_MAPPING,
        url=base + "/ok",
        schedule="0 2 * * *",
    )
    make_source(rt, "manual", "medical_insurance", MEDICAL_MAPPING)  # no URL: never fetched
    with rt.db.unit_of_work(write=False) as session:
        source = session.get(DepartmentSource, source_id)
        assert source is not None
        created = source.created_at
    before_two = created.replace(hour=1, minute=0) + timedelta(days=1)
    assert fetch_due_sources(rt, before_two) == {"due": 0, "skipped": 0, "fetched": []}
    after_two = before_two.replace(hour=2, minute=5)
    summary = fetch_due_sources(rt, after_two)
    assert summary["due"] == 1 and summary["fetched"][0]["status"] == "applied"
    assert fetch_due_sources(rt, after_two + timedelta(hours=1))["due"] == 0
    assert hits["/ok"] == 1
    assert fetch_due_sources(rt, after_two + timedelta(days=1))["due"] == 1


def _now() -> Any:
    from server.db import utcnow

    return utcnow()


def test_two_schedulers_at_once_fetch_a_due_source_exactly_once(
    rt: Runtime, world: World, server: tuple[str, dict[str, int]]
) -> None:
    """Two schedulers (threads, each with its own runtime and connection pool) run the job at the
    same moment, on several days: every due run is fetched by exactly one of them."""
    if rt.db.kind != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite takes writers one at a time)")
    base, hits = server
    source_id = make_source(
        rt,
        "medical-http",
        "medical_insurance",
        MEDICAL_MAPPING,
        url=base + "/ok",
        schedule="0 2 * * *",
    )
    with rt.db.unit_of_work(write=False) as session:
        source = session.get(DepartmentSource, source_id)
        assert source is not None
        created = source.created_at
    other = Runtime.build(rt.settings)
    try:
        days = 4
        for day in range(1, days + 1):
            at = created.replace(hour=2, minute=5) + timedelta(days=day)
            start = threading.Barrier(2)
            summaries: list[dict[str, Any]] = []

            threads = [
                threading.Thread(target=_scheduler, args=(r, at, start, summaries))
                for r in (rt, other)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert len(summaries) == 2
            assert sum(len(s["fetched"]) for s in summaries) == 1, summaries
            assert hits["/ok"] == day
        # One import per day: the first applied, the same file again unchanged.
        assert len(_imports(rt)) == 1
    finally:
        other.db.dispose()


def _scheduler(
    runtime: Runtime, at: Any, start: threading.Barrier, summaries: list[dict[str, Any]]
) -> None:
    start.wait(10)
    summaries.append(fetch_due_sources(runtime, at))
