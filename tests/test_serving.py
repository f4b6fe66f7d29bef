"""A serving process tunes Python's garbage collector once its app is built."""

from __future__ import annotations

import os
import subprocess
import sys

from server.serving import GC_THRESHOLDS
from tests.patience import PATIENCE
from tests.sync.harness import PROJECT_ROOT


def test_the_wsgi_entry_point_freezes_the_app_and_collects_less_often(tmp_path):
    probe = (
        "import gc, wsgi; print(wsgi.app.name, gc.get_threshold(), gc.get_freeze_count() > 10000)"
    )
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}",
        "INSTANCE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=True,
    )
    assert done.stdout.split("\n")[0] == f"server {GC_THRESHOLDS} True"
