"""The quarantine page: submissions a push refused, with their errors and what was sent (masked),
dismissed with a reason (audited, the submission itself unchanged), scope, roles, bad input."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import Role
from tests.conftest import TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, bearer
from tests.console.conftest import text_of
from tests.sync.helpers import Tablet, load_register, visit


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
    wrong = tablet.submission(visit(phone_note="13812345678"))
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
