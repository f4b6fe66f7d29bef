"""The quarantine page: submissions a push refused, with their errors and what was sent (masked),
dismissed with a reason (audited, the submission itself unchanged), scope, roles, bad input."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.households.models import Household
from server.submissions.models import Submission, SubmissionStatus
from server.submissions.payload import sent_payload
from server.users.models import Role
from tests.conftest import TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, bearer
from tests.console.conftest import text_of
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register, visit


@pytest.fixture
def rejected(client, rt, create_user_):
    """Two submissions a collector of village A1 pushed that the server refused: one of a form
    version that does not exist, one with an answer of the wrong type."""
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    tablet = Tablet.login(client, "collector")
    unknown = tablet.submission(visit(), version=99)
    wrong = tablet.submission(visit(helper_observations="户主电话13812345678，白天不在家"))
    wrong["data"]["annual_income"] = "lots"
    results = tablet.push([unknown, wrong]).get_json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    return {"unknown": unknown["instance_id"], "wrong": wrong["instance_id"]}


def _dismissals(rt) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "dismiss_submission")
            )
            or 0
        )


def test_rejected_submissions_are_shown_with_their_errors_masked(rejected, console):
    html = console("sup_a").page("/quarantine")
    text = text_of(html)
    assert rejected["unknown"] in text and rejected["wrong"] in text
    assert "unknown_form_version" in text and "collector" in text
    assert "13812345678" not in html  # what was sent is masked


def test_dismissing_with_a_reason_takes_it_out_of_the_queue(rejected, console, rt, login):
    browser = console("sup_a")
    path = f"/quarantine/{rejected['unknown']}/dismiss"
    response = browser.post(path, {"reason": "平板上的旧表单，已重新采集"}, form_page="/quarantine")
    assert response.status_code == 302
    text = text_of(browser.page("/quarantine"))
    assert rejected["unknown"] not in text and rejected["wrong"] in text
    assert "已移出隔离区" in text or "dismissed" in text.lower()
    assert _dismissals(rt) == 1
    with rt.db.unit_of_work(write=False) as session:
        sub = session.get(Submission, uuid.UUID(rejected["unknown"]))
        assert sub is not None and sub.status is SubmissionStatus.REJECTED  # kept as it was
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "dismiss_submission")
        ).one()
        assert entry.details["reason"] == "平板上的旧表单，已重新采集"
    # Twice: refused, nothing more recorded.
    assert browser.post(path, {"reason": "again"}, form_page="/quarantine").status_code == 409
    assert _dismissals(rt) == 1
    # The API's quarantine leaves it out too.
    response = browser.client.get("/api/v1/submissions/quarantine", headers=bearer(login("sup_a")))
    listed = [s["instance_id"] for s in response.get_json()["submissions"]]
    assert listed == [rejected["wrong"]]


def test_a_dismissal_without_a_reason_is_refused_next_to_the_form(rejected, console, rt):
    browser = console("sup_a")
    response = browser.post(
        f"/quarantine/{rejected['wrong']}/dismiss", {"reason": "  "}, form_page="/quarantine"
    )
    assert response.status_code == 422
    assert f'id="reason-problem-{rejected["wrong"]}"' in response.get_data(as_text=True)
    assert _dismissals(rt) == 0


def test_other_regions_and_collectors_can_neither_see_nor_dismiss(rejected, console, rt):
    other = console("sup_b")
    assert rejected["unknown"] not in text_of(other.page("/quarantine"))
    response = other.post(
        f"/quarantine/{rejected['unknown']}/dismiss", {"reason": "x"}, form_page="/quarantine"
    )
    assert response.status_code == 403
    assert console("collector").get("/quarantine").status_code == 403
    assert (
        console("sup_a")
        .post(f"/quarantine/{uuid.uuid4()}/dismiss", {"reason": "x"}, form_page="/quarantine")
        .status_code
        == 404
    )
    assert _dismissals(rt) == 0


def test_the_quarantine_in_english(rejected, console):
    text = text_of(console("sup_a", lang="en").page("/quarantine"))
    assert "Why it was refused" in text and "Reason for dismissing" in text


def _submissions(rt) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(Submission)) or 0


def test_a_corrected_submission_goes_through_the_push_and_leaves_the_quarantine(
    rejected, console, rt
):
    browser = console("sup_a")
    path = f"/quarantine/{rejected['wrong']}/correct"
    html = browser.page(path)
    assert "13812345678" not in html  # masked in the editor too
    answers = json.loads(_textarea(html))
    assert answers["annual_income"] == "lots"
    answers["annual_income"] = 21000
    response = browser.post(
        path, {"answers": json.dumps(answers, ensure_ascii=False)}, form_page=path
    )
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:500]
    assert rejected["wrong"] not in text_of(browser.page("/quarantine"))
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and float(household.annual_income or 0) == 21000
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "resubmit_submission")
        ).one()
        assert entry.object_id == rejected["wrong"]
        assert entry.details["answers_changed"] == ["annual_income"]
        new = session.get(Submission, uuid.UUID(entry.details["corrected_as"]))
        original = session.get(Submission, uuid.UUID(rejected["wrong"]))
        assert new is not None and original is not None
        assert new.status is SubmissionStatus.ACCEPTED
        assert (new.device_id, new.user_id, new.hlc) == (
            original.device_id,
            original.user_id,
            original.hlc,
        )
        assert original.status is SubmissionStatus.REJECTED  # the record of what was sent
        # The masked answer left alone is what the tablet sent, not its mask.
        sent = sent_payload(rt.codec, new.payload, new.instance_id)
        assert sent["data"]["helper_observations"] == "户主电话13812345678，白天不在家"
    # Corrected once: not twice.
    assert browser.get(path).status_code == 409


def test_a_correction_refused_again_writes_nothing(rejected, console, rt):
    browser = console("sup_a")
    path = f"/quarantine/{rejected['wrong']}/correct"
    before = _submissions(rt)
    html = browser.page(path)
    response = browser.post(path, {"answers": _textarea(html)}, form_page=path)  # still "lots"
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "annual_income" in text_of(page) and 'role="alert"' in page
    response = browser.post(path, {"answers": "{not json"}, form_page=path)
    assert response.status_code == 422 and "{not json" in response.get_data(as_text=True)
    response = browser.post(path, {"answers": "[1, 2]"}, form_page=path)
    assert response.status_code == 422
    assert _submissions(rt) == before
    assert rejected["wrong"] in text_of(browser.page("/quarantine"))
    # Outside the reviewer's regions: neither the form nor the post.
    other = console("sup_b")
    assert other.get(path).status_code == 403
    assert other.post(path, {"answers": "{}"}, form_page="/quarantine").status_code == 403
    assert _submissions(rt) == before


def _textarea(html: str) -> str:
    match = re.search(r'<textarea id="answers"[^>]*>(.*?)</textarea>', html, re.S)
    assert match is not None
    return unescape(match.group(1))


def test_reviewed_submissions_are_shown_with_their_review_by_the_filter(rejected, console, rt):
    browser = console("sup_a")
    browser.post(
        f"/quarantine/{rejected['unknown']}/dismiss",
        {"reason": "旧表单，户主电话13812345678"},
        form_page="/quarantine",
    )
    waiting = text_of(browser.page("/quarantine"))
    assert rejected["unknown"] not in waiting and rejected["wrong"] in waiting
    html = browser.page("/quarantine?review_status=dismissed")
    text = text_of(html)
    assert rejected["unknown"] in text and rejected["wrong"] not in text
    assert "已驳回" in text and "sup_a" in text and "处理人" in text
    assert "旧表单" in text and "13812345678" not in html  # the reason, masked
    # A reviewed one offers neither a dismissal nor a correction.
    assert f"/quarantine/{rejected['unknown']}/dismiss" not in html
    assert 'value="dismissed" selected' in html
    everything = browser.page("/quarantine?review_status=all")
    assert rejected["unknown"] in everything and rejected["wrong"] in everything
    assert f"/quarantine/{rejected['wrong']}/dismiss" in everything
    assert "没有符合条件的提交" in text_of(browser.page("/quarantine?review_status=corrected"))
    assert browser.get("/quarantine?review_status=maybe").status_code == 422
    with rt.db.unit_of_work(write=False) as session:
        sub = session.get(Submission, uuid.UUID(rejected["unknown"]))
        assert sub is not None and sub.review_status is not None


def test_a_corrected_submission_is_listed_with_its_replacement(rejected, console, rt):
    browser = console("sup_a", lang="en")
    path = f"/quarantine/{rejected['wrong']}/correct"
    answers = json.loads(_textarea(browser.page(path)))
    answers["annual_income"] = 21000
    response = browser.post(
        path, {"answers": json.dumps(answers, ensure_ascii=False)}, form_page=path
    )
    assert response.status_code == 302
    with rt.db.unit_of_work(write=False) as session:
        original = session.get(Submission, uuid.UUID(rejected["wrong"]))
        assert original is not None and original.corrected_by_instance_id is not None
        replacement = str(original.corrected_by_instance_id)
    text = text_of(browser.page("/quarantine?review_status=corrected"))
    assert rejected["wrong"] in text and replacement in text
    assert "Replaced by submission" in text and "Corrected and re-submitted" in text
