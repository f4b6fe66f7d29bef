"""The exports page: dataset, filters (the user's own regions), format and labels; download now
(streamed by the export service) and background jobs with progress and a download link;
revealing only for roles that may, audited; supervisors and administrators only."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.exports import jobs
from server.exports.job_models import ExportJob, ExportJobStatus
from server.users.models import Role
from tests.conftest import ID_NUMBER, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, VILLAGE_B1
from tests.console.conftest import text_of
from tests.exports.world import csv_rows, jsonl_rows


@pytest.fixture
def supervisor_a(rt, console, create_user_, village_households):
    create_user_("exp_sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    # Jobs run where each test says (not in a thread of the test app).
    object.__setattr__(rt.settings, "export_job_threads", False)
    return console("exp_sup_a")


def reveal_entries(rt) -> list[AuditEntry]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "export_reveal")))


def test_the_page_offers_the_datasets_and_only_the_users_own_regions(supervisor_a):
    page = supervisor_a.page("/exports")
    text = text_of(page)
    assert "数据集" in text and "立即下载" in text and "后台导出" in text
    assert f'value="{TOWNSHIP_A}"' in page and f'value="{VILLAGE_A1}"' in page
    assert f'value="{TOWNSHIP_B}"' not in page and f'value="{VILLAGE_B1}"' not in page
    # a dataset's own filters only: visits have form filters, households do not
    assert 'name="form_id"' not in page
    assert 'name="form_id"' in supervisor_a.page("/exports?dataset=visits")


def test_download_now_streams_the_users_households_with_labels_and_bom(supervisor_a):
    response = supervisor_a.post(
        "/exports/download",
        {"dataset": "households", "format": "csv", "bom": "true", "labels": "zh"},
        form_page="/exports",
    )
    assert response.status_code == 200, text_of(response.get_data(as_text=True))[:300]
    assert response.headers["Content-Disposition"].startswith('attachment; filename="households-')
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = csv_rows(body)
    assert sorted(r["village_code"] for r in rows) == sorted([VILLAGE_A1, "990102001002"])
    assert {r["category"] for r in rows} == {"脱贫户"}


def test_an_export_outside_the_users_regions_or_with_bad_filters_is_refused(supervisor_a):
    outside = supervisor_a.post(
        "/exports/download",
        {"dataset": "households", "region": TOWNSHIP_B, "format": "csv"},
        form_page="/exports",
    )
    assert outside.status_code == 403
    assert "无法导出： the region asked for is outside your regions" in text_of(
        outside.get_data(as_text=True)
    )
    wrong = supervisor_a.post(
        "/exports/download",
        {"dataset": "households", "format": "csv", "changed_since": "yesterday"},
        form_page="/exports",
    )
    assert wrong.status_code == 422
    assert "changed_since" in text_of(wrong.get_data(as_text=True))
    unknown = supervisor_a.post("/exports/download", {"dataset": "nope"}, form_page="/exports")
    assert unknown.status_code == 422


def test_a_background_export_shows_progress_then_downloads(rt, supervisor_a):
    response = supervisor_a.post(
        "/exports/jobs",
        {"dataset": "members", "format": "jsonl", "region": TOWNSHIP_A},
        form_page="/exports",
    )
    assert response.status_code == 302
    listing = text_of(supervisor_a.page("/exports/jobs"))
    assert "members" in listing and "排队中" in listing
    with rt.db.unit_of_work(write=False) as session:
        (job,) = session.scalars(select(ExportJob)).all()
        assert job.query == {"format": "jsonl", "region": TOWNSHIP_A}
        job_id = job.id
    assert jobs.claim_and_run(rt, job_id) is ExportJobStatus.SUCCEEDED
    page = supervisor_a.page("/exports")
    assert "已完成" in text_of(page)
    link = re.search(r'href="(/exports/jobs/[0-9a-f-]+/file)"', page)
    assert link is not None
    download = supervisor_a.get(link.group(1))
    assert download.status_code == 200
    rows = jsonl_rows(download.get_data())
    download.close()
    assert len(rows) == 2 and all(r["id_number"] != ID_NUMBER for r in rows)


def test_jobs_are_the_users_own_and_can_be_removed(rt, supervisor_a, console, create_user_):
    supervisor_a.post("/exports/jobs", {"dataset": "households"}, form_page="/exports")
    with rt.db.unit_of_work(write=False) as session:
        job_id = session.scalars(select(ExportJob.id)).one()
    create_user_("exp_sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    other = console("exp_sup_b")
    assert "households" not in text_of(other.page("/exports/jobs")).split("后台导出", 1)[1]
    assert other.get(f"/exports/jobs/{job_id}/file").status_code == 404
    refused = other.post(f"/exports/jobs/{job_id}/remove", {}, form_page="/exports")
    assert refused.status_code == 404
    unfinished = supervisor_a.get(f"/exports/jobs/{job_id}/file")
    assert unfinished.status_code == 409
    removed = supervisor_a.post(f"/exports/jobs/{job_id}/remove", {}, form_page="/exports")
    assert removed.status_code == 302
    with rt.db.unit_of_work(write=False) as session:
        assert session.get(ExportJob, job_id) is None
    assert supervisor_a.get(f"/exports/jobs/{uuid.uuid4()}/file").status_code == 404


def test_revealing_is_offered_to_roles_that_may_and_audited(rt, supervisor_a):
    assert 'name="reveal"' in supervisor_a.page("/exports?dataset=members")
    masked = supervisor_a.post(
        "/exports/download", {"dataset": "members", "format": "jsonl"}, form_page="/exports"
    )
    assert all(r["id_number"] != ID_NUMBER for r in jsonl_rows(masked.get_data()))
    assert reveal_entries(rt) == []
    revealed = supervisor_a.post(
        "/exports/download",
        {"dataset": "members", "format": "jsonl", "reveal": "sensitive"},
        form_page="/exports",
    )
    assert {r["id_number"] for r in jsonl_rows(revealed.get_data())} == {ID_NUMBER}
    (entry,) = reveal_entries(rt)
    assert entry.object_id == "members"

    object.__setattr__(rt.settings, "reveal_roles", ("admin",))
    assert 'name="reveal"' not in supervisor_a.page("/exports?dataset=members")
    refused = supervisor_a.post(
        "/exports/download",
        {"dataset": "members", "format": "jsonl", "reveal": "sensitive"},
        form_page="/exports",
    )
    assert refused.status_code == 403
    assert len(reveal_entries(rt)) == 1


def test_collectors_may_not_export(console, create_user_, regions):
    create_user_("exp_collector", Role.COLLECTOR, [VILLAGE_A1])
    collector = console("exp_collector")
    assert collector.get("/exports").status_code == 403
    refused = collector.post("/exports/jobs", {"dataset": "households"}, form_page="/")
    assert refused.status_code == 403


def test_the_exports_page_in_english(console, create_user_, regions):
    create_user_("exp_admin", Role.ADMIN)
    admin = console("exp_admin", lang="en")
    text = text_of(admin.page("/exports?dataset=warnings"))
    assert "Download now" in text and "Run in background" in text and "Dismissed" in text


def test_the_jobs_list_pages_through_older_jobs(rt, supervisor_a):
    for _ in range(21):
        response = supervisor_a.post(
            "/exports/jobs", {"dataset": "households", "format": "jsonl"}, form_page="/exports"
        )
        assert response.status_code == 302
    first = supervisor_a.page("/exports/jobs")
    assert first.count('class="job-queued"') == 20
    assert 'href="/exports/jobs?offset=20"' in first
    second = supervisor_a.page("/exports/jobs?offset=20")
    assert second.count('class="job-queued"') == 1
    assert 'href="/exports/jobs"' in second and "offset=40" not in second
    assert supervisor_a.page("/exports/jobs?offset=-1").count('class="job-queued"') == 20
