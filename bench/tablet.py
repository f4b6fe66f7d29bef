"""What the sync benchmarks measure through: the real fieldsync app served over HTTP by a Werkzeug
server in a thread (or by gunicorn with several worker processes, as deployed), and tablets that
talk to it with `requests` exactly as the protocol says (log in with a device id, push batches of
`household_visit` submissions, pull pages).

Shared by push.py and pull.py; on its own it measures nothing. It reads the register only to
know what a tablet that pulled it would know (ids, names, birth dates); it never writes it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from forms.bundled import load_sample_answers
from server.app import create_app
from server.config import Settings
from server.db import Database
from server.households.models import Household, Member
from server.runtime import Runtime
from server.serving import tune_for_serving
from sync_protocol.clock import HybridClock

SAMPLE = load_sample_answers("household_visit")


@dataclass(frozen=True)
class ServedApp:
    url: str
    app: Flask

    @property
    def runtime(self) -> Runtime:
        value: Runtime = self.app.extensions["fieldsync"]
        return value


@contextlib.contextmanager
def served_app(settings: Settings) -> Iterator[ServedApp]:
    """The app built by `create_app(settings)`, served on a free local port until the block ends
    (one request at a time, as one WSGI worker serves them)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(settings)
    tune_for_serving()  # as wsgi.py does in every worker
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, name="fieldsync-server", daemon=True)
    thread.start()
    try:
        yield ServedApp(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        app.extensions["fieldsync"].db.dispose()


@contextlib.contextmanager
def gunicorn_app(settings: Settings, workers: int | None = None) -> Iterator[str]:
    """The app as deployed: `gunicorn -c gunicorn.conf.py wsgi:app` (the serving model of
    docs/operations.md), with `workers` worker processes instead of the configured number when
    given, configured through the environment from `settings`, on a free local port. Yields its
    base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "INSTANCE_DIR": str(settings.instance_dir),
        "ATTACHMENT_DIR": str(settings.attachment_dir),
        # The keys the register was loaded with, so the workers read it the same way.
        "SECRET_KEY": settings.secret_key,
        "DATA_KEY": settings.data_key,
        "LOG_LEVEL": settings.log_level,
        "PASSWORD_HASH_TIME_COST": str(settings.password_hash_time_cost),
        "PASSWORD_HASH_MEMORY_KIB": str(settings.password_hash_memory_kib),
    }
    root = Path(__file__).resolve().parent.parent
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        f"--config={root / 'gunicorn.conf.py'}",
    ]
    if workers:
        command.append(f"--workers={workers}")
    command += [
        f"--bind=127.0.0.1:{port}",
        "--timeout=600",
        "--log-level=warning",
        "wsgi:app",
    ]
    process = subprocess.Popen(command, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        # Patient: on a busy machine a worker takes a while to start (imports, the dummy hash).
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}")
            with contextlib.suppress(requests.ConnectionError, requests.Timeout):
                if requests.get(f"{url}/api/v1/health", timeout=30).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 180 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class HttpTablet:
    """A device with its own clock and submission sequence, bound to one collector's token."""

    base_url: str
    token: str
    device_id: str
    http: requests.Session = field(default_factory=requests.Session)
    seq: int = 0
    clock: HybridClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = HybridClock(self.device_id)
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> HttpTablet:
        device_id = str(uuid.uuid4())
        response = requests.post(
            f"{base_url}/api/v1/auth/login",
            json={"username": username, "password": password, "device_id": device_id},
            timeout=60,
        )
        response.raise_for_status()
        return cls(base_url, response.json()["token"], device_id)

    def submission(
        self, data: dict[str, Any], base_revs: dict[str, int], collected_at: datetime
    ) -> dict[str, Any]:
        self.seq += 1
        return {
            "instance_id": str(uuid.uuid4()),
            "form_id": "household_visit",
            "form_version": 1,
            "collected_at": collected_at.isoformat(),
            "hlc": str(self.clock.now()),
            "device_seq": self.seq,
            "base_revs": base_revs,
            "data": data,
        }

    def batch_body(self, submissions: list[dict[str, Any]]) -> bytes:
        """A push request body, encoded ahead of time so that timing covers only the push."""
        body = {
            "device_id": self.device_id,
            "batch_id": str(uuid.uuid4()),
            "clock": str(self.clock.now()),
            "submissions": submissions,
        }
        return json.dumps(body, ensure_ascii=False).encode()

    def push(self, body: bytes) -> dict[str, Any]:
        response = self.http.post(
            f"{self.base_url}/api/v1/sync/push",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=600,
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def pull(self, cursor: str | None, limit: int = 1000) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = self.http.get(f"{self.base_url}/api/v1/sync/pull", params=params, timeout=600)
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page

    def pull_all(self, cursor: str | None = None, limit: int = 1000) -> tuple[list[Any], str]:
        """Every page from `cursor` (None: initial sync): the entities and the next cursor."""
        entities: list[Any] = []
        while True:
            page = self.pull(cursor, limit)
            entities += page["entities"]
            cursor = page["cursor"]
            if not page["more"]:
                return entities, str(cursor)


# --- household visits, as a tablet that pulled the register would fill them -------------------


@dataclass(frozen=True)
class KnownMember:
    id: uuid.UUID
    name: str
    birth_date: date
    insured: bool | None
    health: str | None
    employment: str | None


@dataclass(frozen=True)
class KnownHousehold:
    id: uuid.UUID
    village_code: str
    annual_income: Decimal | None
    rev: int
    members: tuple[KnownMember, ...]
    member_revs: tuple[int, ...]


def known_households(
    settings: Settings, count: int, *, village: str | None = None, seed: int = 1
) -> list[KnownHousehold]:
    """`count` distinct households (of `village`, or anywhere), chosen at random with `seed`,
    with their members: what a tablet knows about them after a pull."""
    db = Database(settings.database_url)
    try:
        with db.unit_of_work(write=False) as session:
            query = select(Household.id).order_by(Household.id)
            if village:
                query = query.where(Household.village_code == village)
            ids = list(session.scalars(query))
            chosen = random.Random(seed).sample(ids, count)
            households = {
                h.id: h
                for part in _parts(chosen)
                for h in session.scalars(select(Household).where(Household.id.in_(part)))
            }
            members: dict[uuid.UUID, list[Member]] = {}
            for part in _parts(chosen):
                query_members = (
                    select(Member).where(Member.household_id.in_(part)).order_by(Member.id)
                )
                for member in session.scalars(query_members):
                    members.setdefault(member.household_id, []).append(member)
            return [_known(households[hid], members.get(hid, [])) for hid in chosen]
    finally:
        db.dispose()


def _parts(ids: Sequence[uuid.UUID], size: int = 500) -> Iterator[Sequence[uuid.UUID]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _known(household: Household, members: list[Member]) -> KnownHousehold:
    return KnownHousehold(
        id=household.id,
        village_code=household.village_code,
        annual_income=household.annual_income,
        rev=household.rev,
        members=tuple(
            KnownMember(
                id=m.id,
                name=m.name or "",
                birth_date=m.birth_date or date(1970, 1, 1),
                insured=m.insured,
                health=m.health.value if m.health else None,
                employment=m.employment.value if m.employment else None,
            )
            for m in members
        ),
        member_revs=tuple(m.rev for m in members),
    )


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def visit_answers(
    household: KnownHousehold, rng: random.Random, collected_at: datetime
) -> dict[str, Any]:
    """A complete `household_visit` for `household` and all its members: the bundled sample's
    answers with this household's ids, names and birth dates and freshly surveyed values."""
    today = collected_at.date()
    data = copy.deepcopy(SAMPLE)
    income = float(household.annual_income or 20000) * rng.uniform(0.85, 1.25)
    events = rng.choice([["none"], ["none"], ["serious_illness"], ["job_loss", "accident"]])
    assistance = rng.choice([[], ["medical_aid"], ["minimum_allowance", "education_aid"]])
    data.update(
        household_id=str(household.id),
        visit_date=today.isoformat(),
        visit_year=today.year,
        household_size=len(household.members),
        annual_income=round(income / 10) * 10,
        medical_expenditure=rng.choice([0, 800, 2400, 4600]),
        education_expenditure=rng.choice([0, 0, 1200, 3000]),
        food_clothing_ok=rng.random() < 0.97,
        house_safety=rng.choice(["safe", "safe", "safe", "grade_c", "relocated"]),
        water_status=rng.choice(["safe", "safe", "insufficient"]),
        risk_causes=sorted(rng.sample(["illness", "education", "water", "disability"], 2)),
        sudden_events=events,
        assistance_received=assistance,
        house_photo={
            "attachment": "sha256:" + hashlib.sha256(household.id.bytes).hexdigest(),
            "filename": f"house_{today:%Y%m%d}.jpg",
            "content_type": "image/jpeg",
        },
    )
    if events == ["none"]:
        del data["sudden_event_detail"]
    if assistance:
        data["assistance_amount"] = rng.choice([800, 1500, 3200])
    else:
        data.pop("assistance_amount", None)
    members = []
    for member in household.members:
        age = _age(member.birth_date, today)
        answers: dict[str, Any] = {
            "member_id": str(member.id),
            "name": member.name,
            "birth_date": member.birth_date.isoformat(),
            "insured": member.insured if rng.random() < 0.95 else not member.insured,
            "health": member.health or "healthy",
        }
        if 6 <= age <= 15:
            answers["school_status"] = "in_school" if rng.random() < 0.98 else "home_schooling"
        if age >= 16:
            answers["employment"] = (
                member.employment
                if member.employment and rng.random() < 0.8
                else rng.choice(["farming", "in_county", "out_of_province"])
            )
        members.append(answers)
    data["members"] = members
    return data


def base_revs(household: KnownHousehold) -> dict[str, int]:
    """The revisions a tablet saw: it pulled the register before visiting."""
    revs = {f"household/{household.id}": household.rev}
    for member, rev in zip(household.members, household.member_revs, strict=True):
        revs[f"member/{member.id}"] = rev
    return revs


def visit_batches(
    tablet: HttpTablet, households: Sequence[KnownHousehold], batch_size: int, seed: int = 2
) -> list[bytes]:
    """Push bodies of `batch_size` visits each, one visit per household, encoded ahead of time."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies = []
    for start in range(0, len(households), batch_size):
        submissions = [
            tablet.submission(visit_answers(h, rng, now), base_revs(h), now)
            for h in households[start : start + batch_size]
        ]
        bodies.append(tablet.batch_body(submissions))
    return bodies


if __name__ == "__main__":
    print("tablet.py is the HTTP harness of push.py and pull.py; it measures nothing itself.")
