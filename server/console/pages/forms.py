"""Forms, for administrators: every form with its versions and status, a version's questions, the
diff between two versions, XLSForm upload (its problems located at sheet, row and column) and
download, a draft editor for the common edits (labels, choices, required, relevance) with a live
check, publishing and retiring (after a confirmation).

Calls `server.forms` services only; the edits themselves are `forms.draft_edit`'s.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response as WerkzeugResponse

from forms.definition_schema import FORM_ID
from forms.draft_edit import (
    ChoiceEdit,
    DraftEditError,
    FieldEdit,
    choice_list_name,
    choices_of,
    find_question,
    has_editable_choices,
    iter_questions,
    label_of,
)
from forms.xlsform_writer import XLSX_MEDIA_TYPE
from server.console.blueprint import bp
from server.console.i18n import current_language
from server.console.session import console_page, current_user
from server.errors import Conflict, NotFound, UnsupportedMediaType, ValidationFailed
from server.forms import service
from server.forms.schemas import DiffQuerySchema
from server.forms.xlsform_export import XlsformExport, export_draft, export_version
from server.forms.xlsform_import import import_xlsform_draft, located_issues
from server.request_body import load_with
from server.runtime import runtime
from server.users.models import Role
from sync_protocol.messages import MAX_INT32

_FORM_ID = re.compile(FORM_ID)
_VERSION = f"int(min=1, max={MAX_INT32})"
# The longest label, code or expression the editor passes on; more is refused.
MAX_TEXT = 2000
# Choice rows one edit may carry (the definition's own limit is checked when it loads).
MAX_CHOICE_ROWS = 5000
# Empty rows offered for new choices.
NEW_CHOICE_ROWS = 3

STATUS_LABELS = {
    "draft": _l("Not yet published"),
    "published": _l("Published"),
    "retired": _l("Retired"),
}


@bp.url_value_preprocessor
def _known_form_id_shape(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # As the API: an id no form can have names nothing (and never reaches a query).
    form_id = (values or {}).get("form_id")
    if (
        endpoint
        and endpoint.startswith("console.form")
        and form_id is not None
        and not _FORM_ID.fullmatch(form_id)
    ):
        raise NotFound(_("No such form."))


# --- the list and the upload ---------------------------------------------------------------------


@bp.get("/forms")
@console_page(Role.ADMIN)
def forms() -> str:
    return _forms_page()


def _forms_page(
    *, issues: list[Any] | None = None, upload_error: str | None = None, filename: str = ""
) -> str:
    with runtime().db.unit_of_work(write=False) as session:
        overviews = service.list_forms(session)
        return render_template(
            "console/forms/list.html",
            overviews=overviews,
            status_labels=STATUS_LABELS,
            issues=issues,
            upload_error=upload_error,
            filename=filename,
        )


@bp.post("/forms/import")
@console_page(Role.ADMIN)
def form_import() -> WerkzeugResponse | tuple[str, int]:
    rt = runtime()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _forms_page(upload_error=_("Choose an XLSForm workbook (.xlsx) to upload.")), 422
    content = upload.read(rt.settings.max_body_size + 1)
    filename = upload.filename
    if len(content) > rt.settings.max_body_size:
        message = _("The file is larger than %(size)s MiB.", size=rt.settings.max_body_size >> 20)
        return _forms_page(upload_error=message, filename=filename), 413
    try:
        with rt.db.unit_of_work() as session:
            report, created = import_xlsform_draft(
                session, current_user(), content, filename=filename
            )
    except UnsupportedMediaType as exc:
        return _forms_page(upload_error=exc.message, filename=filename), 415
    except ValidationFailed as exc:
        located = located_issues(content, exc.details.get("errors", []))
        message = _("The workbook cannot be imported: correct the rows below and upload it again.")
        return _forms_page(issues=located, upload_error=message, filename=filename), 422
    form_id = report.draft.form_id
    if created:
        flash(_("Form %(form_id)s created from %(file)s.", form_id=form_id, file=filename), "ok")
    else:
        flash(
            _("The draft of %(form_id)s replaced from %(file)s.", form_id=form_id, file=filename),
            "ok",
        )
    if report.warnings:
        warnings = located_issues(content, [w.to_dict() for w in report.warnings])
        page = render_template(
            "console/forms/imported.html", form_id=form_id, filename=filename, issues=warnings
        )
        return page, 201 if created else 200
    return redirect(url_for("console.form_draft", form_id=form_id))


# --- one form, its versions and their diff -------------------------------------------------------


@bp.get("/forms/<form_id>")
@console_page(Role.ADMIN)
def form_detail(form_id: str) -> str | tuple[str, int]:
    diff_error = None
    changes = None
    chosen: dict[str, Any] = {}
    with runtime().db.unit_of_work(write=False) as session:
        overview = service.get_form(session, form_id)
        report = service.validate_draft(session, form_id) if overview.has_draft else None
        if "from" in request.args or "to" in request.args:
            try:
                chosen = load_with(
                    DiffQuerySchema(),
                    {k: request.args.get(k, "") for k in ("from", "to")},
                )
                changes = service.diff_versions(session, form_id, chosen["from"], chosen["to"])
            except (ValidationFailed, NotFound):
                diff_error = _("Choose two published versions of this form.")
        page = render_template(
            "console/forms/detail.html",
            overview=overview,
            report=report,
            status_labels=STATUS_LABELS,
            changes=changes,
            chosen=chosen,
            diff_error=diff_error,
        )
    return (page, 422) if diff_error else page


@bp.get(f"/forms/<form_id>/versions/<{_VERSION}:version>")
@console_page(Role.ADMIN)
def form_version(form_id: str, version: int) -> str:
    with runtime().db.unit_of_work(write=False) as session:
        row = service.get_version(session, form_id, version)
        return render_template(
            "console/forms/version.html",
            row=row,
            title=_title(row.definition.get("title")),
            questions=_questions(row.definition),
        )


@bp.get(f"/forms/<form_id>/versions/<{_VERSION}:version>/xlsform")
@console_page(Role.ADMIN)
def form_version_xlsform(form_id: str, version: int) -> Response:
    with runtime().db.unit_of_work(write=False) as session:
        return _workbook(export_version(session, form_id, version))


# --- the draft and its editor --------------------------------------------------------------------


@bp.get("/forms/<form_id>/draft")
@console_page(Role.ADMIN)
def form_draft(form_id: str) -> str:
    with runtime().db.unit_of_work(write=False) as session:
        overview = service.get_form(session, form_id)
        raw = service.get_draft(session, form_id)
        report = service.validate_draft(session, form_id)
        return render_template(
            "console/forms/draft.html",
            overview=overview,
            title=_title(raw.get("title")),
            questions=_questions(raw),
            report=report,
        )


@bp.get("/forms/<form_id>/draft/xlsform")
@console_page(Role.ADMIN)
def form_draft_xlsform(form_id: str) -> Response:
    with runtime().db.unit_of_work(write=False) as session:
        return _workbook(export_draft(session, form_id))


@bp.get("/forms/<form_id>/draft/questions/<path>")
@console_page(Role.ADMIN)
def form_question(form_id: str, path: str) -> str:
    with runtime().db.unit_of_work(write=False) as session:
        raw = service.get_draft(session, form_id)
        report = service.validate_draft(session, form_id)
    return _question_page(form_id, path, raw, report.issues, values=None)


@bp.post("/forms/<form_id>/draft/questions/<path>")
@console_page(Role.ADMIN)
def form_question_save(form_id: str, path: str) -> WerkzeugResponse | tuple[str, int]:
    edit, problems = _field_edit(request.form)
    rt = runtime()
    if edit is None:
        with rt.db.unit_of_work(write=False) as session:
            raw = service.get_draft(session, form_id)
        return _question_page(form_id, path, raw, [], values=request.form, errors=problems), 422
    with rt.db.unit_of_work() as session:
        report = service.edit_draft_field(session, current_user(), form_id, path, edit)
    if report.is_publishable:
        flash(_("Saved. The draft has no problems."), "ok")
    else:
        flash(_("Saved. The draft still has %(n)s problem(s).", n=len(report.issues)), "error")
    return redirect(url_for("console.form_question", form_id=form_id, path=path))


@bp.post("/forms/<form_id>/draft/questions/<path>/check")
@console_page(Role.ADMIN)
def form_question_check(form_id: str, path: str) -> Response | tuple[Response, int]:
    """The live check: the draft's problems with the edit applied, nothing saved (JSON)."""
    edit, problems = _field_edit(request.form)
    if edit is None:
        return jsonify({"valid": False, "problems": problems}), 422
    with runtime().db.unit_of_work(write=False) as session:
        report = service.check_field_edit(session, form_id, path, edit)
    return jsonify(
        {"valid": report.is_publishable, "problems": [i.to_dict() for i in report.issues]}
    )


