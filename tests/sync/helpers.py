"""Building blocks for sync tests: a register with the bundled forms and two villages' households,
tablets (device-bound tokens) and household-visit submissions made from the bundled sample."""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from forms.bundled import load_sample_answers
from server.auth.actor import system_actor
from server.changes.models import Change
from server.devices.models import Device
from server.forms.library import install_bundled_forms
from server.households.loading import NewHousehold, load_households
from server.runtime import Runtime
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import User
from sync_protocol.clock import HybridClock
from tests.conftest import PASSWORD, VILLAGE_A1, VILLAGE_B1, bearer

SAMPLE = load_sample_answers("household_visit")
HOUSEHOLD_A = uuid.UUID(str(SAMPLE["household_id"]))
MEMBERS_A = [uuid.UUID(m["member_id"]) for m in SAMPLE["members"]]  # type: ignore[attr-defined]
HOUSEHOLD_B = uuid.UUID("7e2d3b5f-9c1e-4d4f-8b62-3e8f9a012b01")
MEMBER_B = uuid.UUID("b4f6d8ea-2c3a-4b7d-9f1e-4a6b8c0d2e01")


def field_changes(session: Session, entity_id: uuid.UUID, field_name: str) -> list[Change]:
    """The change-log rows of an entity that wrote `field_name`, oldest first."""
    rows = session.scalars(select(Change).where(Change.entity_id == entity_id).order_by(Change.seq))
    return [row for row in rows if field_name in row.fields]


def store_accepted_submission(
    rt: Runtime,
    username: str,
    village: str | None,
    *,
    hlc: str,
    collected_at: datetime | None = None,
    received_at: datetime | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """Store an accepted `household_visit` submission by `username` from a new device, as push
    would have kept it (empty answers). Returns (instance id, device id)."""
    instance_id, device_id = uuid.uuid4(), uuid.uuid4()
    times = {"collected_at": collected_at, "received_at": received_at}
    with rt.db.unit_of_work() as session:
        user_id = session.scalars(select(User.id).where(User.username == username)).one()
        session.add(Device(id=device_id, registered_by_id=user_id))
        session.flush()
        session.add(
            Submission(
                instance_id=instance_id,
                batch_id=uuid.uuid4(),
                device_id=device_id,
                user_id=user_id,
                form_id="household_visit",
                form_version=1,
                hlc=hlc,
                payload={},
                content_hash="0" * 64,
                status=SubmissionStatus.ACCEPTED,
                village_code=village,
                **{name: value for name, value in times.items() if value is not None},
            )
        )
    return instance_id, device_id


def load_register(rt: Runtime) -> None:
    """Bundled forms published; household A (3 members) in village A1, household B in B1."""
    members = [
        (
            MEMBERS_A[0],
            {
                "name": "黄志强",
                "relation": "head",
                "sex": "male",
                "birth_date": "1978-03-12",
                "id_number": "990102197803120011",
            },
        ),
        (
            MEMBERS_A[1],
            {"name": "覃美兰", "relation": "spouse", "sex": "female", "birth_date": "1980-05-21"},
        ),
        (
            MEMBERS_A[2],
            {"name": "黄小雨", "relation": "child", "sex": "female", "birth_date": "2012-09-15"},
        ),
    ]
    households = [
        NewHousehold(
            HOUSEHOLD_A,
            {
                "village_code": VILLAGE_A1,
                "household_no": "A-001",
                "category": "lifted",
                "head_member_id": str(MEMBERS_A[0]),
                "annual_income": 18000,
            },
            members,
        ),
        NewHousehold(
            HOUSEHOLD_B,
            {
                "village_code": VILLAGE_B1,
                "household_no": "B-001",
                "category": "ordinary",
                "head_member_id": str(MEMBER_B),
            },
            [(MEMBER_B, {"name": "李国庆", "relation": "head", "sex": "male"})],
        ),
    ]
    stamp = f"{int(time.time() * 1000) - 60_000:013d}-00000-server"
    with rt.db.unit_of_work() as session:
        install_bundled_forms(session, system_actor())
        load_households(session, rt.codec, households, clock=stamp)


@dataclass
class Tablet:
    """A device with its own clock and sequence, pushing through the real app."""

    client: FlaskClient
    token: str
    device_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    seq: int = 0
    clock: HybridClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = HybridClock(self.device_id)

    @classmethod
    def login(cls, client: FlaskClient, username: str) -> Tablet:
        device_id = str(uuid.uuid4())
        response = client.post(
            "/api/v1/auth/login",
            json={"username": username, "password": PASSWORD, "device_id": device_id},
        )
        assert response.status_code == 200, response.get_json()
        return cls(client, response.get_json()["token"], device_id)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def submission(
        self,
        data: dict[str, Any],
        *,
        form_id: str = "household_visit",
        version: int = 1,
        base_revs: dict[str, int] | None = None,
        hlc: str | None = None,
    ) -> dict[str, Any]:
        self.seq += 1
        return {
            "instance_id": str(uuid.uuid4()),
            "form_id": form_id,
            "form_version": version,
            "collected_at": "2026-11-20T08:15:00+08:00",
            "hlc": hlc or str(self.clock.now()),
            "device_seq": self.seq,
            "base_revs": base_revs or {},
            "data": data,
        }

    def push(self, submissions: list[dict[str, Any]], batch_id: str | None = None) -> Any:
        body = {
            "device_id": self.device_id,
            "batch_id": batch_id or str(uuid.uuid4()),
            "clock": str(self.clock.now()),
            "submissions": submissions,
        }
        return self.client.post("/api/v1/sync/push", json=body, headers=self.headers)

    def pull_all(
        self, cursor: str | None = None, limit: int = 1000
    ) -> tuple[list[Any], list[Any], str]:
        entities: list[Any] = []
        removed: list[Any] = []
        while True:
            query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            response = self.client.get(f"/api/v1/sync/pull{query}", headers=self.headers)
            assert response.status_code == 200, response.get_json()
            page = response.get_json()
            entities += page["entities"]
            removed += page["removed"]
            cursor = page["cursor"]
            if not page["more"]:
                return entities, removed, cursor


def visit(
    household_id: uuid.UUID = HOUSEHOLD_A,
    *,
    annual_income: float = 19800,
    members: list[dict[str, Any]] | None = None,
    **answers: Any,
) -> dict[str, Any]:
    """The bundled sample visit, for `household_id`, with the given answers changed."""
    data = copy.deepcopy(SAMPLE)
    data["household_id"] = str(household_id)
    data["annual_income"] = annual_income
    if members is not None:
        data["members"] = members
    data.update(answers)
    return data
