"""`GET /api/v1/jobs` and `POST /api/v1/jobs/{name}/run` through the real WSGI app, on SQLite and
PostgreSQL: admins only, the JSON error shape for every refusal, manual runs under the same
one-executor rule as scheduled ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.scheduler.models import JobRun, RunStatus, RunTrigger
from server.users.models import Role
from tests.conftest import COUNTY, bearer
from tests.scheduler.conftest import executions


@pytest.fixture
def admin(create_user_, login) -> dict[str, str]:
    create_user_("root", Role.ADMIN)
    return bearer(login("root"))


@pytest.fixture
def supervisor(create_user_, login) -> dict[str, str]:
    create_user_("sup", Role.SUPERVISOR, [COUNTY])
    return bearer(login("sup"))


def test_admins_see_every_job_with_its_schedule_and_next_run(client, admin):
    answer = client.get("/api/v1/jobs", headers=admin)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    jobs = {job["name"]: job for job in body["jobs"]}
    assert {"purge_auth", "summary_snapshot", "overdue_followups", "probe"} <= set(jobs)
    assert jobs["purge_auth"]["schedule"] == "every 3600"
    assert datetime.fromisoformat(jobs["purge_auth"]["next_run_at"]) > datetime.now(UTC)
    assert jobs["always_fails"]["next_run_at"] is None  # off: manual runs only
    assert jobs["probe"]["recent_runs"] == [] and jobs["probe"]["is_running"] is False
    assert body["runs"] == [] and body["total"] == 0


def test_run_now_executes_the_job_records_a_manual_run_and_is_audited(client, admin, rt, tmp_path):
    answer = client.post("/api/v1/jobs/probe/run", headers=admin)
    assert answer.status_code == 200, answer.get_json()
    run = answer.get_json()
    assert run["status"] == "succeeded" and run["trigger"] == "manual"
    assert run["requested_by"] == "root" and run["duration_ms"] >= 0
    assert executions(tmp_path / "probe.log") == [run["scheduled_for"].replace("Z", "+00:00")]
    listed = client.get("/api/v1/jobs?job=probe&trigger=manual", headers=admin).get_json()
    assert [r["id"] for r in listed["runs"]] == [run["id"]] and listed["total"] == 1
    probe = next(j for j in listed["jobs"] if j["name"] == "probe")
    assert [r["id"] for r in probe["recent_runs"]] == [run["id"]]
    with rt.db.unit_of_work(write=False) as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.object_id == "probe")
        ).all()
    assert actions == ["job_run_requested"]


def test_a_failing_manual_run_is_answered_and_listed_as_failed(client, admin):
    answer = client.post("/api/v1/jobs/always_fails/run", headers=admin)
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "failed"
    assert answer.get_json()["error"] == "ValueError: this job always fails"
    failed = client.get("/api/v1/jobs?status=failed", headers=admin).get_json()
    assert [r["job"] for r in failed["runs"]] == ["always_fails"]
    assert client.get("/api/v1/jobs?status=succeeded", headers=admin).get_json()["total"] == 0


def test_run_now_while_the_job_runs_is_a_409_and_runs_nothing(client, admin, rt, tmp_path):
    with rt.db.unit_of_work() as session:
        session.add(
            JobRun(
                job="probe",
                scheduled_for=datetime.now(UTC),
                trigger=RunTrigger.SCHEDULED,
                status=RunStatus.RUNNING,
                started_at=datetime.now(UTC),
                host="elsewhere",
                pid=1,
            )
        )
    answer = client.post("/api/v1/jobs/probe/run", headers=admin)
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "conflict"
    assert answer.get_json()["error"]["details"]["host"] == "elsewhere"
    assert executions(tmp_path / "probe.log") == []


def test_unknown_jobs_are_404_and_bad_filters_422(client, admin):
    answer = client.post("/api/v1/jobs/no_such_job/run", headers=admin)
    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/jobs?job=no_such_job", headers=admin).status_code == 404
    for query in ("status=done", "limit=0", "offset=-1", "job=Bad-Name", "colour=red"):
        answer = client.get(f"/api/v1/jobs?{query}", headers=admin)
        assert answer.status_code == 422, query
        assert answer.get_json()["error"]["code"] == "validation_error"


def test_only_admins_may_list_or_run_jobs(client, supervisor, tmp_path):
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get("/api/v1/jobs", headers=supervisor).status_code == 403
    answer = client.post("/api/v1/jobs/probe/run", headers=supervisor)
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden"
    assert executions(tmp_path / "probe.log") == []
