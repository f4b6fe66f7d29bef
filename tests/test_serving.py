"""A serving process tunes Python's garbage collector once its app is built; `fieldsync serve`
claims its port before building the app and accepts connections only once it can answer."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from server.serving import GC_THRESHOLDS, bind_port, start_listening
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


def test_a_bound_port_refuses_connections_until_it_listens_and_is_then_taken():
    bound = bind_port("127.0.0.1", 0)
    try:
        port = bound.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        start_listening(bound)
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        with pytest.raises(OSError) as taken:
            bind_port("127.0.0.1", port).close()
        assert taken.value.errno == errno.EADDRINUSE
    finally:
        bound.close()
