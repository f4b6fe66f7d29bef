"""XLSForm download through the real app: a published version or the draft as a workbook that
imports back unchanged; the admin's Excel round trip (download, edit a label, upload as the next
version); roles and 404s in the JSON error shape; the `forms export-xlsform` command."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from openpyxl import load_workbook

from forms.bundled import load_bundled_form
from forms.definition_schema import load_definition
from forms.xlsform import import_xlsform
from forms.xlsform_writer import XLSX_MEDIA_TYPE
from server.auth.actor import system_actor
from server.forms.library import install_bundled_forms
from server.users.models import Role
from tests.conftest import COUNTY, VILLAGE_A1, bearer

VISIT = "/api/v1/forms/household_visit"


@pytest.fixture
def admin(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    return bearer(login("admin"))


@pytest.fixture
def supervisor(client, create_user_, login):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    return bearer(login("supervisor"))


@pytest.fixture
def collector(client, create_user_, login):
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return bearer(login("collector"))


@pytest.fixture
def bundled(rt):
    with rt.db.unit_of_work() as session:
        install_bundled_forms(session, system_actor())


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_a_published_version_downloads_as_a_workbook_that_imports_back_identical(
    client, admin, bundled
):
    response = client.get(f"{VISIT}/versions/1/xlsform", headers=admin)
    assert response.status_code == 200
    assert response.mimetype == XLSX_MEDIA_TYPE
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=household_visit-v1.xlsx"
    )
    published = client.get(f"{VISIT}/versions/1", headers=admin).get_json()
    result = import_xlsform(response.data)
    assert result.definition is not None, [i.to_dict() for i in result.issues]
    back = load_definition(result.definition)
    assert back.to_dict() == load_definition(published).to_dict()
    assert back.version == 1


def test_supervisors_may_download_versions_but_not_drafts_and_collectors_neither(
    client, admin, supervisor, collector, bundled
):
    assert client.get(f"{VISIT}/versions/1/xlsform", headers=supervisor).status_code == 200
    _error(client.get(f"{VISIT}/versions/1/xlsform", headers=collector), 403, "forbidden")
    _error(client.get(f"{VISIT}/draft/xlsform", headers=supervisor), 403, "forbidden")
    _error(client.get(f"{VISIT}/versions/1/xlsform"), 401, "unauthorized")
    _error(client.get(f"{VISIT}/draft/xlsform"), 401, "unauthorized")


def test_missing_forms_versions_and_drafts_are_404_in_the_json_error_shape(client, admin, bundled):
    _error(client.get(f"{VISIT}/versions/2/xlsform", headers=admin), 404, "not_found")
    _error(client.get(f"{VISIT}/versions/2147483648/xlsform", headers=admin), 404, "not_found")
    _error(client.get("/api/v1/forms/nosuch/versions/1/xlsform", headers=admin), 404, "not_found")
    _error(
        client.get("/api/v1/forms/No%00Such/versions/1/xlsform", headers=admin), 404, "not_found"
    )
    _error(client.get("/api/v1/forms/nosuch/draft/xlsform", headers=admin), 404, "not_found")
    _error(client.get(f"{VISIT}/versions/0/xlsform", headers=admin), 404, "not_found")


def test_the_draft_downloads_as_a_workbook_and_a_broken_draft_is_422(client, admin):
    draft = load_bundled_form("household_register").to_dict()
    draft["form_id"] = "register_copy"
    assert client.post("/api/v1/forms", json=draft, headers=admin).status_code == 201
    response = client.get("/api/v1/forms/register_copy/draft/xlsform", headers=admin)
    assert response.status_code == 200 and response.mimetype == XLSX_MEDIA_TYPE
    assert "filename=register_copy-draft.xlsx" in response.headers["Content-Disposition"]
    result = import_xlsform(response.data)
    assert result.definition is not None
    assert load_definition(result.definition).to_dict() == load_definition(draft).to_dict()

    broken = copy.deepcopy(draft)
    broken["fields"][0]["type"] = "no_such_type"
    assert (
        client.put("/api/v1/forms/register_copy/draft", json=broken, headers=admin).status_code
        == 200
    )
    error = _error(
        client.get("/api/v1/forms/register_copy/draft/xlsform", headers=admin),
        422,
        "validation_error",
    )
    assert any(e["path"].startswith("fields[0]") for e in error["details"]["errors"])


def _relabel(workbook: bytes, name: str, column: str, text: str) -> bytes:
    book = load_workbook(io.BytesIO(workbook))
    survey = book["survey"]
    header = [cell.value for cell in survey[1]]
    for row in survey.iter_rows(min_row=2):
        if row[header.index("name")].value == name:
            row[header.index(column)].value = text
            break
    else:
        raise AssertionError(f"no row {name}")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_admin_edits_the_household_visit_in_excel_and_publishes_it_as_the_next_version(
    client, admin, bundled
):
    downloaded = client.get(f"{VISIT}/versions/1/xlsform", headers=admin)
    edited = _relabel(downloaded.data, "visitor_name", "label::English (en)", "Visiting cadre")
    upload = client.post(
        "/api/v1/forms/import/xlsform",
        headers=admin,
        data={"file": (io.BytesIO(edited), "household_visit-v1.xlsx")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200, upload.get_json()
    assert not [w for w in upload.get_json()["warnings"] if w["blocking"]]
    published = client.post(f"{VISIT}/publish", headers=admin)
    assert published.status_code == 200, published.get_json()
    assert published.get_json()["version"] == 2

    v1 = client.get(f"{VISIT}/versions/1", headers=admin).get_json()
    v2 = client.get(f"{VISIT}/versions/2", headers=admin).get_json()
    expected = copy.deepcopy(v1)
    expected["version"] = 2
    visitor = next(f for f in expected["fields"] if f["name"] == "visitor_name")
    assert visitor["label"]["en"] == "Visitor"
    visitor["label"]["en"] = "Visiting cadre"
    assert v2 == expected
    changes = client.get(f"{VISIT}/diff?from=1&to=2", headers=admin).get_json()["changes"]
    assert changes == {
        "added": [],
        "removed": [],
        "form": [],
        "changed": [{"path": "visitor_name", "aspects": ["label"]}],
    }


def test_the_cli_writes_the_current_version_a_given_one_or_the_draft(cli, rt, tmp_path, bundled):
    target = tmp_path / "visit.xlsx"
    result = cli("forms", "export-xlsform", "household_visit", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "household_visit-v1" in result.output
    imported = import_xlsform(target.read_bytes())
    assert imported.definition is not None
    expected = {**load_bundled_form("household_visit").to_dict(), "version": 1}
    assert load_definition(imported.definition).to_dict() == expected

    again = cli("forms", "export-xlsform", "household_visit", "--version", "1", "-o", str(target))
    assert again.exit_code == 0, again.output

    missing = cli("forms", "export-xlsform", "household_visit", "--version", "5", "-o", str(target))
    assert missing.exit_code == 1 and "no version 5" in missing.output
    no_draft = cli("forms", "export-xlsform", "household_visit", "--draft", "-o", str(target))
    assert no_draft.exit_code == 1 and "draft" in no_draft.output
    odd = cli("forms", "export-xlsform", "No-Such", "-o", str(tmp_path / "x.xlsx"))
    assert odd.exit_code == 1 and not (tmp_path / "x.xlsx").exists()
