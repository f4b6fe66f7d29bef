"""`fieldsync export`: the same file as the API, a progress line, the cursor for the next run."""

from __future__ import annotations

from sqlalchemy import select

from server.households.models import Member
from tests.conftest import VILLAGE_A1
from tests.exports.world import csv_rows, xlsx_rows


def test_cli_exports_members_as_csv_and_xlsx_with_a_cursor(cli, rt, village_households, tmp_path):
    target = tmp_path / "members.csv"
    result = cli("export", "members", "--bom", "-o", str(target))
    assert result.exit_code == 0, result.output
    rows = csv_rows(target.read_bytes())
    with rt.db.unit_of_work(write=False) as session:
        ids = {str(i) for i in session.scalars(select(Member.id))}
    assert {row["id"] for row in rows} == ids
    assert "rows/s" in result.output or "rows/s" in (result.stderr if result.stderr_bytes else "")
    cursor = next(line for line in result.output.splitlines() if line.startswith("cursor: "))
    again = tmp_path / "again.csv"
    result = cli("export", "members", "--cursor", cursor.split(" ", 1)[1], "-o", str(again))
    assert result.exit_code == 0, result.output
    assert csv_rows(again.read_bytes()) == []
    book = tmp_path / "members.xlsx"
    result = cli("export", "members", "--format", "xlsx", "--region", VILLAGE_A1, "-o", str(book))
    assert result.exit_code == 0, result.output
    header, data = xlsx_rows(book.read_bytes(), "members")
    assert header[0] == "成员ID"
    assert [row[0] for row in data] == [str(village_households[VILLAGE_A1]["member"])]


def test_cli_refuses_a_malformed_filter(cli, village_households, tmp_path):
    result = cli("export", "households", "--region", "12", "-o", str(tmp_path / "x.csv"))
    assert result.exit_code == 1
    assert "region" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_cli_background_queues_a_job_the_scheduler_runs(cli, rt, village_households, tmp_path):
    import uuid

    from server.db import utcnow
    from server.exports import jobs
    from server.exports.job_models import ExportJob, ExportJobStatus

    result = cli("export", "households", "--background", "--bom")
    assert result.exit_code == 0, result.output
    job_id = uuid.UUID(result.output.split("queued export job ", 1)[1].split()[0])
    direct = tmp_path / "households.csv"
    assert cli("export", "households", "--bom", "--quiet", "-o", str(direct)).exit_code == 0
    assert jobs.run_queued(rt, utcnow()) == {"abandoned": 0, "succeeded": 1}
    with rt.db.unit_of_work(write=False) as session:
        job = session.get(ExportJob, job_id)
        assert job is not None and job.status is ExportJobStatus.SUCCEEDED
        assert job.user_id is None and job.file_name is not None
        stored = rt.settings.export_dir / job.file_name
    assert stored.read_bytes() == direct.read_bytes()
    refused = cli("export", "households", "--background", "-o", str(tmp_path / "x.csv"))
    assert refused.exit_code != 0
