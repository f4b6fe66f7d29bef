"""Jobs registered only for the scheduler tests (`JOB_MODULES=tests.scheduler.probe_jobs`).

Each appends one line per execution to a file named by an environment variable, written by the
job itself (not by the runner), so the tests count real executions, not bookkeeping."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from server.runtime import Runtime
from server.scheduler.registry import Job

PROBE_LOG = "FIELDSYNC_PROBE_LOG"  # a file each execution of `probe` appends to
FLAKY_LOG = "FIELDSYNC_FLAKY_LOG"  # `flaky`: fails its first execution, then succeeds
HANG_MARKER = "FIELDSYNC_HANG_MARKER"  # `hang`: the first execution hangs, later ones return


def _append(variable: str, now: datetime) -> int:
    """Append this execution to the file `variable` names; how many lines were there before."""
    path = os.environ.get(variable)
    if not path:
        return 0
    before = Path(path).read_text().count("\n") if Path(path).exists() else 0
    line = json.dumps({"scheduled_for": now.isoformat(), "pid": os.getpid()})
    with Path(path).open("a") as handle:
        handle.write(line + "\n")
    return before


def probe(rt: Runtime, now: datetime) -> dict[str, Any]:
    _append(PROBE_LOG, now)
    return {"pid": os.getpid()}


def flaky(rt: Runtime, now: datetime) -> dict[str, Any]:
    if _append(FLAKY_LOG, now) == 0:
        raise RuntimeError("the flaky probe fails its first run")
    return {"pid": os.getpid()}


def always_fails(rt: Runtime, now: datetime) -> dict[str, Any]:
    raise ValueError("this job always fails")


def hang(rt: Runtime, now: datetime) -> dict[str, Any]:
    marker = Path(os.environ[HANG_MARKER])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(3600)  # until the test kills this process
    return {"pid": os.getpid()}


JOBS = (
    Job("probe", "Test: records each execution", "every 1", probe),
    Job("flaky", "Test: fails once, then succeeds", "every 1", flaky),
    Job("always_fails", "Test: raises every time", "off", always_fails),
    Job("hang", "Test: the first run hangs", "off", hang),
)
