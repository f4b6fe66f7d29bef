"""`fieldsync-tablet`: the reference client as a command-line tablet simulator, one `TabletClient`
call per command on the `--db` file. Failures print `error: …` and exit 1, never a traceback;
passwords come from a prompt or stdin and are never stored or printed.

`--help` must answer at once: the client (requests, marshmallow, the form library) is imported
and the `--db` file opened only when a command needs them."""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sync_protocol.client_errors import ClientError, InvalidSubmission

if TYPE_CHECKING:
    from sync_protocol.client import PullReport, PushReport, TabletClient

# sync_protocol.transport.RetryPolicy.max_attempts (a test keeps them equal).
DEFAULT_ATTEMPTS = 5


class _TabletGroup(click.Group):
    """Turns every client failure into `error: …` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidSubmission as error:
            click.echo(f"error: answers for {error.form_id} are not valid:", err=True)
            for issue in error.issues:
                click.echo(f"  {issue['path']}: {issue['message']} ({issue['code']})", err=True)
            raise click.exceptions.Exit(1) from error
        except ClientError as error:
            click.echo(f"error: {error}", err=True)
            raise click.exceptions.Exit(1) from error
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # the reader went away (`show | head`): click ends quietly
        except (OSError, ValueError, sqlite3.Error) as error:
            click.echo(f"error: {error}", err=True)
            raise click.exceptions.Exit(1) from error
        except Exception as error:  # a bug: still no traceback for the field worker
            click.echo(f"error: internal error ({type(error).__name__}): {error}", err=True)
            raise click.exceptions.Exit(1) from error


@click.group(cls=_TabletGroup)
@click.option(
    "--db",
    "db_path",
    envvar="FIELDSYNC_TABLET_DB",
    default="tablet.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The tablet's SQLite file (created on first use).",
)
@click.option(
    "--server",
    envvar="FIELDSYNC_SERVER",
    default=None,
    help="Server base URL, e.g. http://127.0.0.1:5000 (remembered in the file).",
)
@click.option(
    "--retries",
    default=DEFAULT_ATTEMPTS,
    show_default=True,
    type=click.IntRange(1, 20),
    help="Attempts per request when the network or server fails (with backoff).",
)
@click.pass_context
def cli(ctx: click.Context, db_path: Path, server: str | None, retries: int) -> None:
    """A simulated field tablet speaking the fieldsync sync protocol."""
    tablet = _Tablet(db_path, server, retries)
    ctx.call_on_close(tablet.close)
    ctx.obj = tablet


@dataclass
class _Tablet:
    """The `--db` file's client, opened by the first command that needs it."""

    db_path: Path
    server: str | None
    retries: int
    client: TabletClient | None = field(default=None, repr=False)

    def open(self) -> TabletClient:
        if self.client is None:
            from sync_protocol.client import TabletClient
            from sync_protocol.transport import RetryPolicy

            retry = RetryPolicy(max_attempts=self.retries)
            self.client = TabletClient(self.db_path, self.server, retry=retry)
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _client(ctx: click.Context) -> TabletClient:
    tablet: _Tablet = ctx.obj
    return tablet.open()


