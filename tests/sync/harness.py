"""Real processes and comparable state for the sync proofs: fieldsync servers run as subprocesses,
push workers in processes of their own, a tablet's replica built from pulls, and snapshots of the
register that two databases can be compared by.

Whatever starts a process here also kills it (SIGKILL, in a `finally`), and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from server import migrate
from server.attachments.models import AttachmentRef
from server.changes.models import Change
from server.config import DEV_SECRET_KEY
from server.conflicts.models import Conflict
from server.devices.models import Device, DeviceSequenceGap
from server.households.fields import household_fields, member_fields
from server.households.models import Household, Member
from server.regions.service import add_region
from server.runtime import Runtime
from server.submissions.models import Submission
from server.users.models import Role
from server.users.service import create_user
from tests.conftest import (
    CITY,
    COUNTY,
    PASSWORD,
    PROVINCE,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    cheap_settings,
)
from tests.patience import PATIENCE, wait_until
from tests.sync.helpers import load_register

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGION_TREE = [PROVINCE, CITY, COUNTY, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, VILLAGE_A2, VILLAGE_B1]


def build_register(rt: Runtime, collectors: dict[str, list[str]]) -> None:
    """On an empty database: the test region tree, one collector per name with its villages, and
    the register of `load_register` (bundled forms, households A and B)."""
    with rt.db.unit_of_work() as session:
        for code in REGION_TREE:
            add_region(session, code, f"region {code}")
        for username, villages in collectors.items():
            create_user(
                session,
                rt.passwords,
                username=username,
                password=PASSWORD,
                role=Role.COLLECTOR,
                regions=villages,
            )
    load_register(rt)


@contextmanager
def sibling_postgres_database(url: str) -> Iterator[str]:
    """A new, migrated database on the same PostgreSQL server as `url`, dropped afterwards."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"fieldsync_sibling_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    sibling = make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(sibling)
        yield sibling
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- server subprocesses ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve_command(port: int) -> list[str]:
    script = shutil.which("fieldsync", path=str(Path(sys.executable).parent))
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if script:
        return [script, *args]
    return [sys.executable, "-c", "from server.cli import main; main()", *args]


@dataclass
class ServerProcess:
    """`fieldsync serve` in a subprocess on a free port, on the given database."""

    database_url: str
    instance_dir: Path
    failpoints: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Start the process; `wait_until_healthy` waits for it (servers start faster side by
        side: most of a start is importing the app)."""
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "INSTANCE_DIR": str(self.instance_dir),
            "ATTACHMENT_DIR": str(self.instance_dir / "attachments"),
            # The key the test process wrote the register with (`cheap_settings`).
            "SECRET_KEY": DEV_SECRET_KEY,
            "ENVIRONMENT": "testing",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "64",
            "LOG_LEVEL": "WARNING",
            "FAILPOINTS": ",".join(self.failpoints),
        }
        log = (self.instance_dir / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            _serve_command(self.port), env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        log.close()

    def wait_until_healthy(self) -> None:
        """Wait (patiently: the machine may be busy) until the server answers its health check;
        fail at once if it exits, and with its output either way."""
        assert self.process is not None
        process = self.process

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}: {self.log()}")
            try:
                return requests.get(f"{self.url}/api/v1/health", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_until(healthy, what=f"server on port {self.port} healthy", details=self.log)
        except AssertionError:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=PATIENCE)

    def wait_for_death(self, timeout: float = PATIENCE) -> int:
        """The exit status of a server expected to die by itself (a failpoint)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"server did not die within {timeout:.0f} s: {self.log()}"
            ) from exc
        finally:
            self.kill()

    def log(self) -> str:
        path = self.instance_dir / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextmanager
