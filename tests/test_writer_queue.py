"""SQLite writers take turns through the writer queue: a second writer starts the moment the
first is done, a nested unit of work in one thread does not wait for itself, and every write
lands."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from server.db import Database, WriterQueue
from tests.patience import PATIENCE, wait_until


def _waiters_blocked_on(path: Path) -> int:
    """How many `flock`s on `path` the kernel holds back (Linux lists them in /proc/locks with
    `->`), so a test knows a writer is really queued instead of guessing with a sleep."""
    inode = f":{path.stat().st_ino} "
    return sum(
        1
        for line in Path("/proc/locks").read_text().splitlines()
        if "->" in line and "FLOCK" in line and inode in line
    )


def _one_handover(queue: WriterQueue, path: Path) -> float:
    """Seconds between the first writer leaving and the queued second one coming in."""
    first_in, release, second_in = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with queue.turn():
            order.append("first in")
            first_in.set()
            release.wait(PATIENCE)
            order.append("first out")

    def second() -> None:
        first_in.wait(PATIENCE)
        with queue.turn():
            order.append("second in")
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    wait_until(lambda: _waiters_blocked_on(path), what="the second writer queued")
    assert order == ["first in"]
    released_at = time.monotonic()
    release.set()
    second_in.wait(PATIENCE)
    handover = time.monotonic() - released_at
    for thread in threads:
        thread.join(PATIENCE)
    assert order == ["first in", "first out", "second in"]
    return handover


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_a_second_writer_waits_for_the_first_and_starts_when_it_is_done(tmp_path: Path):
    path = tmp_path / "db-writers"
    queue = WriterQueue(path)
    path.touch()
    # Handed over at once, no polling sleeps: SQLite's own busy wait sleeps up to 100 ms. The
    # best of a few handovers is measured, so a busy machine delaying one does not matter.
    assert min(_one_handover(queue, path) for _ in range(5)) < 0.1


def test_a_nested_turn_in_the_same_thread_does_not_wait_for_itself(tmp_path: Path):
    queue = WriterQueue(tmp_path / "db-writers")
    done = threading.Event()

    def nested() -> None:
        with queue.turn(), queue.turn():
            pass
        done.set()

    thread = threading.Thread(target=nested)
    thread.start()
    thread.join(PATIENCE)
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
        thread.join(PATIENCE)
    with db.unit_of_work(write=False) as session:
        count = session.execute(text("SELECT count(DISTINCT n) FROM tally")).scalar_one()
    db.dispose()
    assert count == 80
