"""`fieldsync scheduler`: runs the registered jobs on their schedules with APScheduler, in the
foreground, until stopped (SIGTERM or Ctrl-C). Run it on as many hosts as you like: each run is
executed by exactly one of them (`server.scheduler.runner`). Imports stay inside the command,
like every command of `server.cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from server.cli import CliState


@click.command("scheduler")
@click.option(
    "--list", "list_only", is_flag=True, help="Print the jobs and their next runs, then exit."
)
@click.pass_context
def scheduler(ctx: click.Context, list_only: bool) -> None:
    """Run the scheduled jobs (purges, daily snapshots, …) until stopped."""
    from server.cli import CliState
    from server.request_log import configure_logging
    from server.scheduler.service import start_blocking_scheduler, upcoming

    state: CliState = ctx.ensure_object(CliState)
    rt = state.runtime()
    if list_only:
        for name, schedule, next_run in upcoming(rt):
            when = next_run.isoformat() if next_run is not None else "never (off)"
            click.echo(f"{name:24} {schedule:24} next {when}")
        return
    configure_logging(rt.settings.log_level)
    start_blocking_scheduler(rt)
