"""`fieldsync forms import-xlsform FILE [--choices-file CSV …]`: an XLSForm workbook becomes the
draft of a new form, or the next draft of an existing one, as the upload endpoint does (the file's
name stands in for a missing form_id; the CSV files are those `select_one_from_file` names).
Warnings are printed with their cell; problems fail the command with their cells."""

from __future__ import annotations

from pathlib import Path

import click

from server.cli import CliState, forms, pass_state


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
