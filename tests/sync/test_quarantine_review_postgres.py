"""Reviewers dismissing and correcting the same quarantined submission at the same moment on
PostgreSQL: exactly one review is recorded, the others get 409, and a correction that lost
leaves no submission behind."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import Role
from tests.conftest import TOWNSHIP_A, bearer
from tests.sync.test_quarantine_review import QUARANTINE
from tests.sync.test_quarantine_review import rejected as rejected

pytestmark = pytest.mark.postgresql


@pytest.fixture
def db_url(request, tmp_path):
    """PostgreSQL only: this is about concurrent transactions."""
    from tests.conftest import _empty_postgres

    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


def _accepted(rt) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Submission)
                .where(Submission.status == SubmissionStatus.ACCEPTED)
            )
            or 0
        )


def test_reviewers_at_once_record_exactly_one_review(app, rt, rejected, create_user_, login):
    create_user_("sup_a2", Role.SUPERVISOR, [TOWNSHIP_A])
    tokens = [login("sup_a"), login("sup_a2"), login("sup_a"), login("sup_a2")]
    target = rejected["wrong"]
    listing = app.test_client().get(QUARANTINE, headers=bearer(tokens[0])).get_json()
    shown = next(r for r in listing["submissions"] if r["instance_id"] == target)["payload"]
    corrected = {**shown["data"], "annual_income": 21000}
    accepted_before = _accepted(rt)
    attempts = [
        ("dismiss", {"reason": "已重新采集"}),
        ("resubmit", {"answers": corrected}),
        ("dismiss", {"reason": "重复"}),
        ("resubmit", {"answers": corrected}),
    ]
    start = threading.Barrier(len(attempts))
    answers: list[tuple[str, int]] = []

    def attempt(token: str, action: str, body: dict) -> None:
        own = app.test_client()
        start.wait()
        response = own.post(
            f"/api/v1/submissions/{target}/{action}", json=body, headers=bearer(token)
        )
        answers.append((action, response.status_code))

    threads = [
        threading.Thread(target=attempt, args=(token, action, body))
        for token, (action, body) in zip(tokens, attempts, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for _, status in answers) == [200, 409, 409, 409], answers
    winner = next(action for action, status in answers if status == 200)
    with rt.db.unit_of_work(write=False) as session:
        sub = session.get(Submission, uuid.UUID(target))
        assert sub is not None
        assert sub.review_status is not None
        assert sub.review_status.value == ("dismissed" if winner == "dismiss" else "corrected")
        reviews = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action.in_(("dismiss_submission", "resubmit_submission")),
                AuditEntry.object_id == target,
            )
        )
    assert reviews == 1
    assert _accepted(rt) == accepted_before + (1 if winner == "resubmit" else 0)


def test_dismissals_at_once_record_one_reason(app, rt, rejected, create_user_, login):
    """No row lock on this path: the conditional UPDATE alone lets one through."""
    create_user_("sup_a2", Role.SUPERVISOR, [TOWNSHIP_A])
    tokens = [login("sup_a"), login("sup_a2"), login("sup_a"), login("sup_a2")]
    target = rejected["unknown"]
    start = threading.Barrier(len(tokens))
    answers: list[tuple[str, int]] = []

    def attempt(token: str, reason: str) -> None:
        own = app.test_client()
        start.wait()
        response = own.post(
            f"/api/v1/submissions/{target}/dismiss", json={"reason": reason}, headers=bearer(token)
        )
        answers.append((reason, response.status_code))

    threads = [
        threading.Thread(target=attempt, args=(token, f"reason {n}"))
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for _, status in answers) == [200, 409, 409, 409], answers
    winner = next(reason for reason, status in answers if status == 200)
    with rt.db.unit_of_work(write=False) as session:
        sub = session.get(Submission, uuid.UUID(target))
        assert sub is not None and sub.review_reason == winner
        reasons = session.scalars(
            select(AuditEntry.details).where(
                AuditEntry.action == "dismiss_submission", AuditEntry.object_id == target
            )
        ).all()
    assert [d["reason"] for d in reasons] == [winner]
