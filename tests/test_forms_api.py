"""The forms API through the real app: roles, drafts, publishing numbered immutable versions,
ETag/304, retirement with a grace period, diffs, XLSForm import and the bundled forms."""

from __future__ import annotations

import copy
import io
from datetime import timedelta
from typing import Any

import pytest

from server.auth.actor import system_actor
from server.db import utcnow
from server.forms.library import install_bundled_forms
from server.forms.models import FormVersion
from server.forms.service import acceptance_of
from server.users.models import Role
from tests.conftest import COUNTY, VILLAGE_A1, bearer
from tests.forms.test_form_xlsform_import import (
    NOT_WORKBOOKS,
    member_repeat_form,
    unsupported_features_form,
    workbook_bytes,
)

# The minimal definition of the shared sync contract, verbatim.
CONTRACT_FORM: dict[str, Any] = {
    "form_id": "household_visit",
    "title": {"zh": "防返贫监测入户走访", "en": "Household monitoring visit"},
    "entities": [
        {"name": "hh", "type": "household", "id_field": "household_id", "create": True},
        {
            "name": "m",
            "type": "member",
            "repeat": "members",
            "id_field": "member_id",
            "parent": "hh",
            "create": True,
        },
    ],
    "fields": [
        {"name": "household_id", "type": "text", "required": True},
        {"name": "village_code", "type": "text", "bind": "hh.village_code"},
        {"name": "per_capita_income", "type": "decimal", "min": 0, "bind": "hh.per_capita_income"},
        {
            "name": "members",
            "type": "repeat",
            "fields": [
                {"name": "member_id", "type": "text", "required": True},
                {"name": "name", "type": "text", "required": True, "bind": "m.name"},
                {"name": "insured", "type": "boolean", "bind": "m.insured"},
            ],
        },
    ],
}


