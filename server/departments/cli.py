"""`fieldsync departments …`: sources (create, list, update), importing a file, the import
history and fetching the sources that are due. Registered on the main group by `server.cli`.
Imports nothing heavy at module level (see `server.cli`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from server.cli import CliState, CommandRefused, _Group, pass_state

F = TypeVar("F", bound=Callable[..., Any])
DEPARTMENT_CODES = (
    "civil_affairs",
    "education",
    "medical_insurance",
    "housing",
    "human_resources",
    "disabled_federation",
)  # server.departments.facts.Department (a test keeps them equal)


@click.group(cls=_Group)
def departments() -> None:
    """Department lists (部门信息比对): sources, imports, scheduled fetches."""


@departments.group("sources", cls=_Group)
def sources_group() -> None:
    """Configured department sources."""


def _mapping(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandRefused(f"cannot read the mapping {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise CommandRefused(f"the mapping {path} must hold a JSON object")
    return value


def _source_options(create: bool) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        options = [
            click.option("--department", type=click.Choice(DEPARTMENT_CODES), required=create),
            click.option(
                "--mapping",
                "mapping_path",
                type=click.Path(path_type=Path, dir_okay=False),
                required=create,
                help="A JSON file: the column mapping.",
            ),
            click.option("--list-kind", type=click.Choice(("full", "partial"))),
            click.option("--url", help="An HTTP(S) endpoint serving the file."),
            click.option("--token-env", help="Environment variable with the bearer token."),
            click.option("--schedule", help="Cron schedule (UTC) of the fetch, e.g. '0 2 * * *'."),
            click.option("--timeout", "timeout_seconds", type=click.IntRange(1, 600)),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _values(**given: Any) -> dict[str, Any]:
    mapping = _mapping(given.pop("mapping_path"))
    values = {name: value for name, value in given.items() if value is not None}
    if mapping is not None:
        values["mapping"] = mapping
    return values


def _print_source(source: Any) -> None:
    fetch = f"  url {source.url}  schedule {source.schedule or '-'}" if source.url else ""
    click.echo(f"{source.name}  {source.department}  {source.list_kind.value}  {source.id}{fetch}")


@sources_group.command("create")
@click.argument("name")
@_source_options(create=True)
@pass_state
def sources_create(state: CliState, /, name: str, **given: Any) -> None:
    """Create source NAME (audited)."""
    from server.auth.actor import system_actor
    from server.departments.sources import create_source

    with state.runtime().db.unit_of_work() as session:
        source = create_source(session, system_actor(), {"name": name, **_values(**given)})
        _print_source(source)


@sources_group.command("update")
@click.argument("name")
@_source_options(create=False)
@pass_state
def sources_update(state: CliState, /, name: str, **given: Any) -> None:
    """Change source NAME (audited)."""
    from server.auth.actor import system_actor
    from server.departments.sources import update_source

    with state.runtime().db.unit_of_work() as session:
        source = update_source(session, system_actor(), name, _values(**given))
        _print_source(source)


@sources_group.command("list")
@pass_state
def sources_list(state: CliState) -> None:
    """Every source."""
    from server.auth.actor import system_actor
    from server.departments.sources import list_sources

    with state.runtime().db.unit_of_work(write=False) as session:
        page = list_sources(session, system_actor(), 1000, 0)
        for source in page["sources"]:
            _print_source(source)


def _print_report(record: Any, unchanged: bool) -> None:
    from server.departments.importing import import_summary

    if unchanged:
        click.echo(f"unchanged: the same file was the source's last import ({record.id})")
        return
    counts = import_summary(record)
    click.echo(f"import {record.id}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for kind, items in record.report.items():
        for item in items[:20]:
            click.echo(f"  {kind}: " + json.dumps(item, ensure_ascii=False, sort_keys=True))
        if len(items) > 20:
            click.echo(f"  {kind}: … {len(items) - 20} more in the import's report")


@departments.command("import")
@click.argument("source")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_state
def departments_import(state: CliState, source: str, file: Path) -> None:
    """Import FILE (CSV or XLSX) for SOURCE (its name); all or nothing."""
    from server.auth.actor import system_actor
    from server.departments.importing import import_content
    from server.departments.models import ImportOrigin
    from server.departments.reading import MAX_FILE_BYTES
    from server.departments.sources import get_source

    if file.stat().st_size > MAX_FILE_BYTES:
        raise CommandRefused(f"{file} is larger than {MAX_FILE_BYTES} bytes; nothing was imported")
    content = file.read_bytes()
    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        outcome = import_content(
            session,
            system_actor(),
            rt.codec,
            get_source(session, source),
            content,
            origin=ImportOrigin.COMMAND_LINE,
            filename=file.name,
            now=datetime.now(UTC),
        )
        _print_report(outcome.record, outcome.unchanged)


@departments.command("imports")
@click.option("--source", help="Only this source's imports (its name).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200))
@pass_state
def departments_imports(state: CliState, source: str | None, limit: int) -> None:
    """The import history, newest first."""
    from server.auth.actor import system_actor
    from server.departments.history import list_imports
    from server.departments.sources import get_source

    with state.runtime().db.unit_of_work(write=False) as session:
        source_id = get_source(session, source).id if source else None
        page = list_imports(
            session, system_actor(), source_id=source_id, status=None, limit=limit, offset=0
        )
        for r in page["imports"]:
            what = (
                f"rows {r.rows} matched {r.matched} unmatched {r.unmatched} ambiguous "
                f"{r.ambiguous} mismatched {r.mismatched}"
            )
            if r.error:
                what = f"error: {r.error.get('message')}"
            click.echo(
                f"{r.started_at:%Y-%m-%d %H:%M:%S}  {r.id}  {r.status.value}  "
                f"{r.origin.value}  {what}"
            )


@departments.command("fetch-due")
@pass_state
def departments_fetch_due(state: CliState) -> None:
    """Fetch every HTTP source whose schedule is due now (what the scheduler runs)."""
    from server.departments.jobs import fetch_due_sources

    summary = fetch_due_sources(state.runtime(), datetime.now(UTC))
    click.echo(json.dumps(summary, ensure_ascii=False, sort_keys=True))
