"""The life of a form on the server: drafts that administrators edit (saved even while incomplete,
with their problems reported), publishing to an immutable numbered version with a content hash,
retiring, and what the tablets may download. Checks against the register happen at publish.

A published version is never changed or deleted: submissions name it forever.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from forms.compatibility import check_register_compatibility
from forms.definition import FormDefinition
from forms.definition_schema import FORM_ID, LANGUAGE_TAG, load_definition
from forms.diff import FormDiff, diff_definitions
from forms.draft_edit import DraftEditError, FieldEdit, apply_field_edit
from forms.issues import DefinitionError, ValidationIssue
from server.audit import service as audit
from server.auth.actor import Actor
from server.db import utcnow
from server.errors import Conflict, NotFound, ValidationFailed
from server.forms.models import Form, FormVersion
from sync_protocol.messages import check_json_value

_FORM_ID = re.compile(FORM_ID)


@dataclass(frozen=True)
class DraftReport:
    form_id: str
    issues: list[ValidationIssue]

    @property
    def is_publishable(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        return {
            "form_id": self.form_id,
            "status": "draft",
            "valid": self.is_publishable,
            "issues": [issue.to_dict() for issue in self.issues],
        }


@dataclass(frozen=True)
class Published:
    form_id: str
    version: int
    hash: str
    changes: FormDiff | None


def definition_issues(raw: dict[str, Any]) -> tuple[FormDefinition | None, list[ValidationIssue]]:
    """The loaded definition and every problem with it, register compatibility included."""
    try:
        definition = load_definition(raw)
    except DefinitionError as exc:
        return None, list(exc.issues)
    return definition, check_register_compatibility(definition)


def require_storable(raw: dict[str, Any]) -> None:
    """422 for a definition that cannot be stored as JSON (NUL or lone surrogates in text, which
    PostgreSQL's jsonb refuses; non-finite numbers; nesting past the protocol's depth)."""
    problems = check_json_value(raw)
    if problems:
        raise ValidationFailed(
            "the definition cannot be stored",
            [
                {"path": _json_path(path), "code": message.code, "message": str(message)}
                for path, message in problems
            ],
        )


def _json_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def require_form_id(raw: dict[str, Any], expected: str | None = None) -> str:
    form_id = raw.get("form_id", expected)
    if not isinstance(form_id, str) or not _FORM_ID.fullmatch(form_id):
        raise ValidationFailed(
            "a form needs a valid form_id",
            [
                {
                    "path": "form_id",
                    "code": "invalid_form_id",
                    "message": "2–64 lower-case letters, digits or '_', starting with a letter",
                }
            ],
        )
    if expected is not None and form_id != expected:
        raise ValidationFailed(
            "form_id of the body differs from the URL",
            [
                {
                    "path": "form_id",
                    "code": "form_id_mismatch",
                    "message": f"expected {expected!r}, got {form_id!r}",
                }
            ],
        )
    return form_id


def _form_for_update(session: Session, form_id: str) -> Form:
    # Lock the form row: two administrators publishing at once must not both take version n+1.
    form = session.scalars(
        select(Form).where(Form.form_id == form_id).with_for_update()
    ).one_or_none()
    if form is None:
        raise NotFound(f"no form {form_id!r}")
    return form


def create_form(session: Session, actor: Actor, raw: dict[str, Any]) -> DraftReport:
    """A new form whose draft is `raw` (saved even if it has problems; they are reported)."""
    form_id = require_form_id(raw)
    require_storable(raw)
    if session.get(Form, form_id) is not None:
        raise Conflict(f"form {form_id!r} already exists; edit its draft instead")
    form = Form(
        form_id=form_id,
        title=_title(raw),
        draft=raw,
        draft_updated_at=utcnow(),
        draft_updated_by_id=actor.user_id,
    )
    session.add(form)
    try:
        session.flush()
    except IntegrityError as exc:  # created by someone else a moment ago
        raise Conflict(f"form {form_id!r} already exists; edit its draft instead") from exc
    audit.record(
        session,
        "form_created",
        user_id=actor.user_id,
        object_type="form",
        object_id=form_id,
        address=actor.address,
    )
    return DraftReport(form_id, definition_issues(raw)[1])


def replace_draft(session: Session, actor: Actor, form_id: str, raw: dict[str, Any]) -> DraftReport:
    require_form_id(raw, expected=form_id)
    require_storable(raw)
    form = _form_for_update(session, form_id)
    form.draft = {**raw, "form_id": form_id}
    form.draft_updated_at = utcnow()
    form.draft_updated_by_id = actor.user_id
    return DraftReport(form_id, definition_issues(form.draft)[1])


def get_draft(session: Session, form_id: str) -> dict[str, Any]:
    form = session.get(Form, form_id)
    if form is None:
        raise NotFound(f"no form {form_id!r}")
    if form.draft is None:
        raise NotFound(f"form {form_id!r} has no draft; PUT one to start editing")
    return form.draft


def validate_draft(session: Session, form_id: str) -> DraftReport:
    return DraftReport(form_id, definition_issues(get_draft(session, form_id))[1])


def publish(session: Session, actor: Actor, form_id: str) -> Published:
    """Publish the draft as the next version (1, 2, 3 …); 409 without a draft or without change."""
    form = _form_for_update(session, form_id)
    if form.draft is None:
        raise Conflict(f"form {form_id!r} has no draft to publish")
    definition, issues = definition_issues(form.draft)
    if definition is None or issues:
        raise ValidationFailed("the draft cannot be published", [i.to_dict() for i in issues])
    previous = _latest_version(session, form_id, include_retired=True)
    changes = None
    if previous is not None:
        changes = diff_definitions(load_definition(previous.definition), definition)
        if changes.is_empty and previous.retired_at is None:
            raise Conflict(
                f"the draft is the same as version {previous.version}",
                details={"version": previous.version},
            )
    version = (form.latest_version or 0) + 1
    published = dataclasses.replace(definition, version=version)
    row = FormVersion(
        form_id=form_id,
        version=version,
        definition=published.to_dict(),
        content_hash=published.content_hash(),
        published_by_id=actor.user_id,
    )
    session.add(row)
    form.latest_version = version
    form.title = published.title.to_dict()
    form.draft = None
    form.retired_at = None
    audit.record(
        session,
        "form_published",
        user_id=actor.user_id,
        object_type="form",
        object_id=form_id,
        address=actor.address,
        details={"version": version, "hash": row.content_hash},
    )
    session.flush()
    return Published(form_id, version, row.content_hash, changes)


def retire(session: Session, actor: Actor, form_id: str, version: int | None = None) -> list[int]:
    """Retire one published version, or with `version` None the whole form (every version).

    Returns the versions retired now. Their submissions are still accepted for the grace period.
    """
    form = _form_for_update(session, form_id)
    query = select(FormVersion).where(
        FormVersion.form_id == form_id, FormVersion.retired_at.is_(None)
    )
    if version is not None:
        if session.get(FormVersion, (form_id, version)) is None:
            raise NotFound(f"form {form_id!r} has no version {version}")
        query = query.where(FormVersion.version == version)
    rows = session.scalars(query).all()
    if not rows:
        raise Conflict("nothing to retire: already retired or never published")
    now = utcnow()
    for row in rows:
        row.retired_at = now
    if _latest_version(session, form_id, include_retired=False) is None:
        form.retired_at = now
    retired = sorted(row.version for row in rows)
    audit.record(
        session,
        "form_retired",
        user_id=actor.user_id,
        object_type="form",
        object_id=form_id,
        address=actor.address,
        details={"versions": retired},
    )
    return retired


def _latest_version(session: Session, form_id: str, *, include_retired: bool) -> FormVersion | None:
    query = select(FormVersion).where(FormVersion.form_id == form_id)
    if not include_retired:
        query = query.where(FormVersion.retired_at.is_(None))
    return session.scalars(query.order_by(FormVersion.version.desc()).limit(1)).first()


def list_published(session: Session) -> list[FormVersion]:
    """The newest non-retired version of every form: what tablets should use."""
    rows = session.scalars(
        select(FormVersion)
        .where(FormVersion.retired_at.is_(None))
        .order_by(FormVersion.form_id, FormVersion.version.desc())
    ).all()
    newest: dict[str, FormVersion] = {}
    for row in rows:
        newest.setdefault(row.form_id, row)
    return list(newest.values())


def current_version(session: Session, form_id: str) -> FormVersion:
    row = _latest_version(session, form_id, include_retired=False)
    if row is None:
        raise NotFound(f"form {form_id!r} has no published version in use")
    return row


def get_version(session: Session, form_id: str, version: int) -> FormVersion:
    """Any published version, retired ones too: tablets may still hold submissions for them."""
    row = session.get(FormVersion, (form_id, version))
    if row is None:
        raise NotFound(f"form {form_id!r} has no version {version}")
    return row


def list_versions(session: Session, form_id: str) -> list[FormVersion]:
    if session.get(Form, form_id) is None:
        raise NotFound(f"no form {form_id!r}")
    return list(
        session.scalars(
            select(FormVersion).where(FormVersion.form_id == form_id).order_by(FormVersion.version)
        )
    )


def diff_versions(session: Session, form_id: str, old: int, new: int) -> FormDiff:
    before, after = get_version(session, form_id, old), get_version(session, form_id, new)
    return diff_definitions(load_definition(before.definition), load_definition(after.definition))


@dataclass(frozen=True)
class Acceptance:
    """Whether a submission against a form version is taken into the register, and if not why."""

    accepted: bool
    reason: str | None = None


_published: dict[str, FormDefinition] = {}


def published_definition(version: FormVersion) -> FormDefinition:
    """A published version's definition, loaded once per process: published versions never
    change, so caching them by content hash is always correct (and needs no invalidation)."""
    cached = _published.get(version.content_hash)
    if cached is None:
        cached = _published[version.content_hash] = load_definition(version.definition)
    return cached


def acceptance_of(version: FormVersion, *, now: datetime, grace: timedelta) -> Acceptance:
    """Submissions against a published version are accepted; against a retired one only until the
    grace period after retirement ends, then quarantined with the reason (never dropped)."""
    if version.retired_at is None or now <= version.retired_at + grace:
        return Acceptance(True)
    return Acceptance(
        False,
        (
            f"form {version.form_id} version {version.version} was retired on "
            f"{version.retired_at.date().isoformat()} and its {grace.days}-day grace period "
            "has ended"
        ),
    )


def _title(raw: dict[str, Any]) -> dict[str, Any]:
    title = raw.get("title")
    if isinstance(title, dict):
        return {
            k: v
            for k, v in title.items()
            if isinstance(k, str)
            and (k in {"zh", "en"} or re.fullmatch(LANGUAGE_TAG, k))
            and isinstance(v, str)
        }
    if isinstance(title, str):
        return {"zh": title, "en": title}
    return {}


# --- for the console: every form at a glance, and the draft editor's common edits ---------------


@dataclass(frozen=True)
class FormOverview:
    """A form with its published versions (oldest first) and whether it has a draft."""

    form: Form
    versions: list[FormVersion]

    @property
    def has_draft(self) -> bool:
        return self.form.draft is not None

    @property
    def status(self) -> str:
        """`draft` (never published), `published` (a version in use) or `retired`."""
        if not self.versions:
            return "draft"
        if any(v.retired_at is None for v in self.versions):
            return "published"
        return "retired"


def list_forms(session: Session) -> list[FormOverview]:
    """Every form, drafts and retired ones included, by form id, with its versions (two
    queries whatever the number of forms; the versions' definitions are not read)."""
    forms = session.scalars(select(Form).order_by(Form.form_id)).all()
    versions: dict[str, list[FormVersion]] = {}
    for row in session.scalars(
        select(FormVersion)
        .options(defer(FormVersion.definition))
        .order_by(FormVersion.form_id, FormVersion.version)
    ):
        versions.setdefault(row.form_id, []).append(row)
    return [FormOverview(form, versions.get(form.form_id, [])) for form in forms]


def get_form(session: Session, form_id: str) -> FormOverview:
    form = session.get(Form, form_id)
    if form is None:
        raise NotFound(f"no form {form_id!r}")
    return FormOverview(form, list_versions(session, form_id))


def diff_draft(session: Session, form_id: str) -> FormDiff | None:
    """What publishing the draft would change against the newest version; None when there is
    no version yet or the draft does not load (its problems say why)."""
    definition, _issues = definition_issues(get_draft(session, form_id))
    previous = _latest_version(session, form_id, include_retired=True)
    if definition is None or previous is None:
        return None
    return diff_definitions(load_definition(previous.definition), definition)


def _edited_draft(session: Session, form_id: str, path: str, edit: FieldEdit) -> dict[str, Any]:
    try:
        return apply_field_edit(get_draft(session, form_id), path, edit)
    except DraftEditError as exc:
        raise NotFound(str(exc)) from exc


def check_field_edit(session: Session, form_id: str, path: str, edit: FieldEdit) -> DraftReport:
    """The problems the draft would have with `edit` applied to its question `path`, without
    saving anything (the console's live check)."""
    return DraftReport(form_id, definition_issues(_edited_draft(session, form_id, path, edit))[1])


def edit_draft_field(
    session: Session, actor: Actor, form_id: str, path: str, edit: FieldEdit
) -> DraftReport:
    """Save the draft with `edit` applied to its question `path` (as `replace_draft`: saved even
    with problems, which are reported), audited with the question's path."""
    report = replace_draft(session, actor, form_id, _edited_draft(session, form_id, path, edit))
    audit.record(
        session,
        "form_draft_edited",
        user_id=actor.user_id,
        object_type="form",
        object_id=form_id,
        address=actor.address,
        details={"question": path, "problems": len(report.issues)},
    )
    return report
