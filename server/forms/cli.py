"""The XLSForm commands of the `forms` group of `server.cli` (services are imported inside the
commands, as there):

- `fieldsync forms import-xlsform FILE [--choices-file CSV …]`: an XLSForm workbook becomes the
  draft of a new form, or the next draft of an existing one, as the upload endpoint does (the
  file's name stands in for a missing form_id; the CSV files are those `select_one_from_file`
  names). Warnings are printed with their cell; problems fail the command with their cells.
- `fieldsync forms export-xlsform FORM_ID [--version N | --draft] -o FILE`: a published version
  (or the draft) written as an XLSForm workbook, the file an admin edits in Excel and imports
  back.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import click

from server.cli import CliState, CommandRefused, forms, pass_state

# sync_protocol.messages.MAX_INT32, not imported: `fieldsync --help` loads no form library.
_MAX_VERSION = 2**31 - 1


@forms.command("import-xlsform")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--choices-file",
    "choices_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV file named by a select_one_from_file question (repeatable).",
)
@pass_state
def forms_import_xlsform(state: CliState, file: Path, choices_files: tuple[Path, ...]) -> None:
    """Import an XLSForm workbook (.xlsx or .xls) as a form draft."""
    from server.auth.actor import system_actor
    from server.forms.xlsform_import import import_xlsform_draft

    with state.runtime().db.unit_of_work() as session:
        report, created = import_xlsform_draft(
            session,
            system_actor(),
            file.read_bytes(),
            filename=file.name,
            choices_files={p.name: p.read_bytes() for p in choices_files},
        )
    body = report.to_dict()
    for warning in body["warnings"]:
        click.echo(f"warning: {warning['path']}: {warning['message']}")
    click.echo(f"form {body['form_id']}: {'new form, ' if created else ''}draft saved")


@forms.command("export-xlsform")
@click.argument("form_id")
@click.option(
    "--version",
    type=click.IntRange(1, _MAX_VERSION),
    help="The published version (default: the current one in use).",
)
@click.option("--draft", is_flag=True, help="Export the draft instead of a published version.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .xlsx file to write (replaced if it exists).",
)
@pass_state
def forms_export_xlsform(
    state: CliState, form_id: str, version: int | None, draft: bool, output: Path
) -> None:
    """Write form FORM_ID as an XLSForm workbook (.xlsx) that imports back unchanged."""
    from forms.definition_schema import FORM_ID
    from server.forms import service
    from server.forms.xlsform_export import export_draft, export_version

    if draft and version is not None:
        raise click.UsageError("give --version or --draft, not both")
    if not re.fullmatch(FORM_ID, form_id):
        raise CommandRefused(
            f"no form {form_id!r}: form ids are 2-64 lower-case letters, digits or '_'"
        )
    with state.runtime().db.unit_of_work(write=False) as session:
        if draft:
            export = export_draft(session, form_id)
        else:
            number = version or service.current_version(session, form_id).version
            export = export_version(session, form_id, number)
    _write_atomically(output, export.content)
    click.echo(f"{output}: {export.filename.removesuffix('.xlsx')} ({len(export.content)} bytes)")


def _write_atomically(path: Path, content: bytes) -> None:
    """The whole file or, on any failure, the old one untouched (a temporary file renamed)."""
    directory = path.resolve().parent
    if not directory.is_dir():
        raise CommandRefused(f"no folder {directory}")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".xlsform-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