def _question_page(
    form_id: str,
    path: str,
    raw: dict[str, Any],
    issues: list[Any],
    *,
    values: Any,
    errors: list[dict[str, str]] | None = None,
) -> str:
    try:
        question = find_question(raw, path)
    except DraftEditError as exc:
        raise NotFound(str(exc)) from exc
    editable = has_editable_choices(question)
    choices = choices_of(raw, question) if question.get("choices") is not None else []
    rows = [
        {
            "original": str(c.get("code", "")),
            "code": str(c.get("code", "")),
            "zh": label_of(c, "zh"),
            "en": label_of(c, "en"),
            "remove": False,
        }
        for c in choices
    ]
    if values is not None:  # re-shown after a refused save: what was typed
        rows = _typed_choice_rows(values)
    elif editable:
        rows += [{"original": "", "code": "", "zh": "", "en": "", "remove": False}] * (
            NEW_CHOICE_ROWS
        )
    required = question.get("required")
    return render_template(
        "console/forms/question.html",
        form_id=form_id,
        path=path,
        question=question,
        label_zh=values.get("label_zh", "") if values is not None else label_of(question, "zh"),
        label_en=values.get("label_en", "") if values is not None else label_of(question, "en"),
        required=(values.get("required") == "1") if values is not None else required is True,
        required_when=(
            values.get("required_when", "")
            if values is not None
            else (required if isinstance(required, str) else "")
        ),
        relevant=(
            values.get("relevant", "")
            if values is not None
            else str(question.get("relevant") or "")
        ),
        editable_choices=editable,
        has_choices=question.get("choices") is not None,
        list_name=choice_list_name(question),
        choice_rows=rows,
        issues=issues,
        errors=errors or [],
    )


