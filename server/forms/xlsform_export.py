"""A form as an XLSForm workbook to download: a published version, or the draft (which must load
as a definition). The admin edits it in Excel and uploads it back (`POST /api/v1/forms/import/
xlsform`) as the next draft."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from forms.definition import FormDefinition
from forms.definition_schema import load_definition
from forms.issues import DefinitionError
from forms.xlsform_writer import XlsformWriteError, write_xlsform, xlsform_filename
from server.errors import ValidationFailed
from server.forms import service


@dataclass(frozen=True)
class XlsformExport:
    """The workbook's bytes and the file name to offer (`household_visit-v3.xlsx`)."""

    filename: str
    content: bytes


def export_version(session: Session, form_id: str, version: int) -> XlsformExport:
    """Published version `version` (retired ones too) as a workbook; 404 if there is none."""
    row = service.get_version(session, form_id, version)
    return _export(service.published_definition(row), version)


def export_draft(session: Session, form_id: str) -> XlsformExport:
    """The draft as a workbook; 404 without form or draft, 422 when the draft does not load as a
    definition (its problems listed: fix them with PUT …/draft first)."""
    raw = service.get_draft(session, form_id)
    try:
        definition = load_definition(raw)
    except DefinitionError as err:
        raise ValidationFailed(
            "the draft is not a valid definition and cannot be written as an XLSForm",
            [issue.to_dict() for issue in err.issues],
        ) from err
    return _export(definition, None)


def _export(definition: FormDefinition, version: int | None) -> XlsformExport:
    try:
        content = write_xlsform(definition)
    except XlsformWriteError as err:
        raise ValidationFailed(
            "the form cannot be written as an XLSForm",
            [{"path": "", "code": "invalid_definition", "message": str(err)}],
        ) from err
    return XlsformExport(xlsform_filename(definition.form_id, version), content)
