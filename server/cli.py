"""The `fieldsync` command line: database migrations, the development server, region import, user
management and the demo county. Each command is one service call in one unit of work.

Importing this module does nothing and stays cheap (`fieldsync --help` must start at once): Flask,
SQLAlchemy, alembic and the services are imported inside the commands that use them, never here.
Settings are read and the runtime is built on first use, so tests inject their own `Settings`
with `main(..., obj=CliState(settings))`.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

import click

from server.config import ConfigError, Settings

if TYPE_CHECKING:
    from server.runtime import Runtime

# The codes of server.users.models.Role (a test keeps them equal): importing the model here would
# load SQLAlchemy for `--help`.
ROLE_NAMES = ("admin", "supervisor", "collector")
T = TypeVar("T")


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
        from server import migrate
        from server.runtime import Runtime

        if self._runtime is None:
            settings = self.get_settings()
            if require_current_schema:
                _refuse_a_missing_sqlite_file(settings.database_url)
            self._runtime = Runtime.build(settings)
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


def _missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite file `url` names when that file is not there. Opening it would
    create an empty one (and its folders): a mistyped DATABASE_URL would leave databases about.
    Only `db upgrade` creates one."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:" and not Path(database).exists():
        return database
    return None


def _refuse_a_missing_sqlite_file(url: str) -> None:
    database = _missing_sqlite_file(url)
    if database is not None:
        raise CommandRefused(
            f"no database at {database}: run `fieldsync db upgrade` first (or check DATABASE_URL)"
        )


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
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, OSError):
            raise  # click prints these itself (a closed pipe, `| head`, ends quietly)
        except Exception as exc:
            lines = _error_lines(exc)
            if lines is None:
                raise
            for line in lines:
                click.echo(line, err=True)
            ctx.exit(1)


def _error_lines(exc: Exception) -> list[str] | None:
    """What to print for a domain, configuration or database error; None for anything else (a bug,
    left to show its traceback). The modules are imported here, not at the top: see above."""
    from sqlalchemy.exc import OperationalError

    from server.errors import AppError

    if isinstance(exc, AppError):
        return [f"error: {exc.message}", *(f"  {line}" for line in _detail_lines(exc.details))]
    if isinstance(exc, ConfigError):
        return [f"error: {exc}"]
    if isinstance(exc, OperationalError):
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return [f"error: the database cannot be used: {reason}"]
    return None


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
    from sqlalchemy.engine import make_url

    from server import migrate

    settings = state.get_settings()
    url = settings.database_url
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(url, data_key=settings.data_key_bytes)
    click.echo(f"database at {migrate.head_revision()}")


@db.command("status")
@pass_state
def db_status(state: CliState) -> None:
    """Show the database's migration revision and the newest one."""
    from server import migrate

    missing = _missing_sqlite_file(state.get_settings().database_url)
    if missing is not None:  # looked at, not created
        click.echo(f"current: (no database at {missing})")
        click.echo(f"head:    {migrate.head_revision()}")
        click.echo("run `fieldsync db upgrade` (or check DATABASE_URL)")
        return
    migration = migrate.migration_state(state.runtime(require_current_schema=False).db.engine)
    click.echo(f"current: {migration.current or '(empty database)'}")
    click.echo(f"head:    {migration.head}")
    click.echo("up to date" if migration.is_current else "run `fieldsync db upgrade`")


# -- serve -------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@pass_state
def serve(state: CliState, host: str, port: int) -> None:
    """Run the development server, one process (production and make run: gunicorn with
    gunicorn.conf.py, docs/operations.md)."""
    import logging

    from werkzeug.serving import make_server

    from server.app import create_app
    from server.serving import bind_port, start_listening, tune_for_serving

    state.runtime()  # refuse to serve an unmigrated database
    state.close()
    # Bind first, so that a port in use is refused before the app is built; listen only once it
    # is, so that nobody connects to a server that cannot answer yet.
    bound = _refuse_unusable_port(host, port, lambda: bind_port(host, port))
    app = create_app(state.get_settings())
    tune_for_serving()
    server = make_server(host, port, app, threaded=True, fd=bound.fileno())
    bound.close()  # the server holds its own copy of the socket
    _refuse_unusable_port(host, port, lambda: start_listening(server.socket))
    click.echo(f"fieldsync listening on http://{host}:{server.port}/")
    # fieldsync logs every request itself (key=value); Werkzeug's access log would repeat it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server.serve_forever()


def _refuse_unusable_port(host: str, port: int, step: Callable[[], T]) -> T:
    """`step()`, with the `OSError` of a port in use (or an address that cannot be used) turned
    into one line saying how to choose another."""
    import errno

    try:
        return step()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CommandRefused(
                f"port {port} on {host} is in use by another program: stop it, or choose "
                f"another port with `fieldsync serve --port {port + 1}` "
                f"(with make: `make run PORT={port + 1}`)"
            ) from exc
        raise CommandRefused(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another address "
            "with --host/--port (with make: HOST=… PORT=…)"
        ) from exc


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