@pytest.fixture
def admin(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    return bearer(login("admin"))


@pytest.fixture
def collector(client, create_user_, login):
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return bearer(login("collector"))


def _publish(client, admin, definition=CONTRACT_FORM):
    created = client.post("/api/v1/forms", json=definition, headers=admin)
    assert created.status_code == 201, created.get_json()
    response = client.post(f"/api/v1/forms/{definition['form_id']}/publish", headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_contract_definition_is_accepted_as_is_and_publishes_as_version_1(client, admin):
    created = client.post("/api/v1/forms", json=CONTRACT_FORM, headers=admin)
    assert created.status_code == 201
    assert created.get_json() | {"issues": []} == {
        "form_id": "household_visit",
        "status": "draft",
        "valid": True,
        "issues": [],
    }
    published = client.post("/api/v1/forms/household_visit/publish", headers=admin).get_json()
    assert published["version"] == 1 and len(published["hash"]) == 64
    assert published["changes"] is None


def test_tablets_list_and_download_published_forms_with_etag_and_304(client, admin, collector):
    published = _publish(client, admin)
    listing = client.get("/api/v1/forms", headers=collector).get_json()["forms"]
    assert [(f["form_id"], f["version"], f["hash"]) for f in listing] == [
        ("household_visit", 1, published["hash"])
    ]
    assert listing[0]["title"]["zh"] == "防返贫监测入户走访" and listing[0]["published_at"]
    response = client.get("/api/v1/forms/household_visit", headers=collector)
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{published["hash"]}"'
    assert response.get_json()["version"] == 1
    assert response.get_json()["fields"][2]["bind"] == "hh.per_capita_income"
    cached = client.get(
        "/api/v1/forms/household_visit",
        headers={**collector, "If-None-Match": f'"{published["hash"]}"'},
    )
    assert cached.status_code == 304 and cached.data == b""
    stale = client.get(
        "/api/v1/forms/household_visit", headers={**collector, "If-None-Match": '"0000"'}
    )
    assert stale.status_code == 200


def test_only_admins_edit_publish_and_retire(client, admin, collector, create_user_, login):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    supervisor = bearer(login("supervisor"))
    for headers in (collector, supervisor):
        assert client.post("/api/v1/forms", json=CONTRACT_FORM, headers=headers).status_code == 403
    _publish(client, admin)
    for headers in (collector, supervisor):
        for path in ("publish", "retire"):
            response = client.post(f"/api/v1/forms/household_visit/{path}", headers=headers)
            assert response.status_code == 403
        assert client.get("/api/v1/forms/household_visit/draft", headers=headers).status_code == 403
    assert client.get("/api/v1/forms").status_code == 401


def test_editing_creates_a_new_version_and_never_changes_the_old_one(client, admin, collector):
    first = _publish(client, admin)
    v1 = client.get("/api/v1/forms/household_visit/versions/1", headers=collector).get_json()
    draft = copy.deepcopy(CONTRACT_FORM)
    draft["fields"].append({"name": "water_ok", "type": "boolean", "bind": "hh.water_ok"})
    draft["fields"][2]["min"] = 100
    assert (
        client.put("/api/v1/forms/household_visit/draft", json=draft, headers=admin).get_json()[
            "valid"
        ]
        is True
    )
    second = client.post("/api/v1/forms/household_visit/publish", headers=admin).get_json()
    assert second["version"] == 2 and second["hash"] != first["hash"]
    assert second["changes"]["added"] == ["water_ok"]
    assert [c["path"] for c in second["changes"]["changed"]] == ["per_capita_income"]
    assert client.get("/api/v1/forms/household_visit", headers=collector).get_json()["version"] == 2
    again = client.get("/api/v1/forms/household_visit/versions/1", headers=collector)
    assert again.get_json() == v1 and again.headers["ETag"] == f'"{first["hash"]}"'


def test_publishing_without_a_draft_or_without_a_change_is_409(client, admin):
    _publish(client, admin)
    response = client.post("/api/v1/forms/household_visit/publish", headers=admin)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "conflict"
    client.put("/api/v1/forms/household_visit/draft", json=CONTRACT_FORM, headers=admin)
    same = client.post("/api/v1/forms/household_visit/publish", headers=admin)
    assert same.status_code == 409 and same.get_json()["error"]["details"]["version"] == 1


def test_a_draft_with_problems_is_saved_reported_and_cannot_be_published(client, admin):
    broken = copy.deepcopy(CONTRACT_FORM)
    broken["fields"][1]["bind"] = "hh.no_such_field"
    broken["fields"].append({"name": "status", "type": "text", "bind": "hh.monitoring_status"})
    created = client.post("/api/v1/forms", json=broken, headers=admin)
    assert created.status_code == 201 and created.get_json()["valid"] is False
    codes = {issue["code"] for issue in created.get_json()["issues"]}
    assert {"unknown_register_field", "field_read_only"} <= codes
    assert client.get("/api/v1/forms/household_visit/draft", headers=admin).get_json() == broken
    validated = client.post("/api/v1/forms/household_visit/draft/validate", headers=admin)
    assert validated.get_json()["issues"] == created.get_json()["issues"]
    refused = client.post("/api/v1/forms/household_visit/publish", headers=admin)
    assert refused.status_code == 422
    assert {e["code"] for e in refused.get_json()["error"]["details"]["errors"]} == codes
    assert (
        client.get("/api/v1/forms/household_visit/versions", headers=admin).get_json()["versions"]
        == []
    )


@pytest.mark.parametrize(
    "body,path", [({"form_id": "Bad Id!"}, "form_id"), ({"title": "x"}, "form_id")]
)
def test_a_form_without_a_valid_id_is_422(client, admin, body, path):
    response = client.post("/api/v1/forms", json=body, headers=admin)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["errors"][0]["path"] == path


def test_creating_an_existing_form_is_409_and_a_mismatched_draft_id_is_422(client, admin):
    _publish(client, admin)
    assert client.post("/api/v1/forms", json=CONTRACT_FORM, headers=admin).status_code == 409
    other = {**CONTRACT_FORM, "form_id": "another_form"}
    response = client.put("/api/v1/forms/household_visit/draft", json=other, headers=admin)
    assert response.status_code == 422
    assert (
        client.put(
            "/api/v1/forms/no_such_form/draft",
            json={**CONTRACT_FORM, "form_id": "no_such_form"},
            headers=admin,
        ).status_code
        == 404
    )


def test_retiring_hides_a_form_from_tablets_but_keeps_every_version(client, admin, collector):
    _publish(client, admin)
    response = client.post("/api/v1/forms/household_visit/retire", headers=admin)
    assert response.status_code == 200 and response.get_json()["retired_versions"] == [1]
    assert client.get("/api/v1/forms", headers=collector).get_json()["forms"] == []
    assert client.get("/api/v1/forms/household_visit", headers=collector).status_code == 404
    assert (
        client.get("/api/v1/forms/household_visit/versions/1", headers=collector).status_code == 200
    )
    assert client.post("/api/v1/forms/household_visit/retire", headers=admin).status_code == 409
    # Publishing again brings the form back as version 2.
    client.put("/api/v1/forms/household_visit/draft", json=CONTRACT_FORM, headers=admin)
    assert (
        client.post("/api/v1/forms/household_visit/publish", headers=admin).get_json()["version"]
        == 2
    )
    assert [
        f["version"] for f in client.get("/api/v1/forms", headers=collector).get_json()["forms"]
    ] == [2]


def test_retiring_one_version_keeps_the_newer_one_in_use(client, admin, collector):
    _publish(client, admin)
    draft = copy.deepcopy(CONTRACT_FORM)
    draft["fields"].append({"name": "note", "type": "text"})
    client.put("/api/v1/forms/household_visit/draft", json=draft, headers=admin)
    client.post("/api/v1/forms/household_visit/publish", headers=admin)
    response = client.post(
        "/api/v1/forms/household_visit/retire", json={"version": 1}, headers=admin
    )
    assert response.get_json()["retired_versions"] == [1]
    versions = client.get("/api/v1/forms/household_visit/versions", headers=admin).get_json()
    assert [(v["version"], v["retired_at"] is not None) for v in versions["versions"]] == [
        (1, True),
        (2, False),
    ]
    bad = client.post(
        "/api/v1/forms/household_visit/retire", json={"version": "one"}, headers=admin
    )
    assert bad.status_code == 422


def test_retired_version_is_accepted_during_the_grace_period_then_quarantined():
    retired_at = utcnow() - timedelta(days=10)
    row = FormVersion(
        form_id="household_visit", version=3, definition={}, content_hash="x", retired_at=retired_at
    )
    assert acceptance_of(row, now=utcnow(), grace=timedelta(days=30)).accepted
    late = acceptance_of(row, now=utcnow(), grace=timedelta(days=7))
    assert not late.accepted and "version 3" in (late.reason or "")
    assert "7-day grace" in (late.reason or "")
    live = FormVersion(form_id="household_visit", version=4, definition={}, content_hash="y")
    assert acceptance_of(live, now=utcnow(), grace=timedelta(0)).accepted


def test_diff_between_versions(client, admin):
    _publish(client, admin)
    draft = copy.deepcopy(CONTRACT_FORM)
    del draft["fields"][1]
    client.put("/api/v1/forms/household_visit/draft", json=draft, headers=admin)
    client.post("/api/v1/forms/household_visit/publish", headers=admin)
    body = client.get("/api/v1/forms/household_visit/diff?from=1&to=2", headers=admin).get_json()
    assert body["changes"]["removed"] == ["village_code"] and body["changes"]["added"] == []
    assert client.get("/api/v1/forms/household_visit/diff?from=1", headers=admin).status_code == 422
    assert (
        client.get("/api/v1/forms/household_visit/diff?from=1&to=9", headers=admin).status_code
        == 404
    )


_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)


def _upload(client, admin, content: bytes, name="form.xlsx"):
    return client.post(
        "/api/v1/forms/import/xlsform",
        headers=admin,
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_xlsform_upload_becomes_a_draft(client, admin):
    response = _upload(client, admin, member_repeat_form())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "draft" and body["valid"] is True
    draft = client.get(f"/api/v1/forms/{body['form_id']}/draft", headers=admin).get_json()
    assert any(field["type"] == "repeat" for field in draft["fields"])
    publish = client.post(f"/api/v1/forms/{body['form_id']}/publish", headers=admin)
    assert publish.status_code == 200
    # Uploading the workbook again updates the draft of the same form.
    assert _upload(client, admin, member_repeat_form()).status_code == 200


def test_xlsform_with_dropped_features_is_a_draft_with_located_warnings(client, admin):
    response = _upload(client, admin, unsupported_features_form())
    assert response.status_code == 201, response.get_json()
    warnings = response.get_json()["warnings"]
    assert warnings and all(
        {"sheet", "row", "column", "message", "path", "code"} <= set(w) for w in warnings
    )
    # the `start` metadata question is dropped (the audio question before it is now imported)
    start = next(w for w in warnings if w["row"] == 10 and w["column"] == "type")
    assert (start["path"], start["code"]) == ("survey!A10", "xlsform_ignored")
    assert not [w for w in warnings if w["row"] == 8 and w["column"] == "type"]


def test_an_encrypted_xlsform_is_422_at_its_settings_cell(client, admin):
    content = workbook_bytes(
        {
            "survey": [["type", "name", "label"], ["text", "a", "A"]],
            "settings": [["form_id", "public_key"], ["secret", "MIIBIjANBgkq"]],
        }
    )
    response = _upload(client, admin, content)
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    (error,) = [e for e in errors if e["code"] == "xlsform_unsupported"]
    assert error["path"] == "settings!B2"
    assert "encrypted" in error["message"]


def test_an_xlsform_without_form_id_takes_the_file_name_and_its_choices_file(client, admin):
    content = workbook_bytes(
        {
            "survey": [
                ["type", "name", "label"],
                ["select_one_from_file villages.csv", "village", "Village"],
            ]
        }
    )
    response = client.post(
        "/api/v1/forms/import/xlsform",
        headers=admin,
        data={
            "file": (io.BytesIO(content), "Village Check.xlsx"),
            "choices_file": [(io.BytesIO(b"name,label\nv1,Upper\nv2,Lower\n"), "villages.csv")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["form_id"] == "village_check"
    draft = client.get("/api/v1/forms/village_check/draft", headers=admin).get_json()
    assert [c["code"] for c in draft["choice_lists"]["villages"]] == ["v1", "v2"]


def test_submissions_to_an_imported_form_are_checked_through_push(rt, client, admin, create_user_):
    from tests.forms.test_form_xlsform_constructs import or_other_form
    from tests.sync.helpers import Tablet, load_register

    assert _upload(client, admin, or_other_form()).status_code == 201
    assert client.post("/api/v1/forms/fuel_use/publish", headers=admin).status_code == 200
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    tablet = Tablet.login(client, "collector")

    right = tablet.submission({"fuel": "other", "fuel_other": "dung"}, form_id="fuel_use")
    wrong = tablet.submission({"fuel": "coal"}, form_id="fuel_use")
    response = tablet.push([right, wrong])

    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert [(e["path"], e["code"]) for e in results[1]["errors"]] == [
        ("data.fuel", "invalid_choice")
    ]


def test_xlsform_upload_must_be_multipart_with_a_file_and_a_workbook(client, admin):
    assert client.post("/api/v1/forms/import/xlsform", json={}, headers=admin).status_code == 415
    missing = client.post(
        "/api/v1/forms/import/xlsform", headers=admin, data={}, content_type="multipart/form-data"
    )
    assert missing.status_code == 400
    garbage = _upload(client, admin, b"this is not a workbook")
    assert garbage.status_code == 415


@pytest.mark.parametrize(
    "name,content,received",
    [
        ("households.csv", "type,name,label\ntext,hh,户\n".encode(), "CSV text"),
        ("form.xlsx", b"", "an empty file"),
        ("notes.txt", b"survey sheet below", "text"),
        ("form.zip", NOT_WORKBOOKS["zip"][0], "a ZIP archive that is not an Excel workbook"),
        (
            "locked.xlsx",
            _OLE2 + "EncryptionInfo".encode("utf-16-le") + bytes(64),
            "a password-protected (encrypted) workbook",
        ),
    ],
    ids=["csv", "empty", "text", "zip", "encrypted"],
)
def test_an_upload_that_is_not_an_xlsx_workbook_is_415_naming_what_it_is_and_what_is_expected(
    client, admin, name, content, received
):
    response = _upload(client, admin, content, name=name)
    assert response.status_code == 415
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["message"].startswith(f"{name!r} is {received}")
    assert ".xlsx" in error["message"] and "survey sheet" not in error["message"]
    assert error["details"]["filename"] == name
    assert error["details"]["received"].startswith(received)
    assert error["details"]["expected"] == "an XLSForm saved as an Excel workbook (.xlsx or .xls)"
    assert client.get("/api/v1/forms", headers=admin).get_json()["forms"] == []


def test_bundled_forms_install_publish_and_reinstall_changes_nothing(rt, client, collector):
    with rt.db.unit_of_work() as session:
        first = install_bundled_forms(session, system_actor())
    assert [(i.form_id, i.version, i.is_new_version) for i in first] == [
        ("household_register", 1, True),
        ("household_visit", 1, True),
        ("monitoring_application", 1, True),
    ]
    with rt.db.unit_of_work() as session:
        again = install_bundled_forms(session, system_actor())
    assert all(not i.is_new_version and i.version == 1 for i in again)
    listed = client.get("/api/v1/forms", headers=collector).get_json()["forms"]
    assert {f["form_id"] for f in listed} == {
        "household_register",
        "household_visit",
        "monitoring_application",
    }
