"""Named crash points for fault-injection tests: `reach("push.before_commit", settings)` kills the
process with SIGKILL when that name is in the FAILPOINTS setting, and does nothing otherwise.
Only the crash tests set FAILPOINTS; it proves a batch is exactly-once whatever point it dies at."""

from __future__ import annotations

import os
import signal

from server.config import Settings

PUSH_BEFORE_COMMIT = "push.before_commit"
PUSH_AFTER_COMMIT = "push.after_commit"


def reach(name: str, settings: Settings) -> None:
    if name in settings.failpoints:
        os.kill(os.getpid(), signal.SIGKILL)
