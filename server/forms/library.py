"""Installing the forms fieldsync ships (`forms/library/`): each is created or updated and
published, unless the published version already has the same content. Idempotent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from forms.bundled import BUNDLED_FORM_IDS, load_bundled_form
from forms.definition_schema import load_definition
from forms.diff import diff_definitions
from server.auth.actor import Actor
from server.forms import service
from server.forms.models import Form


@dataclass(frozen=True)
class Installed:
    form_id: str
    version: int
    is_new_version: bool


def install_bundled_forms(
    session: Session, actor: Actor, form_ids: tuple[str, ...] = BUNDLED_FORM_IDS
) -> list[Installed]:
    results = []
    for form_id in form_ids:
        definition = load_bundled_form(form_id)
        raw = definition.to_dict()
        form = session.get(Form, form_id)
        if form is None:
            service.create_form(session, actor, raw)
        else:
            current = form.latest_version and service.get_version(
                session, form_id, form.latest_version
            )
            if (
                current
                and current.retired_at is None
                and diff_definitions(load_definition(current.definition), definition).is_empty
            ):
                results.append(Installed(form_id, current.version, False))
                continue
            service.replace_draft(session, actor, form_id, raw)
        published = service.publish(session, actor, form_id)
        results.append(Installed(form_id, published.version, True))
    return results
