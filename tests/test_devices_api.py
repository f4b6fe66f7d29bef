"""The devices page over HTTP (`GET /api/v1/devices`, `POST /api/v1/devices/{id}/revoke`):
administrators see every tablet, supervisors those of collectors in their regions, each with its
owner, last push, the device_seq numbers never received and its open conflicts; revoking ends the
tablet's tokens and is audited — on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from server.audit.models import AuditEntry
from server.auth.actor import system_actor
from server.conflicts.models import Conflict, ConflictStatus
from server.db import utcnow
from server.devices.listing import DeviceFilters, list_device_views
from server.devices.models import Device, DeviceSequenceGap
from server.users.models import Role, User
from tests.conftest import LOAD_CLOCK, TOWNSHIP_A, VILLAGE_A1, VILLAGE_B1, bearer
from tests.sync.helpers import store_accepted_submission


@pytest.fixture
def setup(rt, create_user_, login, village_households):
    """Admin, a township-A supervisor, collectors in A1 and B1, each collector with a tablet
    that sent one submission (`devices`: username → device id)."""
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col.a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col.b1", Role.COLLECTOR, [VILLAGE_B1])
    # A collector working in both townships is no single township supervisor's.
    create_user_("col.ab", Role.COLLECTOR, [VILLAGE_A1, VILLAGE_B1])
    received = utcnow().replace(microsecond=0) - timedelta(hours=2)
    submissions, devices = {}, {}
    for name, village in (("col.a1", VILLAGE_A1), ("col.b1", VILLAGE_B1), ("col.ab", VILLAGE_A1)):
        submissions[name], devices[name] = store_accepted_submission(
            rt, name, village, hlc=LOAD_CLOCK, received_at=received
        )
    tokens = {name: login(name) for name in ("admin", "sup.a", "col.a1")}
    return {
        "tokens": tokens,
        "devices": devices,
        "submissions": submissions,
        "received": received,
        "households": village_households,
    }


def _list(client, token, **args):
    return client.get("/api/v1/devices", query_string=args, headers=bearer(token))


def _conflict(rt, household_id, winner, loser, status=ConflictStatus.OPEN):
    with rt.db.unit_of_work() as session:
        session.add(
            Conflict(
                id=uuid.uuid4(),
                entity_type="household",
                entity_id=household_id,
                field="per_capita_income",
                village_code=VILLAGE_A1,
                winner_value=1,
                winner_clock=LOAD_CLOCK,
                winner_submission_id=winner,
                loser_value=2,
                loser_clock=LOAD_CLOCK,
                loser_submission_id=loser,
                status=status,
            )
        )


def test_admins_see_every_tablet_supervisors_those_of_their_collectors(client, setup):
    tokens, devices = setup["tokens"], setup["devices"]
    everyone = _list(client, tokens["admin"])
    assert everyone.status_code == 200
    assert [d["owner"] for d in everyone.get_json()["devices"]] == ["col.a1", "col.ab", "col.b1"]
    township = _list(client, tokens["sup.a"]).get_json()["devices"]
    assert [d["device_id"] for d in township] == [str(devices["col.a1"])]
    refused = _list(client, tokens["col.a1"])
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    one = _list(client, tokens["admin"], owner="col.b1").get_json()["devices"]
    assert [d["device_id"] for d in one] == [str(devices["col.b1"])]
    bad = _list(client, tokens["admin"], revoked="maybe")
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"]["errors"][0]["path"] == "revoked"


def test_a_tablet_shows_its_last_push_missing_numbers_and_open_conflicts(client, rt, setup):
    device_id = setup["devices"]["col.a1"]
    mine, other = setup["submissions"]["col.a1"], setup["submissions"]["col.ab"]
    household = setup["households"][VILLAGE_A1]["household"]
    with rt.db.unit_of_work() as session:
        session.get(Device, device_id).highest_seq = 40
        session.add_all(
            [
                DeviceSequenceGap(device_id=device_id, first_seq=3, last_seq=5),
                DeviceSequenceGap(device_id=device_id, first_seq=9, last_seq=9),
            ]
        )
    _conflict(rt, household, winner=mine, loser=other)  # this tablet's value won
    _conflict(rt, household, winner=other, loser=mine)  # this tablet's value lost
    _conflict(rt, household, winner=mine, loser=mine)  # both sides its own: counted once
    _conflict(rt, household, winner=other, loser=mine, status=ConflictStatus.RESOLVED)
    [device] = _list(client, setup["tokens"]["admin"], owner="col.a1").get_json()["devices"]
    assert device["highest_seq"] == 40
    assert device["missing"] == 4
    assert [(g["first_seq"], g["last_seq"]) for g in device["gaps"]] == [(3, 5), (9, 9)]
    assert device["open_conflicts"] == 3
    assert device["last_push_at"] == setup["received"].isoformat()
    assert device["revoked_at"] is None and device["registered_at"]
    [other_device] = _list(client, setup["tokens"]["admin"], owner="col.ab").get_json()["devices"]
    assert other_device["open_conflicts"] == 2 and other_device["missing"] == 0


def test_revoking_a_tablet_ends_its_tokens_within_the_callers_scope(client, rt, setup, login):
    tokens, devices = setup["tokens"], setup["devices"]
    tablet_token = login("col.a1", device_id=str(devices["col.a1"]))
    outside = client.post(
        f"/api/v1/devices/{devices['col.b1']}/revoke", headers=bearer(tokens["sup.a"])
    )
    assert outside.status_code == 403
    shared = client.post(
        f"/api/v1/devices/{devices['col.ab']}/revoke", headers=bearer(tokens["sup.a"])
    )
    assert shared.status_code == 403
    by_collector = client.post(
        f"/api/v1/devices/{devices['col.a1']}/revoke", headers=bearer(tokens["col.a1"])
    )
    assert by_collector.status_code == 403
    missing = client.post(f"/api/v1/devices/{uuid.uuid4()}/revoke", headers=bearer(tokens["sup.a"]))
    assert missing.status_code == 404
    revoked = client.post(
        f"/api/v1/devices/{devices['col.a1']}/revoke", headers=bearer(tokens["sup.a"])
    )
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    assert client.get("/api/v1/auth/me", headers=bearer(tablet_token)).status_code == 401
    # The collector's token without a device goes on working.
    assert client.get("/api/v1/auth/me", headers=bearer(tokens["col.a1"])).status_code == 200
    listed = _list(client, tokens["admin"], revoked="true").get_json()["devices"]
    assert [d["device_id"] for d in listed] == [str(devices["col.a1"])]
    with rt.db.unit_of_work(write=False) as session:
        supervisor = session.scalars(select(User.id).where(User.username == "sup.a")).one()
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "device_revoked")
        ).all()
    assert [(e.object_id, e.user_id) for e in entries] == [(str(devices["col.a1"]), supervisor)]


def test_the_listing_costs_the_same_statements_for_one_tablet_or_many(rt, setup):
    def statements(limit):
        seen: list[str] = []

        def listener(*args):
            seen.append(args[2])

        event.listen(rt.db.engine, "before_cursor_execute", listener)
        try:
            with rt.db.unit_of_work(write=False) as session:
                page = list_device_views(session, system_actor(), DeviceFilters(limit=limit))
        finally:
            event.remove(rt.db.engine, "before_cursor_execute", listener)
        assert len(page.devices) == min(limit, 3)
        return len(seen)

    assert statements(1) == statements(100) <= 5