def running_servers(*servers: ServerProcess) -> Iterator[list[ServerProcess]]:
    """Start every server side by side, wait until each answers, kill them all at the end."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_until_healthy()
        yield list(servers)
    finally:
        for server in servers:
            server.kill()


# -- push workers in their own processes ----------------------------------------------------------


def push_worker(
    database_url: str,
    instance_dir: str,
    token: str,
    bodies: list[dict[str, Any]],
    barrier: Any,
    out_path: str,
    disable_household_locks: bool = False,
) -> None:
    """Entry point of a spawned process: its own app (engine, clock) on the shared database,
    pushing `bodies` one by one, each after all workers reach `barrier`, retrying a 5xx (a retry of
    the same batch is exactly-once by contract). Writes the final responses to `out_path`.

    `disable_household_locks` turns the per-household advisory locks into a no-op, so the negative
    control can show that the checks notice a lost update."""
    from server.app import create_app

    if disable_household_locks:
        import server.sync.apply as apply_module

        def no_lock(session: Any, household_ids: Any) -> None:
            return None

        apply_module.lock_households = no_lock

    app = create_app(cheap_settings(database_url, Path(instance_dir)))
    client = app.test_client()
    outcomes: list[dict[str, Any]] = []
    try:
        for body in bodies:
            barrier.wait(timeout=PATIENCE)
            statuses = []
            for attempt in range(5):
                response = client.post(
                    "/api/v1/sync/push", json=body, headers={"Authorization": f"Bearer {token}"}
                )
                statuses.append(response.status_code)
                if response.status_code < 500:
                    break
                time.sleep(0.05 * 2**attempt)  # back off before retrying a 5xx
            outcomes.append({"statuses": statuses, "body": response.get_json()})
    finally:
        Path(out_path).write_text(json.dumps(outcomes))
        app.extensions["fieldsync"].db.dispose()


# -- tablets' replicas and the register as comparable data --------------------------------------


EntityKey = tuple[str, str]


@dataclass
class Replica:
    """What a tablet holds after applying pulls: entities by (type, id), latest state wins."""

    entities: dict[EntityKey, dict[str, Any]] = field(default_factory=dict)
    cursor: str | None = None

    def apply(self, entities: list[dict[str, Any]], removed: list[dict[str, Any]]) -> None:
        for entity in entities:
            key = (entity["entity"], entity["id"])
            known = self.entities.get(key)
            # Every page serves current states, so a later page never goes back in time.
            assert known is None or known["rev"] <= entity["rev"], (known, entity)
            self.entities[key] = entity
        for gone in removed:
            self.entities.pop((gone["entity"], gone["id"]), None)

    def view(self) -> dict[EntityKey, tuple[int, bool, dict[str, Any], dict[str, Any]]]:
        return {
            key: (e["rev"], e["deleted"], e["fields"], e["clocks"])
            for key, e in self.entities.items()
        }


def entity_views(
    entities: list[dict[str, Any]],
) -> dict[EntityKey, tuple[int, bool, dict[str, Any], dict[str, Any]]]:
    replica = Replica()
    replica.apply(entities, [])
    return replica.view()


def stored_revisions(rt: Runtime) -> dict[EntityKey, int]:
    """Every register entity's revision, straight from the tables."""
    with rt.db.unit_of_work(write=False) as session:
        households = session.execute(select(Household.id, Household.rev)).all()
        members = session.execute(select(Member.id, Member.rev)).all()
    return {("household", str(i)): r for i, r in households} | {
        ("member", str(i)): r for i, r in members
    }


def _normalized_clock(clock: str | None) -> str | None:
    # Import stamps depend on when a register was loaded; tablets' stamps are the same everywhere.
    return "<import>" if clock and clock.endswith("-server") else clock


def _entity_snapshot(rev: int, fields: dict[str, Any], row: Household | Member) -> dict[str, Any]:
    return {
        "rev": rev,
        "deleted": row.deleted,
        "fields": fields,
        "versions": {
            name: (_normalized_clock(v.clock), v.rev, v.origin, v.source)
            for name, v in row.field_versions.items()
        },
        "review_flags": list(getattr(row, "review_flags", [])),
    }


def _without_conflict_ids(result: dict[str, Any]) -> dict[str, Any]:
    # Conflict ids are random per database; everything else in a result is determined by the push.
    conflicts = [
        {k: v for k, v in c.items() if k != "conflict_id"} for c in result.get("conflicts", [])
    ]
    return {**result, "conflicts": conflicts}


def register_snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything a push decides, in a form two databases loaded the same way can be compared by:
    the register, the change log (as a multiset), the conflicts, the stored submissions, their
    attachment references and the devices' sequence bookkeeping."""
    with rt.db.unit_of_work(write=False) as session:
        households = {
            str(h.id): _entity_snapshot(h.rev, household_fields(h), h)
            for h in session.scalars(select(Household))
        }
        members = {
            str(m.id): _entity_snapshot(m.rev, member_fields(m), m)
            for m in session.scalars(select(Member))
        }
        changes = Counter(
            (
                c.entity_type,
                str(c.entity_id),
                json.dumps(c.fields, sort_keys=True),
                _normalized_clock(c.clock),
                c.rev,
                str(c.submission_id),
                c.village_code,
            )
            for c in session.scalars(select(Change))
        )
        conflicts = Counter(
            (
                c.entity_type,
                str(c.entity_id),
                c.field,
                json.dumps(c.winner_value, sort_keys=True),
                _normalized_clock(c.winner_clock),
                str(c.winner_submission_id),
                json.dumps(c.loser_value, sort_keys=True),
                _normalized_clock(c.loser_clock),
                str(c.loser_submission_id),
                c.status.value,
            )
            for c in session.scalars(select(Conflict))
        )
        attachment_refs = sorted(
            (r.digest, str(r.instance_id), str(r.village_code))
            for r in session.scalars(select(AttachmentRef))
        )
        devices = {str(d.id): d.highest_seq for d in session.scalars(select(Device))}
        gaps = sorted(
            (str(g.device_id), g.first_seq, g.last_seq)
            for g in session.scalars(select(DeviceSequenceGap))
        )
        submissions = {
            str(s.instance_id): {
                "status": s.status.value,
                "content_hash": s.content_hash,
                "hlc": s.hlc,
                "device_seq": s.device_seq,
                "result": _without_conflict_ids(s.result),
            }
            for s in session.scalars(select(Submission))
        }
    return {
        "households": households,
        "members": members,
        "changes": changes,
        "conflicts": conflicts,
        "submissions": submissions,
        "attachment_refs": attachment_refs,
        "devices": devices,
        "sequence_gaps": gaps,
    }
