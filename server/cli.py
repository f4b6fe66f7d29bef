"""The `fieldsync` command line: database migrations, the development server, region import, user
management and the demo county. Each command is one service call in one unit of work.

Importing this module does nothing: settings are read and the runtime is built on first use, so
tests inject their own `Settings` with `main(..., obj=CliState(settings))`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from server import migrate
from server.config import ConfigError, Settings
from server.errors import AppError
from server.runtime import Runtime
from server.users.models import Role

_ROLES = {role.value: role for role in Role}


@dataclass
class CliState:
    """What the commands share: settings (from the environment unless given) and a lazy runtime."""

    settings: Settings | None = None
    _runtime: Runtime | None = field(default=None, repr=False)

    def get_settings(self) -> Settings:
        if self.settings is None:
            self.settings = Settings.from_env()
        return self.settings

    def runtime(self, *, require_current_schema: bool = True) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime.build(self.get_settings())
        if require_current_schema:
            state = migrate.migration_state(self._runtime.db.engine)
            if not state.is_current:
                raise CommandRefused(
                    f"the database schema is at {state.current or 'nothing'}, not {state.head}: "
                    "run `fieldsync db upgrade` first"
                )
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.db.dispose()
            self._runtime = None


class CommandRefused(click.ClickException):
    """A command that cannot run as asked, printed like every error: `error: …`, exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


pass_state = click.make_pass_decorator(CliState, ensure=True)


class _Group(click.Group):
    """Turns domain and configuration errors into `error: …` on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AppError as exc:
            click.echo(f"error: {exc.message}", err=True)
            for line in _detail_lines(exc.details):
                click.echo(f"  {line}", err=True)
            ctx.exit(1)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            click.echo(f"error: the database cannot be used: {reason}", err=True)
            ctx.exit(1)


def _detail_lines(details: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, value in details.items():
        if key == "errors" and isinstance(value, list):
            lines.extend(f"{item.get('path', '-')}: {item.get('message', '')}" for item in value)
        else:
            lines.append(f"{key}: {value}")
    return lines


@click.group(cls=_Group)
@click.pass_context
def main(ctx: click.Context) -> None:
    """fieldsync: offline-first register of household monitoring visits."""
    # Connections are released when the command ends, whatever happened.
    ctx.call_on_close(ctx.ensure_object(CliState).close)


# -- db ----------------------------------------------------------------------------------------


@main.group(cls=_Group)
def db() -> None:
    """Database schema (alembic migrations)."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: CliState) -> None:
    """Migrate the database to the newest schema (creates a SQLite file and its folder)."""
    url = state.get_settings().database_url
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(url)
    click.echo(f"database at {migrate.head_revision()}")


@db.command("status")
@pass_state
def db_status(state: CliState) -> None:
    """Show the database's migration revision and the newest one."""
    migration = migrate.migration_state(state.runtime(require_current_schema=False).db.engine)
    click.echo(f"current: {migration.current or '(empty database)'}")
    click.echo(f"head:    {migration.head}")
    click.echo("up to date" if migration.is_current else "run `fieldsync db upgrade`")


# -- serve -------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@pass_state
def serve(state: CliState, host: str, port: int) -> None:
    """Run the development server (production: gunicorn wsgi:app)."""
    from server.app import create_app
    from server.serving import tune_for_serving

    state.runtime()  # refuse to serve an unmigrated database
    state.close()
    app = create_app(state.get_settings())
    tune_for_serving()
    click.echo(f"fieldsync listening on http://{host}:{port}/")
    # fieldsync logs every request itself (key=value); Werkzeug's access log would repeat it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, threaded=True)


# -- regions -----------------------------------------------------------------------------------


@main.group(cls=_Group)
def regions() -> None:
    """Administrative regions."""


@regions.command("import")
@click.argument("file", type=click.File("rb"))
@pass_state
def regions_import(state: CliState, file: BinaryIO) -> None:
    """Import regions from a CSV file with the header code,name,parent_code (all or nothing)."""
    from server.regions.importing import import_regions

    data: bytes = file.read()
    with state.runtime().db.unit_of_work() as session:
        result = import_regions(session, data)
    click.echo(
        f"regions: {result.created} created, {result.updated} updated, {result.unchanged} unchanged"
    )


# -- users -------------------------------------------------------------------------------------


