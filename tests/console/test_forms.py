"""The forms pages: list, XLSForm upload with located problems, versions and their diff, the
draft editor and its live check, publishing and retiring after a confirmation, XLSForm
downloads; administrators only."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from forms.draft_edit import FieldEdit, apply_field_edit
from server.audit.models import AuditEntry
from server.forms import service
from server.users.models import Role
from tests.console.conftest import csrf_of, text_of
from tests.forms.test_form_xlsform_import import LABELS, workbook_bytes


def water_form(extra: list | None = None, form_id: str = "water_check") -> bytes:
    """A small valid XLSForm (a select from a shared list, a relevance), plus `extra` as row 5."""
    survey: list[list[object]] = [
        ["type", "name", *LABELS, "required", "relevant"],
        ["text", "household_id", "农户编号", "Household id", "yes", None],
        ["select_one yesno", "has_water", "饮水安全", "Safe water", "yes", None],
        ["integer", "size", "家庭人口", "Household size", "no", "${has_water} = 'yes'"],
    ]
    if extra is not None:
        survey.append(extra)
    return workbook_bytes(
        {
            "survey": survey,
            "choices": [
                ["list_name", "name", *LABELS],
                ["yesno", "yes", "是", "Yes"],
                ["yesno", "no", "否", "No"],
            ],
            "settings": [["form_id", "form_title"], [form_id, "饮水核查"]],
        }
    )


@pytest.fixture
def admin(console, create_user_):
    create_user_("formadmin", Role.ADMIN)
    return console("formadmin")


def upload(browser, content: bytes, name: str = "water_check.xlsx"):
    return browser.post(
        "/forms/import",
        {"file": (io.BytesIO(content), name)},
        form_page="/forms",
        content_type="multipart/form-data",
    )


def draft_of(rt, form_id: str = "water_check") -> dict:
    with rt.db.unit_of_work(write=False) as session:
        return service.get_draft(session, form_id)


def test_an_uploaded_xlsform_becomes_a_draft_listed_with_its_status(admin, rt):
    assert "water_check" not in text_of(admin.page("/forms"))
    response = upload(admin, water_form())
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/forms/water_check/draft")
    draft_page = text_of(admin.page("/forms/water_check/draft"))
    assert "饮水安全" in draft_page and "has_water" in draft_page and "没有问题" in draft_page
    listing = text_of(admin.page("/forms"))
    assert "water_check" in listing and "饮水核查" in listing and "尚未发布" in listing
    assert draft_of(rt)["fields"][1]["name"] == "has_water"


def test_an_xlsform_with_an_error_shows_the_located_problem_and_creates_nothing(admin, rt):
    response = upload(admin, water_form(["integr", "people", "人数", "People", "no", None]))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    rows = [text_of(row) for row in html.split("<tr")[1:] if "integr" in row]
    assert rows, text_of(html)[:500]
    # sheet, row, column (cell), the cell's value and the message, in one row of the table
    assert "survey 5 type (A5) integr" in rows[0] and "unknown question type" in rows[0]
    with rt.db.unit_of_work(write=False) as session:
        assert service.list_forms(session) == []


def test_an_xlsform_with_dropped_parts_lists_them_with_their_cells(admin, rt):
    bad_required = ["integer", "people", "人数", "People", "maybe", None]
    response = upload(admin, water_form(bad_required))
    assert response.status_code == 201
    page = text_of(response.get_data(as_text=True))
    assert "survey 5 required (E5) maybe" in page
    assert "people" in [f["name"] for f in draft_of(rt)["fields"]]


def test_an_upload_that_is_not_a_workbook_says_what_it_is(admin):
    response = upload(admin, b"type,name\ntext,a\n", name="form.csv")
    assert response.status_code == 415
    assert "CSV" in text_of(response.get_data(as_text=True))
    response = admin.post("/forms/import", {}, form_page="/forms")
    assert response.status_code == 422


def test_only_administrators_open_the_forms_pages(console, create_user_, admin, regions):
    upload(admin, water_form())
    create_user_("sup", Role.SUPERVISOR, [regions[2]])
    supervisor = console("sup")
    for path in ("/forms", "/forms/water_check", "/forms/water_check/draft"):
        assert supervisor.get(path).status_code == 403
    refused = supervisor.post("/forms/water_check/publish", {}, form_page="/")
    assert refused.status_code == 403
    assert 'href="/forms"' not in supervisor.page("/")
    assert console().get("/forms").status_code == 302  # to the login page


def test_editing_a_question_saves_labels_required_relevance_and_choices(admin, rt):
    upload(admin, water_form())
    path = "/forms/water_check/draft/questions/has_water"
    page = admin.page(path)
    assert 'value="饮水安全"' in page and "yesno" in page
    data = {
        "label_zh": "饮用水安全",
        "label_en": "Drinking water safe",
        "required": "",
        "relevant": "${household_id} != ''",
        "choice_count": "4",
        "choice-0-original": "yes",
        "choice-0-code": "safe",
        "choice-0-zh": "安全",
        "choice-0-en": "Safe",
        "choice-1-original": "no",
        "choice-1-code": "no",
        "choice-1-zh": "否",
        "choice-1-en": "No",
        "choice-1-remove": "1",
        "choice-2-original": "",
        "choice-2-code": "unsafe",
        "choice-2-zh": "不安全",
        "choice-2-en": "Unsafe",
        "choice-3-original": "",
        "choice-3-code": "",
        "choice-3-zh": "",
        "choice-3-en": "",
    }
    response = admin.post(path, data, form_page=path)
    assert response.status_code == 302
    draft = draft_of(rt)
    question = draft["fields"][1]
    assert question["label"] == {"zh": "饮用水安全", "en": "Drinking water safe"}
    assert "required" not in question
    assert question["relevant"] == "${household_id} != ''"
    assert [(c["code"], c["label"]["zh"]) for c in draft["choice_lists"]["yesno"]] == [
        ("safe", "安全"),
        ("unsafe", "不安全"),
    ]
    assert "已保存" in text_of(admin.page(path))
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "form_draft_edited")
        ).one()
        assert (entry.object_id, entry.details["question"]) == ("water_check", "has_water")


def test_the_live_check_reports_problems_without_saving(admin, rt):
    upload(admin, water_form())
    path = "/forms/water_check/draft/questions/size"
    page = admin.page(path)
    body = {
        "label_zh": "家庭人口",
        "label_en": "Household size",
        "relevant": "${nowhere} = 'yes'",
    }
    refused = admin.client.post(path + "/check", data=body)
    assert refused.status_code == 403  # no CSRF token
    response = admin.client.post(
        path + "/check", data=body, headers={"X-CSRF-Token": csrf_of(page)}
    )
    assert response.status_code == 200
    result = response.get_json()
    assert result["valid"] is False
    assert any("nowhere" in p["message"] for p in result["problems"])
    assert draft_of(rt)["fields"][2]["relevant"] == "${has_water} = 'yes'"
    body["relevant"] = ""
    fine = admin.client.post(path + "/check", data=body, headers={"X-CSRF-Token": csrf_of(page)})
    assert fine.get_json() == {"valid": True, "problems": []}


def test_bad_editor_input_is_refused_and_changes_nothing(admin, rt):
    upload(admin, water_form())
    path = "/forms/water_check/draft/questions/size"
    before = draft_of(rt)
    response = admin.post(path, {"label_zh": "x" * 3000, "label_en": "y"}, form_page=path)
    assert response.status_code == 422
    assert draft_of(rt) == before
    missing = admin.post(
        "/forms/water_check/draft/questions/nothing", {"label_zh": "a"}, form_page=path
    )
    assert missing.status_code == 404
    assert admin.get("/forms/Bad-Id").status_code == 404
    assert admin.get("/forms/nosuchform").status_code == 404


def test_publish_and_retire_go_through_a_confirmation(admin, rt):
    upload(admin, water_form())
    confirm = admin.page("/forms/water_check/publish")
    assert "确认发布" in text_of(confirm)
    with rt.db.unit_of_work(write=False) as session:
        assert service.list_versions(session, "water_check") == []
    response = admin.post("/forms/water_check/publish", {}, form_page="/forms/water_check/publish")
    assert response.status_code == 302
    with rt.db.unit_of_work(write=False) as session:
        assert [v.version for v in service.list_versions(session, "water_check")] == [1]
    detail = text_of(admin.page("/forms/water_check"))
    assert "v1" in detail and "已发布" in detail
    # publishing again without a draft: the confirmation page says there is none (409)
    assert admin.get("/forms/water_check/publish").status_code == 409

    assert "确认停用" in text_of(admin.page("/forms/water_check/retire"))
    retired = admin.post("/forms/water_check/retire", {}, form_page="/forms/water_check/retire")
    assert retired.status_code == 302
    with rt.db.unit_of_work(write=False) as session:
        assert service.get_version(session, "water_check", 1).retired_at is not None
    again = admin.post("/forms/water_check/retire", {}, form_page="/forms/water_check/retire")
    assert again.status_code == 409


def test_a_draft_with_problems_cannot_be_published(admin, rt):
    upload(admin, water_form())
    with rt.db.unit_of_work() as session:
        raw = service.get_draft(session, "water_check")
        broken = apply_field_edit(
            raw, "size", FieldEdit("家庭人口", "Household size", relevant="${nowhere} > 1")
        )
        service.replace_draft(session, _admin_actor(rt), "water_check", broken)
    page = text_of(admin.page("/forms/water_check/publish"))
    assert "nowhere" in page and "修改草稿" in page
    response = admin.post("/forms/water_check/publish", {}, form_page="/forms/water_check/draft")
    assert response.status_code == 422
    with rt.db.unit_of_work(write=False) as session:
        assert service.list_versions(session, "water_check") == []


def _admin_actor(rt):
    from server.auth.actor import system_actor

    return system_actor("test")


def test_versions_show_their_questions_their_diff_and_download_as_xlsform(admin, rt):
    upload(admin, water_form())
    admin.post("/forms/water_check/publish", {}, form_page="/forms/water_check/publish")
    upload(admin, water_form(["text", "note_text", "备注", "Remarks", "no", None]))
    admin.post("/forms/water_check/publish", {}, form_page="/forms/water_check/publish")

    version_page = admin.page("/forms/water_check/versions/2")
    assert 'href="/forms/water_check?from=1&amp;to=2"' in version_page
    version = text_of(version_page)
    assert "note_text" in version and "备注" in version and "yes 是" in version
    assert "note_text" not in text_of(admin.page("/forms/water_check/versions/1"))
    diff = text_of(admin.page("/forms/water_check?from=1&to=2"))
    assert "新增 note_text" in diff
    assert admin.get("/forms/water_check?from=1&to=9").status_code == 422
    assert admin.get("/forms/water_check/versions/3").status_code == 404

    download = admin.get("/forms/water_check/versions/2/xlsform")
    assert download.status_code == 200
    assert "water_check-v2.xlsx" in download.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(download.data))
    names = [row[1] for row in book["survey"].iter_rows(values_only=True)]
    assert "note_text" in names


def test_the_forms_pages_in_english(console, create_user_):
    create_user_("formadmin_en", Role.ADMIN)
    admin = console("formadmin_en", lang="en")
    upload(admin, water_form())
    listing = text_of(admin.page("/forms"))
    assert "Upload an XLSForm" in listing and "Not yet published" in listing
    editor = text_of(admin.page("/forms/water_check/draft/questions/has_water"))
    assert "Label (English)" in editor and "Shared list yesno" in editor


def test_the_draft_downloads_as_xlsform_and_pages_keep_to_the_content_policy(admin):
    upload(admin, water_form())
    download = admin.get("/forms/water_check/draft/xlsform")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == "attachment; filename=water_check-draft.xlsx"
    names = [
        row[1]
        for row in load_workbook(io.BytesIO(download.data))["survey"].iter_rows(values_only=True)
    ]
    assert "has_water" in names
    editor = admin.page("/forms/water_check/draft/questions/has_water")
    assert '<script src="/console/static/forms.js" defer></script>' in editor
    script = admin.get("/console/static/forms.js")
    assert script.status_code == 200 and b"X-CSRF-Token" in script.get_data()
    script.close()
    for path in ("/forms", "/forms/water_check", "/forms/water_check/draft", "/exports"):
        html = admin.page(path)
        assert "style=" not in html
        assert all(' src="' in tag for tag in re.findall(r"<script[^>]*>", html)), path
