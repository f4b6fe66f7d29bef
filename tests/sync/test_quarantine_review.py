"""The quarantine's review through the API: a supervisor dismisses a rejected submission with a
reason, or corrects its answers and re-submits it; either is recorded once in the submission's
review columns (and the audit log), and the listing filters on it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.submissions import service
from server.submissions.models import ReviewStatus, Submission, SubmissionStatus
from server.users.models import Role
from tests.conftest import TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, bearer
from tests.sync.helpers import Tablet, load_register, visit

QUARANTINE = "/api/v1/submissions/quarantine"


@pytest.fixture
def rejected(client, rt, create_user_):
    """Two submissions of a collector of village A1 the server refused."""
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


def _listed(client, token, review_status=None):
    query = f"?review_status={review_status}" if review_status else ""
    response = client.get(QUARANTINE + query, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return {row["instance_id"]: row for row in response.get_json()["submissions"]}


def _audited(rt, action):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        )


def test_a_dismissal_is_recorded_once_and_the_listing_filters_on_it(rejected, client, login, rt):
    token = login("sup_a")
    assert set(_listed(client, token)) == {rejected["unknown"], rejected["wrong"]}
    path = f"/api/v1/submissions/{rejected['unknown']}/dismiss"
    response = client.post(
        path, json={"reason": "旧表单，已重新采集 13812345678"}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["instance_id"] == rejected["unknown"]
    assert (body["review_status"], body["reviewed_by"]) == ("dismissed", "sup_a")
    assert "13812345678" not in body["review_reason"]  # stored masked, like the audit entry
    assert body["corrected_by_instance_id"] is None
    # Waiting (the default) leaves it out; `dismissed` and `all` show it with its review.
    assert set(_listed(client, token)) == {rejected["wrong"]}
    assert set(_listed(client, token, "waiting")) == {rejected["wrong"]}
    assert _listed(client, token, "corrected") == {}
    row = _listed(client, token, "dismissed")[rejected["unknown"]]
    assert (row["review_status"], row["reviewed_by"]) == ("dismissed", "sup_a")
    assert row["review_reason"] == body["review_reason"] and row["reviewed_at"]
    assert _listed(client, token, "all")[rejected["wrong"]]["review_status"] is None
    # Twice, or corrected after: 409, nothing more recorded.
    again = client.post(path, json={"reason": "again"}, headers=bearer(token))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    resubmit = client.post(
        f"/api/v1/submissions/{rejected['unknown']}/resubmit",
        json={"answers": {}},
        headers=bearer(token),
    )
    assert resubmit.status_code == 409
    assert _audited(rt, "dismiss_submission") == 1
    with rt.db.unit_of_work(write=False) as session:
        sub = session.get(Submission, uuid.UUID(rejected["unknown"]))
        assert sub is not None and sub.status is SubmissionStatus.REJECTED
        assert sub.review_status is ReviewStatus.DISMISSED


def test_a_correction_is_pushed_and_replaces_the_quarantined_one(rejected, client, login, rt):
    token = login("sup_a")
    shown = _listed(client, token)[rejected["wrong"]]["payload"]["data"]
    assert "13812345678" not in shown["helper_observations"]  # masked; left as shown = as sent
    path = f"/api/v1/submissions/{rejected['wrong']}/resubmit"
    refused = client.post(path, json={"answers": shown}, headers=bearer(token))  # still "lots"
    assert refused.status_code == 422
    assert _listed(client, token, "corrected") == {}
    response = client.post(
        path, json={"answers": {**shown, "annual_income": 21000}}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["review_status"], body["reviewed_by"]) == ("corrected", "sup_a")
    assert body["result"]["status"] == "accepted" and body["village_code"] == VILLAGE_A1
    replacement = body["corrected_by_instance_id"]
    assert replacement and replacement != rejected["wrong"]
    row = _listed(client, token, "corrected")[rejected["wrong"]]
    assert row["corrected_by_instance_id"] == replacement and row["review_reason"] is None
    assert rejected["wrong"] not in _listed(client, token)
    with rt.db.unit_of_work(write=False) as session:
        new = session.get(Submission, uuid.UUID(replacement))
        assert new is not None and new.status is SubmissionStatus.ACCEPTED
    again = client.post(
        path, json={"answers": {**shown, "annual_income": 1}}, headers=bearer(token)
    )
    assert again.status_code == 409
    dismiss = client.post(
        f"/api/v1/submissions/{rejected['wrong']}/dismiss",
        json={"reason": "x"},
        headers=bearer(token),
    )
    assert dismiss.status_code == 409
    assert _audited(rt, "resubmit_submission") == 1


def test_reviews_are_for_supervisors_of_the_submissions_regions(rejected, client, login, rt):
    target = rejected["unknown"]
    dismiss = f"/api/v1/submissions/{target}/dismiss"
    resubmit = f"/api/v1/submissions/{target}/resubmit"
    far = bearer(login("sup_b"))
    assert client.post(dismiss, json={"reason": "x"}, headers=far).status_code == 403
    assert client.post(resubmit, json={"answers": {}}, headers=far).status_code == 403
    assert _listed(client, login("sup_b"), "all") == {}
    collector = bearer(login("collector"))
    assert client.post(dismiss, json={"reason": "x"}, headers=collector).status_code == 403
    assert client.get(QUARANTINE, headers=collector).status_code == 403
    own = bearer(login("sup_a"))
    unknown = f"/api/v1/submissions/{uuid.uuid4()}/dismiss"
    assert client.post(unknown, json={"reason": "x"}, headers=own).status_code == 404
    assert _audited(rt, "dismiss_submission") == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 2001}, {"reason": 3}, {"why": "x"}],
)
def test_a_dismissal_needs_a_reason(rejected, client, login, rt, body):
    response = client.post(
        f"/api/v1/submissions/{rejected['unknown']}/dismiss",
        json=body,
        headers=bearer(login("sup_a")),
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"
    assert _listed(client, login("sup_a"), "dismissed") == {}


@pytest.mark.parametrize("body", [{}, {"answers": [1]}, {"answers": "x"}, {"answers": {}, "a": 1}])
def test_a_correction_needs_answers_as_an_object(rejected, client, login, body):
    response = client.post(
        f"/api/v1/submissions/{rejected['wrong']}/resubmit",
        json=body,
        headers=bearer(login("sup_a")),
    )
    assert response.status_code == 422
    assert _listed(client, login("sup_a"), "corrected") == {}


@pytest.mark.parametrize("value", ["", "reviewed", "DISMISSED", "null"])
def test_the_review_filter_is_checked(rejected, client, login, value):
    response = client.get(f"{QUARANTINE}?review_status={value}", headers=bearer(login("sup_a")))
    assert response.status_code == 422


def test_a_review_recorded_meanwhile_is_a_conflict_not_a_second_record(rejected, rt, login):
    """What the concurrency rests on: the UPDATE applies only while no review is recorded, so a
    reviewer who read the submission before another's review was written gets a 409."""
    from server.auth.actor import Actor
    from server.db import utcnow
    from server.errors import Conflict
    from server.users.models import User

    target = uuid.UUID(rejected["unknown"])
    with rt.db.unit_of_work() as session:
        user = session.scalars(select(User).where(User.username == "sup_a")).one()
        actor = Actor(
            user_id=user.id, username=user.username, role=user.role, region_codes=(TOWNSHIP_A,)
        )
        service.dismiss_submission(session, actor, target, reason="first", now=utcnow())
        with pytest.raises(Conflict):
            service._mark_reviewed(
                session, actor, target, ReviewStatus.CORRECTED, now=utcnow(), replacement=None
            )
    with rt.db.unit_of_work(write=False) as session:
        sub = session.get(Submission, target)
        assert sub is not None and sub.review_status is ReviewStatus.DISMISSED
        assert sub.review_reason == "first"


