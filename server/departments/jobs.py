"""Scheduled work of department sources, for the scheduler: `fetch_due_sources` fetches every
source whose cron schedule has come round since its last fetch. Several schedulers may call it at
once: each due run is claimed by a compare-and-set on `last_fetch_at`, so only one fetches it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from server.departments.fetching import fetch_source
from server.departments.models import DepartmentSource
from server.departments.sources import cron_trigger
from server.runtime import Runtime


def due_at(source: DepartmentSource, now: datetime) -> datetime | None:
    """When the source's schedule last came round after its last fetch, if that is not later
    than `now` (it is due); None when it is not due or has no schedule."""
    if source.schedule is None or source.url is None:
        return None
    since = source.last_fetch_at or source.created_at
    fire = cron_trigger(source.schedule).get_next_fire_time(None, since)
    if fire is None or fire > now:
        return None
    return fire  # type: ignore[no-any-return]


def fetch_due_sources(runtime: Runtime, now: datetime) -> dict[str, Any]:
    """Fetch (and import) every source that is due at `now`; returns a summary:
    `{"due": n, "fetched": [...per source...], "skipped": n}` (skipped: claimed by another)."""
    claimed: list[uuid.UUID] = []
    due = skipped = 0
    with runtime.db.unit_of_work() as session:
        sources = session.scalars(
            select(DepartmentSource).where(
                DepartmentSource.schedule.is_not(None), DepartmentSource.url.is_not(None)
            )
        ).all()
        for source in sources:
            if due_at(source, now) is None:
                continue
            due += 1
            previous = source.last_fetch_at
            condition = (
                DepartmentSource.last_fetch_at.is_(None)
                if previous is None
                else DepartmentSource.last_fetch_at == previous
            )
            result = session.execute(
                update(DepartmentSource)
                .where(DepartmentSource.id == source.id, condition)
                .values(last_fetch_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(source.id)
            else:
                skipped += 1
    fetched = [fetch_source(runtime, source_id, now).as_dict() for source_id in claimed]
    return {"due": due, "skipped": skipped, "fetched": fetched}
