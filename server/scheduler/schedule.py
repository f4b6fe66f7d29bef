"""Schedules as text (`cron 30 0 * * *`, `every 3600`, `off`) and the APScheduler triggers they
stand for. Pure apart from APScheduler: no database, no Flask.

Interval triggers are anchored to one fixed instant, not to when a process started: every
scheduler process on every host then computes the same fire times, which is what makes
(job, scheduled time) a key they can agree on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from server.config import ConfigError

# Every interval schedule counts from here, on every host.
INTERVAL_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
# How far back a late run looks for the fire time it belongs to; APScheduler does not start a run
# later than this after its time (misfire grace), so it is always found.
LATE_RUN_GRACE = timedelta(minutes=10)
OFF = "off"


def trigger_for(schedule: str, timezone: tzinfo) -> BaseTrigger | None:
    """The trigger of a schedule text, None for `off`; ConfigError for anything else."""
    words = schedule.split()
    if words == [OFF]:
        return None
    if len(words) == 2 and words[0] == "every":
        try:
            seconds = int(words[1])
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise ConfigError(f"schedule {schedule!r}: `every` takes a positive number of seconds")
        return IntervalTrigger(seconds=seconds, start_date=INTERVAL_ANCHOR, timezone=UTC)
    if len(words) == 6 and words[0] == "cron":
        try:
            return CronTrigger.from_crontab(" ".join(words[1:]), timezone=timezone)
        except ValueError as exc:
            raise ConfigError(f"schedule {schedule!r}: {exc}") from exc
    raise ConfigError(
        f"schedule {schedule!r}: expected `cron <minute> <hour> <day> <month> <weekday>`, "
        "`every <seconds>` or `off`"
    )


def latest_fire_time(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's last fire time at or before `now` (within LATE_RUN_GRACE), None if none."""
    if isinstance(trigger, IntervalTrigger):
        step = trigger.interval.total_seconds()
        count = math.floor((now - INTERVAL_ANCHOR).total_seconds() / step)
        return (INTERVAL_ANCHOR + timedelta(seconds=count * step)).astimezone(UTC)
    latest = None
    fire = trigger.get_next_fire_time(None, now - LATE_RUN_GRACE)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return None if latest is None else latest.astimezone(UTC)


def next_fire_time(trigger: BaseTrigger | None, now: datetime) -> datetime | None:
    if trigger is None:
        return None
    fire = trigger.get_next_fire_time(None, now)
    return None if fire is None else fire.astimezone(UTC)