@cli.command()
@click.argument("username")
@click.option("--password", default=None, help="The password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def login(ctx: click.Context, username: str, password: str | None, password_stdin: bool) -> None:
    """Log in as USERNAME; the token is bound to this tablet's device id."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password is None:
        password = click.prompt("Password", hide_input=True)
    client = _client(ctx)
    user = client.login(username, password or "")
    click.echo(
        f"logged in as {user['username']} ({user['role']}), regions: "
        f"{', '.join(user['regions']) or '(all)'}; device {client.device_id}; "
        f"token expires {user['expires_at']}"
    )


@cli.command()
@click.pass_context
def forms(ctx: click.Context) -> None:
    """Fetch the published forms (unchanged ones are kept) and list them."""
    for refresh in _client(ctx).refresh_forms():
        state = "updated" if refresh.fetched else "unchanged"
        click.echo(f"{refresh.form_id} v{refresh.version} {state} ({refresh.hash[:12]})")


@cli.command()
@click.pass_context
def pull(ctx: click.Context) -> None:
    """Bring the local register up to date."""
    click.echo(_pull_line(_client(ctx).pull()))


@cli.command()
@click.pass_context
def push(ctx: click.Context) -> None:
    """Send completed submissions."""
    click.echo(_push_line(_client(ctx).push()))


@cli.command()
@click.pass_context
def sync(ctx: click.Context) -> None:
    """Push, then pull, then refresh the forms."""
    report = _client(ctx).sync()
    click.echo(_push_line(report.push))
    click.echo(_pull_line(report.pull))
    fetched = sum(1 for form in report.forms if form.fetched)
    click.echo(f"forms: {len(report.forms)} in use, {fetched} downloaded")


@cli.command()
@click.argument("form_id")
@click.argument(
    "answers", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--sample", is_flag=True, help="Use the bundled sample answers of the form.")
@click.option("--household", default=None, help="With --sample: the household to visit.")
@click.option("--village", default=None, help="With --sample: the village of a new household.")
@click.pass_context
def fill(
    ctx: click.Context,
    form_id: str,
    answers: Path | None,
    sample: bool,
    household: str | None,
    village: str | None,
) -> None:
    """Complete FORM_ID with the answers in ANSWERS (a JSON object), or --sample."""
    client = _client(ctx)
    if sample == (answers is not None):
        raise click.UsageError("give either ANSWERS.json or --sample")
    if answers is not None:
        data = json.loads(answers.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ClientError(f"{answers} must hold a JSON object of answers")
    else:
        from sync_protocol.tablet_samples import sample_answers

        data = sample_answers(client, form_id, household_id=household, village_code=village)
    instance_id = client.fill(form_id, data)
    entry = client.outbox()[-1]
    click.echo(
        f"completed {form_id} v{entry.form_version}: instance {instance_id}, seq {entry.device_seq}"
    )


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--content-type", default=None, help="The media type (default: from the name).")
@click.pass_context
def attach(ctx: click.Context, path: Path, content_type: str | None) -> None:
    """Keep the file at PATH (photo, signature, audio, video, document, any file) for upload and
    print the reference to put in an answer."""
    reference = _client(ctx).add_attachment(path, content_type=content_type)
    click.echo(json.dumps(reference, ensure_ascii=False))


@cli.command()
@click.argument("form_id")
@click.option("--lang", default="zh", show_default=True, help="Language tag of the labels.")
@click.pass_context
def questions(ctx: click.Context, form_id: str, lang: str) -> None:
    """List FORM_ID's questions with their types and labels in LANG (falling back to the
    language without its region, then English)."""
    definition = _client(ctx).definition(form_id)
    click.echo(definition.title.in_language(lang))
    for path, f in definition.iter_fields():
        label = f.label.in_language(lang) if f.label is not None else ""
        indent = "  " * (len(path) - 1)
        kind = f.type.value if f.media is None else f"{f.type.value}:{f.media.value}"
        click.echo(f"{indent}{f.name} [{kind}] {label}".rstrip())
        for choice in definition.choices_for(f):
            click.echo(f"{indent}  - {choice.code}: {choice.label.in_language(lang)}")


@cli.command()
@click.option("--households", "what", flag_value="household", default=True)
@click.option("--members", "what", flag_value="member")
@click.option("--outbox", "what", flag_value="outbox")
@click.pass_context
def show(ctx: click.Context, what: str) -> None:
    """List the local households (default), members or outbox."""
    client = _client(ctx)
    if what == "outbox":
        for entry in client.outbox():
            line = (
                f"#{entry.device_seq} {entry.instance_id} "
                f"{entry.form_id} v{entry.form_version} {entry.state}"
            )
            errors = (entry.result or {}).get("errors") or []
            if errors:
                line += " — " + "; ".join(f"{e['path']}: {e['code']}" for e in errors)
            click.echo(line)
        return
    for shown in client.entities(what):
        fields = shown.fields
        if what == "household":
            label = f"{fields.get('village_code', '?')} no.{fields.get('household_no', '?')}"
        else:
            label = f"{fields.get('name', '?')} of {fields.get('household_id', '?')}"
        rev = "new" if shown.rev is None else f"rev {shown.rev}"
        local = f" (local: {', '.join(shown.local_fields)})" if shown.local_fields else ""
        deleted = " [deleted]" if shown.deleted else ""
        click.echo(f"{shown.id} {label} {rev}{deleted}{local}")


@cli.command()
@click.pass_context
def conflicts(ctx: click.Context) -> None:
    """List the conflicts the server reported for this tablet's submissions."""
    for c in _client(ctx).conflicts():
        mine = json.dumps(c["value"], ensure_ascii=False)
        other = json.dumps(c["other_value"], ensure_ascii=False)
        won = "mine won" if c["winner"] == "this" else "other won"
        click.echo(f"{c['entity']}/{c['id']} {c['field']}: mine {mine} vs other {other} ({won})")


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the tablet's identity, login, clock and counts."""
    for key, value in _client(ctx).status().items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            value = ", ".join(value) or "none"
        click.echo(f"{key}: {value}")


def _push_line(report: PushReport) -> str:
    line = (
        f"pushed {report.batches} batch(es): {report.accepted} accepted, "
        f"{report.duplicate} duplicate, {report.rejected} rejected, "
        f"{report.conflicts} conflict(s), {report.attachments_uploaded} attachment(s) uploaded"
    )
    if report.attachments_unavailable:
        line += f"; missing here: {', '.join(report.attachments_unavailable)}"
    return line


def _pull_line(report: PullReport) -> str:
    again = " (started over: the server asked for a full resync)" if report.resynced else ""
    return (
        f"pulled {report.pages} page(s): {report.entities} entities, "
        f"{report.removed} removed{again}"
    )


def main() -> None:
    """Console entry point (`fieldsync-tablet`). The client is opened inside the commands, so
    every failure, opening the `--db` file included, goes through `_TabletGroup`."""
    cli(prog_name="fieldsync-tablet")
