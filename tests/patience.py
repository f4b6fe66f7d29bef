"""How tests wait for what takes time (a server starting, a worker finishing, a lock being waited
on) without depending on the machine being idle: generous deadlines, polling with backoff, and a
failure message that says what was awaited and shows what the other side printed.

Every deadline is `PATIENCE` seconds (5 minutes unless FIELDSYNC_TEST_PATIENCE says otherwise):
a deadline only bounds how long a broken test hangs; a working one returns as soon as it can.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PATIENCE = float(os.environ.get("FIELDSYNC_TEST_PATIENCE", "300"))
_FIRST_POLL = 0.01
_LONGEST_POLL = 0.5


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = PATIENCE,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something true, and return that. Polls quickly at first,
    then less often (up to every half second). After `timeout` seconds fail with `what` and, if
    given, `details()` (a server's log, say)."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_POLL
    while True:
        result = condition()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            more = f"\n{details()}" if details is not None else ""
            raise AssertionError(
                f"{what}: not within {timeout:.0f} s "
                f"(set FIELDSYNC_TEST_PATIENCE to wait longer){more}"
            )
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, _LONGEST_POLL)