def _typed_choice_rows(values: Any) -> list[dict[str, Any]]:
    count = _choice_count(values)
    return [
        {
            "original": values.get(f"choice-{i}-original", ""),
            "code": values.get(f"choice-{i}-code", ""),
            "zh": values.get(f"choice-{i}-zh", ""),
            "en": values.get(f"choice-{i}-en", ""),
            "remove": values.get(f"choice-{i}-remove") == "1",
        }
        for i in range(count)
    ]


def _choice_count(values: Any) -> int:
    raw = values.get("choice_count", "")
    return int(raw) if raw.isdigit() and int(raw) <= MAX_CHOICE_ROWS else -1


def _field_edit(values: Any) -> tuple[FieldEdit | None, list[dict[str, str]]]:
    """The edit the editor's form asks for, or None and what is wrong with the form itself."""
    problems = []
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_TEXT:
            problems.append(
                {
                    "path": name,
                    "code": "too_long",
                    "message": _("At most %(n)s characters.", n=MAX_TEXT),
                }
            )
    choices: tuple[ChoiceEdit, ...] | None = None
    if values.get("choice_count") is not None:
        count = _choice_count(values)
        if count < 0:
            problems.append(
                {
                    "path": "choice_count",
                    "code": "invalid_value",
                    "message": _("At most %(n)s choices.", n=MAX_CHOICE_ROWS),
                }
            )
        else:
            choices = tuple(
                ChoiceEdit(
                    code=values.get(f"choice-{i}-code", ""),
                    zh=values.get(f"choice-{i}-zh", ""),
                    en=values.get(f"choice-{i}-en", ""),
                    original=values.get(f"choice-{i}-original") or None,
                    remove=values.get(f"choice-{i}-remove") == "1",
                )
                for i in range(count)
            )
    if problems:
        return None, problems
    edit = FieldEdit(
        label_zh=values.get("label_zh", ""),
        label_en=values.get("label_en", ""),
        required=values.get("required") == "1",
        required_when=values.get("required_when", ""),
        relevant=values.get("relevant", ""),
        choices=choices,
    )
    return edit, []