def test_a_listing_page_is_one_statement_that_never_reads_the_audit_log(
    rejected, client, login, rt
):
    from sqlalchemy import event

    from server.auth.actor import Actor

    token = login("sup_a")
    client.post(
        f"/api/v1/submissions/{rejected['unknown']}/dismiss",
        json={"reason": "x"},
        headers=bearer(token),
    )
    actor = Actor(user_id=None, username="sup_a", role=Role.SUPERVISOR, region_codes=(TOWNSHIP_A,))

    def statements(review: str, limit: int) -> list[str]:
        seen: list[str] = []

        def listener(*args):
            seen.append(args[2])

        event.listen(rt.db.engine, "before_cursor_execute", listener)
        try:
            with rt.db.unit_of_work(write=False) as session:
                rows = service.quarantine(
                    session, actor, rt.settings, rt.codec, limit=limit, offset=0, review=review
                )
        finally:
            event.remove(rt.db.engine, "before_cursor_execute", listener)
        assert len(rows) == (2 if review == "all" and limit > 1 else 1)
        return [s for s in seen if s.lstrip().upper().startswith("SELECT")]

    for review in ("waiting", "dismissed", "all"):
        for limit in (1, 100):
            selects = statements(review, limit)
            assert len(selects) == 1, selects
            assert "audit_log" not in selects[0]
