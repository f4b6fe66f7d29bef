"""Turning an uploaded XLSForm workbook into a form draft: a new form, or the next draft of an
existing one. Constructs fieldsync cannot hold are dropped with a warning at their sheet, row and
column; what would make collected data wrong is refused the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from forms.xlsform import (
    EXPECTED_WORKBOOK,
    ImportIssue,
    describe_non_workbook,
    import_xlsform,
    issue_cells,
)
from server.auth.actor import Actor
from server.errors import UnsupportedMediaType, ValidationFailed
from server.forms import service
from server.forms.models import Form


class XlsformReport:
    def __init__(self, draft: service.DraftReport, warnings: list[ImportIssue]) -> None:
        self.draft = draft
        self.warnings = warnings

    def to_dict(self) -> dict[str, Any]:
        return {**self.draft.to_dict(), "warnings": [_detail(w) for w in self.warnings]}


def _detail(issue: ImportIssue) -> dict[str, Any]:
    where = issue.cell or (f"row {issue.row}" if issue.row else "")
    return {
        "path": f"{issue.sheet}!{where}" if where else issue.sheet,
        "code": "xlsform_unsupported" if issue.blocking else "xlsform_ignored",
        **issue.to_dict(),
    }


def import_xlsform_draft(
    session: Session,
    actor: Actor,
    content: bytes,
    *,
    filename: str | None = None,
    choices_files: dict[str, bytes] | None = None,
) -> tuple[XlsformReport, bool]:
    """The report on the draft made from `content`, and whether the form is new.

    Anything but an `.xlsx` workbook is `415 unsupported_media_type` saying what was received
    (CSV text, an encrypted workbook, an empty file …) and what is expected; a workbook with
    problems is `422` with their sheet, row and column. `filename` stands in for a missing
    form_id (as pyxform does); `choices_files` are the CSV files `select_one_from_file` names."""
    received = describe_non_workbook(content)
    if received is not None:
        name = f"{filename!r} is " if filename else "the upload is "
        raise UnsupportedMediaType(
            f"{name}{received}, not {EXPECTED_WORKBOOK}: save the form in Excel (or LibreOffice) "
            "as .xlsx and upload that file",
            details={"filename": filename, "received": received, "expected": EXPECTED_WORKBOOK},
        )
    result = import_xlsform(content, filename=filename, choices_files=choices_files)
    if result.definition is None:
        raise ValidationFailed(
            "the XLSForm cannot be imported", [_detail(issue) for issue in result.issues]
        )
    warnings = [issue for issue in result.issues if not issue.blocking]
    form_id = service.require_form_id(result.definition)
    if session.get(Form, form_id) is None:
        return XlsformReport(service.create_form(session, actor, result.definition), warnings), True
    draft = service.replace_draft(session, actor, form_id, result.definition)
    return XlsformReport(draft, warnings), False


@dataclass(frozen=True)
class LocatedIssue:
    """An import issue as the console lists it: where, the cell's text, what is wrong."""

    sheet: str
    row: int | None
    column: str | None
    cell: str | None
    value: str | None
    message: str
    blocking: bool


def located_issues(content: bytes, issues: list[dict[str, Any]]) -> list[LocatedIssue]:
    """The import's issues (the `errors` of its 422, or a report's warnings) with the text of
    the cell each one points at, read from the uploaded `content`."""
    found = [
        ImportIssue(
            str(item.get("sheet") or ""),
            item.get("row") if isinstance(item.get("row"), int) else None,
            item.get("column") if isinstance(item.get("column"), str) else None,
            str(item.get("message") or ""),
            bool(item.get("blocking", True)),
            item.get("cell") if isinstance(item.get("cell"), str) else None,
        )
        for item in issues
    ]
    values = issue_cells(content, found)
    return [
        LocatedIssue(i.sheet, i.row, i.column, i.cell, value, i.message, i.blocking)
        for i, value in zip(found, values, strict=True)
    ]