# -- submissions -------------------------------------------------------------------------------


@main.group(cls=_Group)
def submissions() -> None:
    """Stored submissions."""


@submissions.command("protect")
@pass_state
def submissions_protect(state: CliState) -> None:
    """Protect identity numbers and phones in stored submissions (as migration 0009 does; run it
    again after a rolling deploy whose old workers stored some in clear). Idempotent."""
    from server.submissions.payload import protect_stored_submissions

    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        changed = protect_stored_submissions(session.connection(), rt.codec)
    click.echo(f"submissions: {changed} protected")


# -- users -------------------------------------------------------------------------------------


@main.group(cls=_Group)
def users() -> None:
    """User accounts and their region grants."""


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLE_NAMES))
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
    from server.users.models import Role
    from server.users.service import create_user

    password = _read_password(password, password_stdin)
    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        create_user(
            session,
            rt.passwords,
            username=username,
            password=password,
            role={r.value: r for r in Role}[role],
            regions=region_codes,
        )
    click.echo(f"created {role} {username}")


def _read_password(password: str | None, password_stdin: bool) -> str:
    if (password is None) == (not password_stdin):
        raise click.UsageError("give exactly one of --password and --password-stdin")
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return password or ""


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


@users.command("enable")
@click.argument("username")
@pass_state
def users_enable(state: CliState, username: str) -> None:
    """Let a disabled user log in again (with a fresh login: old tokens stay ended)."""
    from server.users.service import enable_user

    with state.runtime().db.unit_of_work() as session:
        enable_user(session, username)
    click.echo(f"enabled {username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password", help="The new password (visible in the process list: prefer stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@pass_state
def users_set_password(
    state: CliState, username: str, password: str | None, password_stdin: bool
) -> None:
    """Give a user a new password; every token they hold ends (their tablets log in again)."""
    from server.users.service import set_password

    password = _read_password(password, password_stdin)
    rt = state.runtime()
    with rt.db.unit_of_work() as session:
        ended = set_password(session, rt.passwords, username, password)
    click.echo(f"new password set for {username}; {ended} login token(s) ended")


# -- login throttling and device owners -------------------------------------------------------


@users.command("unlock")
@click.argument("username", required=False)
@click.option(
    "--address",
    "client_address",
    metavar="ADDRESS",
    help="Forget the failed logins counted against this client address.",
)
@pass_state
def users_unlock(state: CliState, username: str | None, client_address: str | None) -> None:
    """End the login waits of a user (and of every device of theirs), or of an address; audited."""
    from server.auth.throttle import clear_address, unlock_account

    if username is None and client_address is None:
        raise click.UsageError("give a USERNAME, --address ADDRESS, or both")
    with state.runtime().db.unit_of_work() as session:
        if username is not None:
            cleared = unlock_account(session, username, acting_user_id=None)
            click.echo(f"unlocked {username} ({cleared} login limits cleared)")
        if client_address is not None:
            cleared = clear_address(session, client_address, acting_user_id=None)
            click.echo(f"cleared address {client_address} ({cleared} login limits cleared)")


# -- devices -------------------------------------------------------------------------------------


@main.group(cls=_Group)
def devices() -> None:
    """Tablets: the accounts they belong to, and what they sent."""


@devices.command("assign")
@click.argument("device_id", type=click.UUID)
@click.argument("username")
@pass_state
def devices_assign(state: CliState, device_id: uuid.UUID, username: str) -> None:
    """Give a device to another user; tokens other users hold for it stop working."""
    from server.auth.actor import system_actor
    from server.auth.service import assign_device

    with state.runtime().db.unit_of_work() as session:
        assigned = assign_device(session, system_actor(), device_id, username)
    tokens = "token" if assigned.revoked_tokens == 1 else "tokens"
    click.echo(
        f"device {assigned.device_id} now belongs to {assigned.username} "
        f"(was {assigned.previous_username or '-'}; {assigned.revoked_tokens} {tokens} revoked)"
    )
    if assigned.still_revoked:
        click.echo("the device is still revoked: no one can log in with it")


@devices.command("list")
@click.option("--user", "owner", metavar="USERNAME", help="Only the devices of this account.")
@click.option("--limit", default=1000, show_default=True, help="At most this many devices.")
@pass_state
def devices_list(state: CliState, owner: str | None, limit: int) -> None:
    """List the tablets: id, the account each belongs to, when last seen, revoked or not."""
    from server.devices.listing import list_devices

    with state.runtime().db.unit_of_work(write=False) as session:
        rows = list_devices(session, owner=owner, limit=limit)
    if not rows:
        click.echo("no devices" + (f" of {owner}" if owner else ""))
        return
    for d in rows:
        seen = f"{d.last_seen_at:%Y-%m-%d %H:%M} UTC" if d.last_seen_at else "never"
        revoked = f"  revoked {d.revoked_at:%Y-%m-%d %H:%M} UTC" if d.revoked_at else ""
        click.echo(f"{d.device_id}  {d.owner}  last seen {seen}  seq {d.highest_seq}{revoked}")


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
            f"{r.device_id}  {r.owner}  {numbers}  ({r.count} missing, "
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


# -- cases -------------------------------------------------------------------------------------


@main.group(cls=_Group)
def cases() -> None:
    """Monitoring cases: list and show them, read and set the workflow's settings."""


@cases.command("list")
@click.option(
    "--stage", help="verification, village_review, township_review, county_review, closed"
)
@click.option("--direction", type=click.Choice(["entry", "exit"]))
@click.option("--outcome", type=click.Choice(["open", "approved", "rejected"]))
@click.option("--region", metavar="CODE", help="Only cases in this region and below.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 200))
@pass_state
def cases_list(
    state: CliState,
    stage: str | None,
    direction: str | None,
    outcome: str | None,
    region: str | None,
    limit: int,
) -> None:
    """List cases, newest first: id, household, village, direction, stage, outcome."""
    from server.auth.actor import system_actor
    from server.monitoring.cases import CaseFilters, list_cases
    from server.monitoring.terms import CaseStage

    if stage is not None and stage not in CaseStage.codes():
        raise click.UsageError(f"no stage {stage}; choose from {', '.join(CaseStage.codes())}")
    filters = CaseFilters(
        stage=stage, direction=direction, outcome=outcome, region=region, limit=limit
    )
    with state.runtime().db.unit_of_work(write=False) as session:
        page = list_cases(session, system_actor(), filters)
    if not page.cases:
        click.echo("no cases")
        return
    for c in page.cases:
        click.echo(
            f"{c.id}  household {c.household_id}  {c.village_code}  {c.direction.value}  "
            f"{c.stage.value} ({c.stage.zh})  {c.outcome.value}  opened {c.opened_at:%Y-%m-%d}"
        )
    if page.total > len(page.cases):
        click.echo(f"... {page.total - len(page.cases)} more (use --limit or filters)")


@cases.command("show")
@click.argument("case_id", type=click.UUID)
@pass_state
def cases_show(state: CliState, case_id: uuid.UUID) -> None:
    """One case: its state, referrals and every step taken."""
    from server.auth.actor import system_actor
    from server.monitoring.cases import get_case

    with state.runtime().db.unit_of_work(write=False) as session:
        case = get_case(session, system_actor(), case_id)
    click.echo(
        f"case {case.id}  {case.direction.value} ({case.direction.zh})  household "
        f"{case.household_id}  village {case.village_code}"
    )
    click.echo(f"stage {case.stage.value} ({case.stage.zh})  outcome {case.outcome.value}")
    if case.waiting_for:
        click.echo(f"waiting for {case.waiting_for}")
    for r in case.referrals:
        who = r.department or r.referred_by or "-"
        click.echo(f"referral {r.referred_at:%Y-%m-%d} {r.channel} by {who}: {', '.join(r.causes)}")
    for s in case.steps:
        click.echo(
            f"step {s.seq} {s.taken_at:%Y-%m-%d %H:%M} {s.stage.value} {s.decision.value} "
            f"by {s.taken_by or '-'}" + (f": {s.comment}" if s.comment else "")
        )


@cases.group("config", cls=_Group)
def cases_config() -> None:
    """The workflow's settings per region (notice days, exit months …)."""


@cases_config.command("get")
@click.option("--region", default="*", show_default=True, help="A region code, or * for all.")
@pass_state
def cases_config_get(state: CliState, region: str) -> None:
    """Every setting as it applies in REGION, and where the value comes from."""
    from server.monitoring import settings

    with state.runtime().db.unit_of_work(write=False) as session:
        values = settings.describe(session, region)
    for v in values:
        origin = f"set on {v.set_on}" if v.set_on else "default"
        click.echo(f"{v.spec.name} = {v.value}  ({origin}; {v.spec.zh})")


@cases_config.command("set")
@click.argument("name")
@click.argument("value", type=int)
@click.option("--region", default="*", show_default=True, help="A region code, or * for all.")
@pass_state
def cases_config_set(state: CliState, name: str, value: int, region: str) -> None:
    """Set setting NAME to VALUE for REGION and everything below it (audited)."""
    from server.auth.actor import system_actor
    from server.monitoring import settings

    with state.runtime().db.unit_of_work() as session:
        settings.set_value(session, system_actor(), region, name, value)
    click.echo(f"{name} = {value} for {region}")


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


# -- commands of other packages (their modules import only click at the top) -------------------

from server.exports import cli as _exports_cli  # noqa: E402,F401  (export)
from server.forms import cli as _forms_cli  # noqa: E402,F401  (forms import-/export-xlsform)
from server.scheduler.cli import scheduler as _scheduler  # noqa: E402
from server.warnings.cli import warnings as _warnings_commands  # noqa: E402

main.add_command(_scheduler)
main.add_command(_warnings_commands)


def _add_department_commands() -> None:
    from server.departments.cli import departments

    main.add_command(departments)


_add_department_commands()
