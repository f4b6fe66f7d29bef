"""SQLite writers take turns through the writer queue: a second writer starts the moment the
first is done, a nested unit of work in one thread does not wait for itself, and every write
lands."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from server.db import Database, WriterQueue


def test_a_second_writer_waits_for_the_first_and_starts_when_it_is_done(tmp_path: Path):
    queue = WriterQueue(tmp_path / "db-writers")
    first_in, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with queue.turn():
            order.append("first in")
            first_in.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        first_in.wait(10)
        with queue.turn():
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_in.wait(10)
    time.sleep(0.2)  # the second writer is queued by now
    assert order == ["first in"]
    released_at = time.monotonic()
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]
    assert time.monotonic() - released_at < 0.1  # handed over at once, no polling sleeps


def test_a_nested_turn_in_the_same_thread_does_not_wait_for_itself(tmp_path: Path):
    queue = WriterQueue(tmp_path / "db-writers")
    done = threading.Event()

    def nested() -> None:
        with queue.turn(), queue.turn():
            pass
        done.set()

    thread = threading.Thread(target=nested)
    thread.start()
    thread.join(5)
    assert done.is_set()


def test_concurrent_write_units_of_work_all_commit(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'queue.db'}")
    with db.unit_of_work() as session:
        session.execute(text("CREATE TABLE tally (n INTEGER)"))

    def write(worker: int) -> None:
        for n in range(20):
            with db.unit_of_work() as session:
                session.execute(text("INSERT INTO tally VALUES (:n)"), {"n": worker * 100 + n})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with db.unit_of_work(write=False) as session:
        count = session.execute(text("SELECT count(DISTINCT n) FROM tally")).scalar_one()
    db.dispose()
    assert count == 80
