"""`fieldsync warnings …`: the full re-evaluation and the rules' configuration by year and province.
Services are imported inside the commands, as in server/cli.py."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import click

from server.cli import CliState, _Group, pass_state

warnings: click.Group = _Group(
    "warnings", help="Early warning: re-evaluate the risk rules, read and set their configuration."
)


@warnings.command("reevaluate")
@click.option("--region", default=None, metavar="CODE", help="Only households under this region.")
@click.option("--chunk", default=250_000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "--full", is_flag=True, help="Every household, not only those changed since the last run."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="Processes sharing a full run (PostgreSQL), each with its own connection.",
)
@pass_state
def warnings_reevaluate(
    state: CliState, region: str | None, chunk: int, full: bool, workers: int
) -> None:
    """Evaluate the households (under REGION) against the rules, chunk by chunk: after a complete
    run, only those whose inputs changed since (unless --full)."""
    import time

    from server.db import utcnow
    from server.warnings.service import reevaluate

    started = time.monotonic()
    outcome = reevaluate(
        state.runtime().db, now=utcnow(), region=region, chunk=chunk, full=full, workers=workers
    )
    figures = " ".join(f"{k}={v}" for k, v in outcome.as_dict().items())
    figures += f" mode={outcome.mode} skipped={outcome.skipped}"
    click.echo(f"{figures} seconds={time.monotonic() - started:.1f}")


@warnings.command("config")
@click.option("--year", required=True, type=int)
@click.option("--province", default="*", show_default=True, help="Province code, or * for all.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE", help="Set a value.")
@pass_state
def warnings_config(
    state: CliState, year: int, province: str, assignments: tuple[str, ...]
) -> None:
    """Show (and with --set NAME=VALUE, change; audited) the configuration of YEAR and PROVINCE."""
    from server.auth.actor import system_actor
    from server.db import utcnow
    from server.warnings import config
    from server.warnings.service import change_config

    values: dict[str, Decimal | None] = {}
    for assignment in assignments:
        name, _, text = assignment.partition("=")
        try:
            values[name.strip()] = Decimal(text.strip()) if text.strip() else None
        except InvalidOperation as exc:
            raise click.BadParameter(f"{assignment!r}: not a number") from exc
    with state.runtime().db.unit_of_work() as session:
        if values:
            changed, outcome = change_config(
                session, system_actor(), year, province, values, now=utcnow()
            )
            click.echo(
                f"changed: {', '.join(changed) or 'nothing'}; re-evaluated {outcome.as_dict()}"
            )
        for v in config.describe(session, year, province):
            origin = "default" if v.set_for is None else f"set for {v.set_for[0]}/{v.set_for[1]}"
            click.echo(f"{v.spec.name} = {v.value}  ({origin}; {v.spec.zh})")
