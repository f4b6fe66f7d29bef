"""Background export jobs through the real app on both databases: the job's file is the direct
export's bytes, progress moves, one of two claiming workers runs a job, failures and expiry are
recorded, cancellation stops the worker, scope and the reveal audit hold, and the scheduler's
jobs pick up queued work and clean up."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.db import utcnow
from server.exports import jobs, service
from server.exports.job_models import ExportJob, ExportJobStatus
from server.users.models import Role
from tests.conftest import TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, bearer
from tests.exports.world import csv_rows, export, push_register, xlsx_rows
from tests.sync.helpers import Tablet, load_register


@pytest.fixture
def world(rt, client, create_user_, login, village_households):
    load_register(rt)
    create_user_("collector_a", Role.COLLECTOR, [TOWNSHIP_A])
    create_user_("admin", Role.ADMIN)
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_a2", Role.SUPERVISOR, [TOWNSHIP_A])
    tablet = Tablet.login(client, "collector_a")
    push_register(tablet, VILLAGE_A1)
    # Jobs run where each test says (a thread only in the test of threads).
    object.__setattr__(rt.settings, "export_job_threads", False)
    return {
        "admin": login("admin"),
        "sup_a": login("sup_a"),
        "sup_a2": login("sup_a2"),
        "collector": tablet.token,
    }


def start(client: Any, token: str, dataset: str, query: str = "") -> Any:
    response = client.post(f"/api/v1/exports/{dataset}/jobs?{query}", headers=bearer(token))
    return response


def job_of(client: Any, token: str, job_id: str) -> Any:
    return client.get(f"/api/v1/exports/jobs/{job_id}", headers=bearer(token))


def download(client: Any, token: str, job_id: str) -> Any:
    response = client.get(f"/api/v1/exports/jobs/{job_id}/file", headers=bearer(token))
    response.get_data()  # read, then closed: the file handle is released
    response.close()
    return response


def created(client: Any, token: str, dataset: str, query: str = "") -> str:
    response = start(client, token, dataset, query)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued" and body["file"] is None
    job_id: str = body["id"]
    return job_id


def run(rt: Any, job_id: str) -> ExportJobStatus | None:
    return jobs.claim_and_run(rt, uuid.UUID(job_id))


@pytest.mark.parametrize(
    ("dataset", "query"),
    [
        ("members", f"region={TOWNSHIP_A}"),
        ("households", "format=csv&bom=true&labels=zh"),
        ("members", "format=jsonl"),
        ("visits", "format=csv"),
    ],
)
def test_job_file_equals_the_direct_export_byte_for_byte(world, client, rt, dataset, query):
    job_id = created(client, world["sup_a"], dataset, query)
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    job = job_of(client, world["sup_a"], job_id).get_json()
    assert job["status"] == "succeeded"
    assert job["file"] == f"/api/v1/exports/jobs/{job_id}/file"
    got = download(client, world["sup_a"], job_id)
    assert got.status_code == 200
    direct = export(client, world["sup_a"], dataset, query)
    assert direct.status == 200
    assert got.get_data() == direct.body
    assert len(direct.body) > 0
    assert job["bytes_done"] == len(direct.body)
    assert got.headers["Content-Type"].split(";")[0] == direct.headers["Content-Type"].split(";")[0]
    assert "attachment" in got.headers["Content-Disposition"]
    if "jsonl" not in query:
        assert job["rows_done"] == len(csv_rows(direct.body))
    if dataset == "members" and "region" in query:
        assert job["cursor"] == direct.headers["X-Export-Cursor"] or job["cursor"]


def test_xlsx_job_reads_back_as_the_direct_export(world, client, rt):
    job_id = created(client, world["sup_a"], "members", "format=xlsx")
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    got = download(client, world["sup_a"], job_id)
    direct = export(client, world["sup_a"], "members", "format=xlsx")
    assert xlsx_rows(got.get_data(), "members") == xlsx_rows(direct.body, "members")


def test_progress_moves_while_the_job_runs(world, client, rt, monkeypatch):
    monkeypatch.setattr(jobs, "PROGRESS_ROWS", 1)
    monkeypatch.setattr(jobs, "PROGRESS_SECONDS", 0.0)
    job_id = created(client, world["sup_a"], "members")
    seen: list[tuple[str, int]] = []
    real = jobs._progress

    def spy(db: Any, identifier: uuid.UUID, rows: int, size: int) -> None:
        real(db, identifier, rows, size)
        body = job_of(client, world["sup_a"], job_id).get_json()
        seen.append((body["status"], body["rows_done"]))

    monkeypatch.setattr(jobs, "_progress", spy)
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    final = job_of(client, world["sup_a"], job_id).get_json()
    assert len(seen) >= 2
    assert all(status == "running" for status, _ in seen)
    counts = [rows for _, rows in seen]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    assert final["rows_done"] >= counts[-1] and final["started_at"] and final["finished_at"]


def test_two_workers_claiming_one_job_run_it_once(world, client, rt):
    job_id = created(client, world["sup_a"], "households")
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def worker() -> None:
        barrier.wait()
        outcomes.append(run(rt, job_id))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == sorted([ExportJobStatus.SUCCEEDED, None], key=str)
    # A claim of a job already taken loses, whatever its state.
    assert jobs.claim(rt.db, uuid.UUID(job_id)) is False
    assert download(client, world["sup_a"], job_id).status_code == 200


def test_a_failing_job_is_recorded_as_failed(world, client, rt, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        yield b"id\n"
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "render", broken)
    job_id = created(client, world["sup_a"], "households")
    assert run(rt, job_id) is ExportJobStatus.FAILED
    body = job_of(client, world["sup_a"], job_id).get_json()
    assert body["status"] == "failed"
    assert "disk on fire" in body["error"]
    got = download(client, world["sup_a"], job_id)
    assert got.status_code == 409
    assert got.get_json()["error"]["code"] == "conflict"
    assert not list(rt.settings.export_dir.glob(".*partial"))


def test_expiry_removes_the_file_and_marks_the_job_expired(world, client, rt):
    job_id = created(client, world["sup_a"], "households")
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    files = list(rt.settings.export_dir.iterdir())
    assert len(files) == 1
    # Not yet due: nothing happens.
    assert jobs.expire_jobs(rt, utcnow())["expired"] == 0
    assert files[0].exists()
    later = utcnow() + timedelta(seconds=rt.settings.export_job_ttl + 1)
    assert jobs.expire_jobs(rt, later)["expired"] == 1
    assert not files[0].exists()
    assert job_of(client, world["sup_a"], job_id).get_json()["status"] == "expired"
    got = download(client, world["sup_a"], job_id)
    assert got.status_code == 410 and got.get_json()["error"]["code"] == "gone"
    # The record itself is forgotten one more TTL later.
    much_later = later + timedelta(seconds=rt.settings.export_job_ttl + 1)
    assert jobs.expire_jobs(rt, much_later)["forgotten"] == 1
    assert job_of(client, world["sup_a"], job_id).status_code == 404


def test_download_before_the_job_finished_is_a_409(world, client, rt):
    job_id = created(client, world["sup_a"], "households")
    got = download(client, world["sup_a"], job_id)
    assert got.status_code == 409
    assert got.get_json()["error"]["details"]["status"] == "queued"


def test_only_the_creator_and_admins_see_and_download_a_job(world, client, rt):
    job_id = created(client, world["sup_a"], "households")
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    assert job_of(client, world["sup_a2"], job_id).status_code == 404
    assert download(client, world["sup_a2"], job_id).status_code == 404
    deleted = client.delete(f"/api/v1/exports/jobs/{job_id}", headers=bearer(world["sup_a2"]))
    assert deleted.status_code == 404
    assert download(client, world["admin"], job_id).status_code == 200
    assert job_of(client, world["collector"], job_id).status_code == 403
    own = client.get("/api/v1/exports/jobs", headers=bearer(world["sup_a2"])).get_json()
    assert own["jobs"] == []
    mine = client.get("/api/v1/exports/jobs", headers=bearer(world["sup_a"])).get_json()
    assert [j["id"] for j in mine["jobs"]] == [job_id]
    everyone = client.get("/api/v1/exports/jobs?status=succeeded", headers=bearer(world["admin"]))
    assert [j["id"] for j in everyone.get_json()["jobs"]] == [job_id]
    none = client.get("/api/v1/exports/jobs?status=queued", headers=bearer(world["admin"]))
    assert none.get_json()["jobs"] == []


def _reveal_entries(rt: Any) -> list[AuditEntry]:
    with rt.db.unit_of_work(write=False) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "export_reveal").order_by(AuditEntry.id)
        ).all()
        session.expunge_all()
        return list(entries)


def test_reveal_is_audited_at_creation_and_at_each_download_not_when_run(world, client, rt):
    job_id = created(client, world["sup_a"], "members", f"reveal=sensitive&region={TOWNSHIP_A}")
    assert len(_reveal_entries(rt)) == 1
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    assert len(_reveal_entries(rt)) == 1
    got = download(client, world["sup_a"], job_id)
    assert got.status_code == 200
    direct = export(client, world["sup_a"], "members", f"reveal=sensitive&region={TOWNSHIP_A}")
    assert got.get_data() == direct.body
    entries = _reveal_entries(rt)
    assert len(entries) == 3  # creation, download, the direct export
    creation, fetched = entries[0], entries[1]
    assert creation.object_id == "members"
    assert creation.details["filters"] == {"region": TOWNSHIP_A}
    assert fetched.object_type == "export_job" and fetched.object_id == job_id
    assert fetched.details["download"] is True
    assert fetched.details["filters"] == {"region": TOWNSHIP_A}


def test_reveal_and_scope_are_refused_at_creation_like_a_direct_export(world, client, rt):
    object.__setattr__(rt.settings, "reveal_roles", ("admin",))
    try:
        refused = start(client, world["sup_a"], "members", "reveal=sensitive")
    finally:
        object.__setattr__(rt.settings, "reveal_roles", ("admin", "supervisor"))
    assert refused.status_code == 403
    outside = start(client, world["sup_a"], "households", f"region={TOWNSHIP_B}")
    assert outside.status_code == 403
    assert start(client, world["sup_a"], "households", "region=12").status_code == 422
    assert start(client, world["sup_a"], "households", "bogus=1").status_code == 422
    assert start(client, world["sup_a"], "nothing").status_code == 404
    assert start(client, world["collector"], "households").status_code == 403
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count()).select_from(ExportJob)) == 0


def test_deleting_a_running_job_cancels_it(world, client, rt, monkeypatch):
    monkeypatch.setattr(jobs, "PROGRESS_ROWS", 1)
    monkeypatch.setattr(jobs, "PROGRESS_SECONDS", 0.0)
    job_id = created(client, world["sup_a"], "members")
    real = jobs._progress

    def delete_then_report(db: Any, identifier: uuid.UUID, rows: int, size: int) -> None:
        gone = client.delete(f"/api/v1/exports/jobs/{job_id}", headers=bearer(world["sup_a"]))
        assert gone.status_code == 204
        real(db, identifier, rows, size)

    monkeypatch.setattr(jobs, "_progress", delete_then_report)
    assert run(rt, job_id) is None
    assert job_of(client, world["sup_a"], job_id).status_code == 404
    assert list(rt.settings.export_dir.iterdir()) == []


def test_delete_removes_a_finished_job_and_its_file(world, client, rt):
    job_id = created(client, world["sup_a"], "households")
    assert run(rt, job_id) is ExportJobStatus.SUCCEEDED
    assert len(list(rt.settings.export_dir.iterdir())) == 1
    gone = client.delete(f"/api/v1/exports/jobs/{job_id}", headers=bearer(world["sup_a"]))
    assert gone.status_code == 204
    assert list(rt.settings.export_dir.iterdir()) == []
    assert download(client, world["sup_a"], job_id).status_code == 404


def test_the_scheduler_job_runs_queued_jobs_and_fails_abandoned_ones(world, client, rt):
    queued = created(client, world["sup_a"], "households")
    stuck = created(client, world["sup_a"], "members")
    assert jobs.claim(rt.db, uuid.UUID(stuck))  # its worker then "dies"
    soon = utcnow() + timedelta(seconds=1)
    summary = jobs.run_queued(rt, soon)
    assert summary == {"abandoned": 0, "succeeded": 1}
    assert download(client, world["sup_a"], queued).status_code == 200
    assert job_of(client, world["sup_a"], stuck).get_json()["status"] == "running"
    later = utcnow() + timedelta(seconds=rt.settings.export_job_stale_after + 1)
    assert jobs.run_queued(rt, later) == {"abandoned": 1}
    body = job_of(client, world["sup_a"], stuck).get_json()
    assert body["status"] == "failed" and "abandoned" in body["error"]


def test_a_web_worker_thread_runs_the_job_it_accepted(world, client, rt):
    object.__setattr__(rt.settings, "export_job_threads", True)
    job_id = created(client, world["sup_a"], "households")
    deadline = time.monotonic() + 60
    status = "queued"
    while status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        status = job_of(client, world["sup_a"], job_id).get_json()["status"]
    assert status == "succeeded"
    assert download(client, world["sup_a"], job_id).get_data() == (
        export(client, world["sup_a"], "households").body
    )
