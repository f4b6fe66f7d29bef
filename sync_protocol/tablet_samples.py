"""Sample answers for the tablet simulator: the bundled samples pointed at this tablet's own
households, village and placeholder attachments, so `fill --sample` makes a submission the server
can accept. Rewrites ids, the village and attachment references only."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from forms.bundled import load_sample_answers
from forms.definition_schema import load_definition
from sync_protocol.client import TabletClient
from sync_protocol.client_errors import ClientError, UnknownForm


def sample_answers(
    client: TabletClient,
    form_id: str,
    *,
    household_id: str | None = None,
    village_code: str | None = None,
) -> dict[str, Any]:
    """The bundled sample answers of `form_id`, retargeted to this tablet.

    - An entity the form creates gets a fresh id (each fill makes a new household or member);
      one it only updates takes `household_id` (default: the first household on the tablet) for
      the household, and for members the ids of
      that household's members in the local register (extra sample rows are dropped; with no
      member known locally the sample's rows stay, for the server to judge).
    - `village_code`, if the answers have one, becomes `village_code` (default: the user's first
      village-level region).
    - Attachment references are replaced by small placeholder files added to the tablet.

    Raises `UnknownForm` if the form is not cached, `ClientError` if it ships no sample.
    """
    cached = client.replica.current_form(form_id)
    if cached is None:
        raise UnknownForm(form_id)
    try:
        data = copy.deepcopy(load_sample_answers(form_id))
    except KeyError as error:
        raise ClientError(f"no sample answers ship for form {form_id!r}") from error
    definition = load_definition(cached.definition)
    updates_only = any(e.type == "household" and not e.create for e in definition.entities)
    if household_id is None and updates_only:
        # A visit form cannot create a household: visit one this tablet has.
        households = sorted(h.id for h in client.entities("household") if not h.deleted)
        household_id = households[0] if households else None
    members = _member_ids(client, household_id) if household_id else []
    for entity in definition.entities:
        if entity.repeat is None:
            if entity.type == "household" and household_id is not None:
                data[entity.id_field] = household_id.lower()
            elif entity.create:
                data[entity.id_field] = str(uuid.uuid4())
            continue
        rows = data.get(entity.repeat)
        if not isinstance(rows, list):
            continue
        if entity.create:
            for row in rows:
                row[entity.id_field] = str(uuid.uuid4())
        elif members:
            rows[:] = rows[: len(members)]
            for row, member_id in zip(rows, members, strict=False):
                row[entity.id_field] = member_id
    village = village_code or _default_village(client)
    if village is not None and "village_code" in data:
        data["village_code"] = village
    result = _with_placeholder_attachments(client, data)
    assert isinstance(result, dict)
    return result


def _member_ids(client: TabletClient, household_id: str) -> list[str]:
    return [
        member.id
        for member in client.entities("member")
        if str(member.fields.get("household_id", "")).lower() == household_id.lower()
        and not member.deleted
    ]


def _default_village(client: TabletClient) -> str | None:
    for code in client.status()["regions"]:
        if isinstance(code, str) and len(code) == 12 and not code.endswith("000"):
            return code
    return None


def _with_placeholder_attachments(client: TabletClient, value: Any) -> Any:
    if isinstance(value, list):
        return [_with_placeholder_attachments(client, item) for item in value]
    if not isinstance(value, dict):
        return value
    if "attachment" in value:
        filename = str(value.get("filename") or "sample.bin")
        return client.add_attachment(
            f"fieldsync sample attachment {filename}".encode(),
            filename=filename,
            content_type=str(value.get("content_type") or "application/octet-stream"),
        )
    return {key: _with_placeholder_attachments(client, item) for key, item in value.items()}
