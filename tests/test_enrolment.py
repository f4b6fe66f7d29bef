"""Tablet enrolment by QR code: an administrator (or a supervisor, for a collector in their
regions) makes a one-time, expiring, revocable code, kept hashed; the tablet redeems it once with
`POST /api/v1/auth/enrol` for a token bound to the device, registered to that user. A second
redeem, an expired or a revoked code get clear 4xx answers; of concurrent redeems exactly one wins
(PostgreSQL, threads). On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from server.app import create_app
from server.audit.models import AuditEntry
from server.auth.models import Token
from server.db import utcnow
from server.devices.enrolment import qr_payload, qr_svg
from server.devices.models import Device, DeviceEnrolment
from server.users.models import Role, User
from tests.conftest import TOWNSHIP_A, VILLAGE_A1, VILLAGE_B1, bearer


@pytest.fixture
def tokens(create_user_, login, regions):
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col.a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col.b1", Role.COLLECTOR, [VILLAGE_B1])
    return {name: login(name) for name in ("admin", "sup.a", "col.a1")}


def _create(client, token, **body):
    return client.post("/api/v1/devices/enrolments", json=body, headers=bearer(token))


def _enrol(client, code, device_id=None, **extra):
    body = {"code": code, "device_id": device_id or str(uuid.uuid4()), **extra}
    return client.post("/api/v1/auth/enrol", json=body)


def _audits(rt, action):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        ).all()


def test_an_enrolment_code_is_shown_once_and_kept_only_hashed(client, rt, tokens):
    made = _create(client, tokens["admin"], username="col.a1", label="青石镇 tablet 3")
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    code, enrolment = body["code"], body["enrolment"]
    assert len(code) >= 32
    assert enrolment["username"] == "col.a1" and enrolment["status"] == "pending"
    assert enrolment["created_by"] == "admin" and enrolment["label"] == "青石镇 tablet 3"
    payload = json.loads(body["qr_payload"])
    assert payload == {
        "type": "fieldsync-enrolment",
        "version": 1,
        "server": "http://localhost",
        "code": code,
    }
    assert body["qr_svg"] == f"/api/v1/devices/enrolments/{enrolment['id']}/qr.svg"
    with rt.db.unit_of_work(write=False) as session:
        row = session.get(DeviceEnrolment, uuid.UUID(enrolment["id"]))
    assert row.code_hash == hashlib.sha256(code.encode()).hexdigest()
    assert code not in (row.code_cipher or "")
    lifetime = row.expires_at - row.created_at
    assert lifetime == timedelta(seconds=rt.settings.enrolment_ttl) == timedelta(hours=24)
    # The listing never shows the code.
    listed = client.get("/api/v1/devices/enrolments", headers=bearer(tokens["admin"]))
    assert code not in listed.get_data(as_text=True)
    assert [e["id"] for e in listed.get_json()["enrolments"]] == [enrolment["id"]]
    [entry] = _audits(rt, "enrolment_created")
    assert entry.object_id == enrolment["id"] and entry.details["username"] == "col.a1"
    assert code not in str(entry.details)


def test_the_qr_code_draws_the_payload_until_the_code_is_used(client, rt, tokens):
    body = _create(client, tokens["sup.a"], username="col.a1").get_json()
    url = body["qr_svg"]
    picture = client.get(url, headers=bearer(tokens["sup.a"]))
    assert picture.status_code == 200
    assert picture.mimetype == "image/svg+xml"
    assert picture.headers["Cache-Control"] == "no-store"
    assert picture.get_data(as_text=True) == qr_svg(qr_payload("http://localhost", body["code"]))
    assert picture.get_data(as_text=True).startswith("<svg")
    assert len(_audits(rt, "enrolment_qr_shown")) == 1
    assert client.get(url, headers=bearer(tokens["col.a1"])).status_code == 403
    assert _enrol(client, body["code"]).status_code == 200
    gone = client.get(url, headers=bearer(tokens["sup.a"]))
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "gone"
    missing = client.get(
        f"/api/v1/devices/enrolments/{uuid.uuid4()}/qr.svg", headers=bearer(tokens["admin"])
    )
    assert missing.status_code == 404


def test_redeeming_answers_a_login_bound_to_the_device_registered_to_the_user(client, rt, tokens):
    code = _create(client, tokens["admin"], username="col.a1", label="t3").get_json()["code"]
    device_id = str(uuid.uuid4())
    redeemed = _enrol(client, code, device_id, label="tablet 3")
    assert redeemed.status_code == 200, redeemed.get_json()
    body = redeemed.get_json()
    assert set(body) == {"token", "expires_at", "user"}
    assert body["user"] == {"username": "col.a1", "role": "collector", "regions": [VILLAGE_A1]}
    me = client.get("/api/v1/auth/me", headers=bearer(body["token"]))
    assert me.status_code == 200 and me.get_json()["user"]["username"] == "col.a1"
    with rt.db.unit_of_work(write=False) as session:
        owner = session.scalars(select(User.id).where(User.username == "col.a1")).one()
        device = session.get(Device, uuid.UUID(device_id))
        token_devices = session.scalars(
            select(Token.device_id).where(Token.user_id == owner, Token.device_id.is_not(None))
        ).all()
        row = session.scalars(select(DeviceEnrolment)).one()
    assert device.owner_id == owner and device.label == "tablet 3"
    assert token_devices == [uuid.UUID(device_id)]
    assert row.device_id == uuid.UUID(device_id) and row.code_cipher is None
    [entry] = _audits(rt, "device_enrolled")
    assert entry.user_id == owner and entry.details["device_id"] == device_id
    # The tablet logs in with its password later as usual: the device is its own.
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "col.a1", "password": "correct-horse-battery", "device_id": device_id},
    )
    assert login.status_code == 200
    # Revoking the device ends the enrolled token too.
    client.post(f"/api/v1/devices/{device_id}/revoke", headers=bearer(tokens["admin"]))
    assert client.get("/api/v1/auth/me", headers=bearer(body["token"])).status_code == 401


def test_a_code_works_once_and_never_when_revoked_expired_or_unknown(client, rt, tokens):
    admin = tokens["admin"]
    used = _create(client, admin, username="col.a1").get_json()["code"]
    assert _enrol(client, used).status_code == 200
    again = _enrol(client, used)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    assert again.get_json()["error"]["details"]["status"] == "redeemed"

    revoked = _create(client, admin, username="col.a1").get_json()
    answer = client.post(
        f"/api/v1/devices/enrolments/{revoked['enrolment']['id']}/revoke", headers=bearer(admin)
    )
    assert answer.status_code == 200 and answer.get_json()["status"] == "revoked"
    refused = _enrol(client, revoked["code"])
    assert refused.status_code == 410 and refused.get_json()["error"]["details"]["status"] == (
        "revoked"
    )

    expired = _create(client, admin, username="col.a1", expires_in=300).get_json()
    with rt.db.unit_of_work() as session:
        session.execute(
            update(DeviceEnrolment)
            .where(DeviceEnrolment.id == uuid.UUID(expired["enrolment"]["id"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    late = _enrol(client, expired["code"])
    assert late.status_code == 410 and late.get_json()["error"]["details"]["status"] == "expired"

    unknown = _enrol(client, "not-a-code-anyone-made")
    assert unknown.status_code == 401 and unknown.get_json()["error"]["code"] == "unauthorized"
    statuses = {
        e["status"]
        for e in client.get("/api/v1/devices/enrolments", headers=bearer(admin)).get_json()[
            "enrolments"
        ]
    }
    assert statuses == {"redeemed", "revoked", "expired"}
    pending = client.get(
        "/api/v1/devices/enrolments", query_string={"status": "pending"}, headers=bearer(admin)
    )
    assert pending.get_json()["enrolments"] == []
    # A used code cannot be revoked (the device can).
    [redeemed] = client.get(
        "/api/v1/devices/enrolments", query_string={"status": "redeemed"}, headers=bearer(admin)
    ).get_json()["enrolments"]
    conflict = client.post(
        f"/api/v1/devices/enrolments/{redeemed['id']}/revoke", headers=bearer(admin)
    )
    assert conflict.status_code == 409
    assert [e.object_id for e in _audits(rt, "enrolment_revoked")] == [revoked["enrolment"]["id"]]


def test_a_refused_device_leaves_the_code_usable(client, rt, tokens, login):
    code = _create(client, tokens["admin"], username="col.a1").get_json()["code"]
    others = str(uuid.uuid4())
    login("col.b1", device_id=others)
    taken = _enrol(client, code, others)
    assert taken.status_code == 403 and taken.get_json()["error"]["details"] == {
        "device_id": others
    }
    assert _enrol(client, code).status_code == 200


def test_supervisors_enrol_only_collectors_in_their_regions(client, tokens):
    assert _create(client, tokens["sup.a"], username="col.a1").status_code == 201
    for username in ("col.b1", "admin", "sup.a"):
        refused = _create(client, tokens["sup.a"], username=username)
        assert refused.status_code == 403, username
    assert _create(client, tokens["col.a1"], username="col.a1").status_code == 403
    assert _create(client, tokens["admin"], username="nobody").status_code == 404
    # The supervisor's listing holds only their collectors' codes.
    _create(client, tokens["admin"], username="col.b1")
    theirs = client.get("/api/v1/devices/enrolments", headers=bearer(tokens["sup.a"]))
    assert [e["username"] for e in theirs.get_json()["enrolments"]] == ["col.a1"]


def test_bad_requests_are_422_naming_the_field(client, tokens):
    for body, path in (
        ({"username": "col.a1", "expires_in": 10}, "expires_in"),
        ({"username": "col.a1", "expires_in": "1h"}, "expires_in"),
        ({}, "username"),
        ({"username": "col.a1", "colour": "red"}, "colour"),
    ):
        answer = _create(client, tokens["admin"], **body)
        assert answer.status_code == 422, body
        assert [e["path"] for e in answer.get_json()["error"]["details"]["errors"]] == [path]
    for body, path in (
        ({"code": "x", "device_id": "tablet-3"}, "device_id"),
        ({"device_id": str(uuid.uuid4())}, "code"),
    ):
        answer = client.post("/api/v1/auth/enrol", json=body)
        assert answer.status_code == 422, body
        assert [e["path"] for e in answer.get_json()["error"]["details"]["errors"]] == [path]
    broken = client.post("/api/v1/auth/enrol", data="{", content_type="application/json")
    assert broken.status_code == 400


@pytest.mark.postgres_only
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_redeems_of_one_code_let_exactly_one_through(app, rt, tokens):
    code = _create(app.test_client(), tokens["admin"], username="col.a1").get_json()["code"]
    workers = 6
    start = threading.Barrier(workers)
    statuses: list[int] = []

    def attempt() -> None:
        client = app.test_client()
        start.wait()
        statuses.append(_enrol(client, code).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * (workers - 1)
    with rt.db.unit_of_work(write=False) as session:
        devices = session.scalars(select(Device.id)).all()
        bound = session.scalars(select(Token.device_id).where(Token.device_id.is_not(None))).all()
    assert len(devices) == 1 and bound == devices


def test_disabling_a_user_revokes_their_unused_codes_for_good(client, tokens):
    admin = tokens["admin"]
    code = _create(client, admin, username="col.a1").get_json()["code"]
    assert client.post("/api/v1/users/col.a1/disable", headers=bearer(admin)).status_code == 200
    assert client.post("/api/v1/users/col.a1/enable", headers=bearer(admin)).status_code == 200
    refused = _enrol(client, code)
    assert refused.status_code == 410
    assert refused.get_json()["error"]["details"]["status"] == "revoked"


def test_the_qr_code_names_the_public_url_when_one_is_set(settings, tokens):
    public = create_app(settings.replace(public_url="https://fieldsync.example.org"))
    try:
        made = _create(public.test_client(), tokens["admin"], username="col.a1").get_json()
    finally:
        public.extensions["fieldsync"].db.dispose()
    assert json.loads(made["qr_payload"])["server"] == "https://fieldsync.example.org"
