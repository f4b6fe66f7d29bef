"""`fieldsync export DATASET … -o FILE`: the same files as the API, written by the system actor
(every region), with a progress line (rows, rows per second) on standard error. Registered on
the main group by one import in server/cli.py."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from server.cli import CliState, main, pass_state

FORMAT_CHOICES = ("csv", "xlsx", "jsonl")


class Progress:
    """Counts rows as they pass and reports them at most every `every` seconds."""

    def __init__(self, *, every: float = 1.0, out: Any = None) -> None:
        self.rows = 0
        self.started = time.monotonic()
        self._last = self.started
        self.every = every
        self.out = out or sys.stderr

    def count(self, rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
        for row in rows:
            self.rows += 1
            if not self.rows % 1000:
                now = time.monotonic()
                if now - self._last >= self.every:
                    self._last = now
                    self.report(end="\r")
            yield row

    def report(self, end: str = "\n") -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.out.write(
            f"{self.rows:,} rows  {self.rows / elapsed:,.0f} rows/s  {elapsed:.1f} s{end}"
        )
        self.out.flush()


@main.command("export")
@click.argument("dataset")
@click.option("--region", metavar="CODE", help="Only this region (any level) and below.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="csv")
@click.option("--labels", type=click.Choice(("code", "zh", "en")), default="code")
@click.option("--header", type=click.Choice(("code", "zh", "en")), default=None)
@click.option("--bom", is_flag=True, help="Start a CSV with a UTF-8 BOM (for Excel).")
@click.option("--reveal", is_flag=True, help="Identity numbers, phones, health in clear (audited).")
@click.option("--monitoring-type", default=None)
@click.option("--monitoring-status", default=None)
@click.option("--status", default=None)
@click.option("--form-id", default=None)
@click.option("--form-version", type=int, default=None)
@click.option("--year", type=int, default=None)
@click.option("--cursor", default=None, help="Only what changed since this earlier export.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option(
    "--background",
    is_flag=True,
    help="Queue a background export job instead of writing FILE (the scheduler's export_jobs "
    "runs it; admins download it from /api/v1/exports/jobs/ID/file).",
)
@pass_state
def export_command(
    state: CliState,
    dataset: str,
    region: str | None,
    fmt: str,
    labels: str,
    header: str | None,
    bom: bool,
    reveal: bool,
    monitoring_type: str | None,
    monitoring_status: str | None,
    status: str | None,
    form_id: str | None,
    form_version: int | None,
    year: int | None,
    cursor: str | None,
    output: Path | None,
    quiet: bool,
    background: bool,
) -> None:
    """Export DATASET (see docs/exports.md) to a file."""
    from server.auth.actor import system_actor
    from server.exports import service
    from server.exports.schemas import ExportQuerySchema
    from server.request_body import load_with

    query = {
        "region": region,
        "format": fmt,
        "labels": labels,
        "header": header,
        "monitoring_type": monitoring_type,
        "monitoring_status": monitoring_status,
        "status": status,
        "form_id": form_id,
        "form_version": None if form_version is None else str(form_version),
        "year": None if year is None else str(year),
        "cursor": cursor,
        "reveal": "sensitive" if reveal else None,
    }
    if bom:
        query["bom"] = "true"
    given = {k: v for k, v in query.items() if v is not None}
    if background:
        if output is not None:
            raise click.UsageError("--background writes no FILE: leave out -o")
        _queue(state, dataset, given)
        return
    if output is None:
        raise click.UsageError("-o FILE is required (or --background)")
    args = load_with(ExportQuerySchema(), given)
    options = service.export_options(args)
    rt = state.runtime()
    with rt.db.unit_of_work(write=reveal) as session:
        plan = service.plan_export(session, system_actor(), rt.settings, dataset, options)
    progress = Progress(out=io.StringIO() if quiet else None)
    body = service.render(rt.db, rt.codec, [plan], fmt, bom=bom, header=header, rows=progress.count)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as out:
            for chunk in body:
                out.write(chunk)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    if not quiet:
        progress.report()
    click.echo(f"wrote {progress.rows} rows of {dataset} to {output}")
    if plan.next_cursor:
        click.echo(f"cursor: {plan.next_cursor}")


def _queue(state: CliState, dataset: str, query: dict[str, str]) -> None:
    """Queue a background export as the system actor (visible to admins) and say where it is."""
    from server.auth.actor import system_actor
    from server.exports import jobs

    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        job = jobs.create_job(session, system_actor(), rt.settings, dataset, query)
        job_id = job.id
    click.echo(f"queued export job {job_id} ({dataset}); the scheduler's export_jobs job runs it")
    click.echo(f"progress: GET /api/v1/exports/jobs/{job_id}")
    click.echo(f"file:     GET /api/v1/exports/jobs/{job_id}/file")