@main.group(cls=_Group)
def users() -> None:
    """User accounts and their region grants."""


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(list(_ROLES)))
@click.option(
    "--region",
    "region_codes",
    multiple=True,
    metavar="CODE",
    help="A region the user may work in (repeatable).",
)
@click.option("--password", help="The password (visible in the process list: prefer stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@pass_state
def users_create(
    state: CliState,
    username: str,
    role: str,
    region_codes: tuple[str, ...],
    password: str | None,
    password_stdin: bool,
) -> None:
    """Create a user."""
    from server.users.service import create_user

    if (password is None) == (not password_stdin):
        raise click.UsageError("give exactly one of --password and --password-stdin")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        create_user(
            session,
            rt.passwords,
            username=username,
            password=password or "",
            role=_ROLES[role],
            regions=region_codes,
        )
    click.echo(f"created {role} {username}")


@users.command("list")
@pass_state
def users_list(state: CliState) -> None:
    """List users: username, role, active, regions."""
    from server.users.service import list_users

    with state.runtime().db.unit_of_work(write=False) as session:
        summaries = list_users(session)
    rows = [("username", "role", "active", "regions")] + [
        (u.username, u.role.value, "yes" if u.is_active else "no", " ".join(u.regions) or "-")
        for u in summaries
    ]
    name_width = max(len(row[0]) for row in rows)
    for name, role, active, codes in rows:
        click.echo(f"{name:<{name_width}}  {role:<10}  {active:<6}  {codes}")


@users.command("grant")
@click.argument("username")
@click.option("--region", "region_code", required=True, metavar="CODE")
@pass_state
def users_grant(state: CliState, username: str, region_code: str) -> None:
    """Let a user work in a region (and everything below it)."""
    from server.users.service import grant_region

    with state.runtime().db.unit_of_work() as session:
        grant_region(session, username, region_code)
    click.echo(f"granted {region_code} to {username}")


@users.command("revoke")
@click.argument("username")
@click.option("--region", "region_code", required=True, metavar="CODE")
@pass_state
def users_revoke(state: CliState, username: str, region_code: str) -> None:
    """Take a region grant away from a user."""
    from server.users.service import revoke_region

    with state.runtime().db.unit_of_work() as session:
        revoke_region(session, username, region_code)
    click.echo(f"revoked {region_code} from {username}")


@users.command("disable")
@click.argument("username")
@pass_state
def users_disable(state: CliState, username: str) -> None:
    """Disable a user and end every login token they hold."""
    from server.users.service import disable_user

    with state.runtime().db.unit_of_work() as session:
        disable_user(session, username)
    click.echo(f"disabled {username}")


# -- devices -------------------------------------------------------------------------------------


@main.group(cls=_Group)
def devices() -> None:
    """Tablets and what they sent."""


@devices.command("gaps")
@click.option("--limit", default=1000, show_default=True, help="At most this many ranges.")
@pass_state
def devices_gaps(state: CliState, limit: int) -> None:
    """List the device_seq ranges each device completed but never delivered."""
    from server.devices.sequence import missing_ranges

    with state.runtime().db.unit_of_work(write=False) as session:
        ranges = missing_ranges(session, limit=limit)
    if not ranges:
        click.echo("no device is missing submissions")
        return
    for r in ranges:
        numbers = str(r.first_seq) if r.count == 1 else f"{r.first_seq}-{r.last_seq}"
        click.echo(
            f"{r.device_id}  {r.registered_by}  {numbers}  ({r.count} missing, "
            f"noticed {r.noticed_at:%Y-%m-%d %H:%M} UTC)"
        )


# -- forms ---------------------------------------------------------------------------------------


@main.group(cls=_Group)
def forms() -> None:
    """Form definitions."""


@forms.command("install")
@click.argument("form_ids", nargs=-1)
@pass_state
def forms_install(state: CliState, form_ids: tuple[str, ...]) -> None:
    """Publish the bundled forms (all, or FORM_IDS); unchanged ones keep their version."""
    from forms.bundled import BUNDLED_FORM_IDS
    from server.auth.actor import system_actor
    from server.forms.library import install_bundled_forms

    unknown = sorted(set(form_ids) - set(BUNDLED_FORM_IDS))
    if unknown:
        raise click.UsageError(
            f"no bundled form {', '.join(unknown)}; choose from {', '.join(BUNDLED_FORM_IDS)}"
        )
    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        installed = install_bundled_forms(session, system_actor(), form_ids or BUNDLED_FORM_IDS)
    for item in installed:
        what = "published" if item.is_new_version else "already current"
        click.echo(f"{item.form_id}: version {item.version} ({what})")


# -- demo --------------------------------------------------------------------------------------


@main.command()
@click.option("--if-empty", is_flag=True, help="Do nothing if the register has any household.")
@pass_state
def demo(state: CliState, if_empty: bool) -> None:
    """Load the fictional demo county 云溪县 with its demo accounts."""
    import time

    from server.demo.accounts import describe_accounts
    from server.demo.service import has_households, load_demo_county

    rt = state.runtime()
    started = time.monotonic()
    with rt.db.unit_of_work() as session:
        summary = None
        if not (if_empty and has_households(session)):
            summary = load_demo_county(session, rt.codec, rt.passwords)
    if summary is None:
        click.echo("the register already has households: demo not loaded again")
    else:
        click.echo(
            f"loaded the demo county: {summary.regions} regions, {summary.households} "
            f"households, {summary.members} members and the bundled forms "
            f"in {time.monotonic() - started:.1f} s"
        )
    click.echo("demo accounts (demo only: these passwords are public):")
    for line in describe_accounts():
        click.echo(f"  {line}")
