"""Scheduled work of early warning, as plain functions the scheduler calls (its schedule is in
`server/scheduler/registry.py`): each opens its own units of work and returns a small summary for
the job-run record."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from server.runtime import Runtime
from server.warnings.service import SET_CHUNK, reevaluate


def nightly_reevaluation(runtime: Runtime, now: datetime) -> dict[str, Any]:
    """Re-evaluate every household against the rules and the configuration of its record's year:
    warnings that stopped holding (a configuration change, a department fact withdrawn, a
    household deleted) say so, new ones are raised. Chunks of households, one unit of work each."""
    started = time.monotonic()
    outcome = reevaluate(runtime.db, now=now, chunk=SET_CHUNK)
    return {
        **outcome.as_dict(),
        "mode": outcome.mode,
        "skipped": outcome.skipped,
        "still_seen": outcome.still_seen,
        "seconds": round(time.monotonic() - started, 3),
    }
