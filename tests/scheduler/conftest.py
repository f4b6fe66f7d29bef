"""The scheduler tests' settings: the probe jobs registered, their execution logs in the test's
own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Settings
from tests.conftest import cheap_settings
from tests.scheduler.probe_jobs import FLAKY_LOG, HANG_MARKER, PROBE_LOG

PROBE_MODULE = "tests.scheduler.probe_jobs"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(PROBE_LOG, str(tmp_path / "probe.log"))
    monkeypatch.setenv(FLAKY_LOG, str(tmp_path / "flaky.log"))
    monkeypatch.setenv(HANG_MARKER, str(tmp_path / "hang.marker"))
    return cheap_settings(db_url, tmp_path).replace(job_modules=(PROBE_MODULE,))


def executions(path: Path) -> list[str]:
    """The scheduled times a probe log records, in the order executed."""
    import json

    if not path.exists():
        return []
    return [json.loads(line)["scheduled_for"] for line in path.read_text().splitlines()]