# --- publish and retire, after a confirmation ----------------------------------------------------


@bp.get("/forms/<form_id>/publish")
@console_page(Role.ADMIN)
def form_publish(form_id: str) -> str:
    return _publish_page(form_id)


def _publish_page(form_id: str, error: str | None = None) -> str:
    with runtime().db.unit_of_work(write=False) as session:
        overview = service.get_form(session, form_id)
        if not overview.has_draft:
            raise Conflict(_("This form has no draft to publish."))
        report = service.validate_draft(session, form_id)
        changes = service.diff_draft(session, form_id)
        return render_template(
            "console/forms/publish.html",
            overview=overview,
            report=report,
            changes=changes,
            error=error,
        )


@bp.post("/forms/<form_id>/publish")
@console_page(Role.ADMIN)
def form_publish_confirmed(form_id: str) -> WerkzeugResponse | tuple[str, int]:
    try:
        with runtime().db.unit_of_work() as session:
            published = service.publish(session, current_user(), form_id)
    except (Conflict, ValidationFailed) as exc:
        return _publish_page(form_id, error=exc.message), exc.code.http_status
    flash(
        _("Published %(form_id)s version %(version)s.", form_id=form_id, version=published.version),
        "ok",
    )
    return redirect(url_for("console.form_detail", form_id=form_id))


@bp.get("/forms/<form_id>/retire")
@console_page(Role.ADMIN)
def form_retire(form_id: str) -> str:
    return _retire_page(form_id, request.args.get("version", ""))


def _retire_page(form_id: str, version_text: str, error: str | None = None) -> str:
    version = _version_number(version_text)
    with runtime().db.unit_of_work(write=False) as session:
        overview = service.get_form(session, form_id)
        if version is not None:
            service.get_version(session, form_id, version)  # 404 for a version it lacks
        return render_template(
            "console/forms/retire.html",
            overview=overview,
            version=version,
            grace_days=runtime().settings.form_retire_grace_days,
            error=error,
        )


def _version_number(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_INT32:
        raise NotFound(_("No such version."))
    return int(text)


@bp.post("/forms/<form_id>/retire")
@console_page(Role.ADMIN)
def form_retire_confirmed(form_id: str) -> WerkzeugResponse | tuple[str, int]:
    version_text = request.form.get("version", "")
    version = _version_number(version_text)
    try:
        with runtime().db.unit_of_work() as session:
            retired = service.retire(session, current_user(), form_id, version)
    except Conflict as exc:
        return _retire_page(form_id, version_text, error=exc.message), 409
    flash(
        _(
            "Retired version(s) %(versions)s of %(form_id)s.",
            versions=", ".join(str(v) for v in retired),
            form_id=form_id,
        ),
        "ok",
    )
    return redirect(url_for("console.form_detail", form_id=form_id))


# --- shared pieces -------------------------------------------------------------------------------


def _workbook(export: XlsformExport) -> Response:
    response = Response(export.content, mimetype=XLSX_MEDIA_TYPE)
    response.headers.set("Content-Disposition", "attachment", filename=export.filename)
    return response


def _title(title: Any) -> str:
    if isinstance(title, dict):
        text = title.get(current_language()) or title.get("zh") or title.get("en")
        return text if isinstance(text, str) else ""
    return title if isinstance(title, str) else ""


def _questions(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a questions table, from a definition's (or a draft's) JSON data."""
    language = current_language()
    rows = []
    for path, item in iter_questions(raw):
        label = label_of(item, language) or label_of(item, "zh") or label_of(item, "en")
        choices = choices_of(raw, item) if item.get("choices") is not None else []
        required = item.get("required")
        rows.append(
            {
                "path": path,
                "depth": path.count("."),
                "type": str(item.get("type", "")),
                "label": label,
                "required": required,
                "relevant": item.get("relevant") if isinstance(item.get("relevant"), str) else "",
                "choices": [
                    f"{c.get('code', '')} {label_of(c, language) or label_of(c, 'zh')}".strip()
                    for c in choices
                ],
                "list_name": choice_list_name(item),
            }
        )
    return rows
