"""Devices belong to users: a device registered by one account cannot be used by another until an
administrator assigns it (API and `fieldsync devices assign`), on both databases."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, select, text

from server import migrate
from server.audit.models import AuditEntry
from server.auth.models import Token
from server.devices.models import Device
from server.users.models import Role
from tests.conftest import PASSWORD, VILLAGE_A1, bearer


def _login(client, username, password=PASSWORD, **extra):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password, **extra}
    )


def _assign(client, token, device_id, body):
    return client.post(f"/api/v1/devices/{device_id}/assign", json=body, headers=bearer(token))


def test_logging_in_with_another_users_device_is_forbidden_and_audited(
    client, create_user_, login, rt
):
    create_user_("li.ming", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("wang.fang", Role.COLLECTOR, [VILLAGE_A1])
    tablet = str(uuid.uuid4())
    li_token = login("li.ming", device_id=tablet)
    refused = _login(client, "wang.fang", device_id=tablet)
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"] == {"device_id": tablet}
    assert "token" not in refused.get_json()
    with rt.db.unit_of_work(write=False) as session:
        tokens = list(session.scalars(select(Token)))
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "device_login_refused")
        ).one()
        device = session.get(Device, uuid.UUID(tablet))
    assert len(tokens) == 1 and tokens[0].device_id == uuid.UUID(tablet)
    assert entry.object_id == tablet and entry.user_id != tokens[0].user_id
    assert device is not None and device.owner_id == tokens[0].user_id
    # The owner keeps working; a wrong password with the device says nothing about its owner.
    assert client.get("/api/v1/auth/me", headers=bearer(li_token)).status_code == 200
    assert _login(client, "wang.fang", "wrong-password", device_id=tablet).status_code == 401


def test_another_users_device_cannot_push_and_revoking_it_spares_the_other_user(
    client, create_user_, login
):
    create_user_("admin", Role.ADMIN)
    create_user_("li.ming", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("wang.fang", Role.COLLECTOR, [VILLAGE_A1])
    tablet = str(uuid.uuid4())
    li_token = login("li.ming", device_id=tablet)
    assert _login(client, "wang.fang", device_id=tablet).status_code == 403
    wang_token = login("wang.fang", device_id=str(uuid.uuid4()))
    revoked = client.post(f"/api/v1/devices/{tablet}/revoke", headers=bearer(login("admin")))
    assert revoked.status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer(li_token)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(wang_token)).status_code == 200


def test_an_admin_assigns_a_device_and_the_old_users_tokens_for_it_stop(
    client, create_user_, login, rt
):
    create_user_("admin", Role.ADMIN)
    create_user_("li.ming")
    create_user_("wang.fang")
    tablet = str(uuid.uuid4())
    li_tablet_token = login("li.ming", device_id=tablet)
    li_other_token = login("li.ming")
    response = _assign(client, login("admin"), tablet, {"username": "wang.fang"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "device_id": tablet,
        "username": "wang.fang",
        "previous_username": "li.ming",
        "revoked_tokens": 1,
    }
    assert client.get("/api/v1/auth/me", headers=bearer(li_tablet_token)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(li_other_token)).status_code == 200
    assert _login(client, "li.ming", device_id=tablet).status_code == 403
    wang_token = login("wang.fang", device_id=tablet)
    me = client.get("/api/v1/auth/me", headers=bearer(wang_token))
    assert me.get_json()["user"]["username"] == "wang.fang"
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "device_assigned")
        ).one()
    assert entry.object_id == tablet
    assert entry.details == {"from": "li.ming", "to": "wang.fang", "revoked_tokens": 1}


def test_a_token_for_a_device_that_now_belongs_to_another_user_stops_working(
    client, create_user_, login, rt
):
    create_user_("li.ming")
    create_user_("wang.fang")
    tablet = str(uuid.uuid4())
    token = login("li.ming", device_id=tablet)
    with rt.db.unit_of_work() as session:
        wang = session.execute(text("SELECT id FROM users WHERE username = 'wang.fang'")).scalar()
        session.get(Device, uuid.UUID(tablet)).owner_id = wang
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert "another user" in response.get_json()["error"]["message"]


def test_only_an_admin_may_assign_a_device(client, create_user_, login):
    create_user_("supervisor", Role.SUPERVISOR, [VILLAGE_A1])
    create_user_("wang.fang")
    tablet = str(uuid.uuid4())
    token = login("supervisor", device_id=tablet)
    response = _assign(client, token, tablet, {"username": "wang.fang"})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200


def test_assigning_an_unknown_device_or_to_an_unknown_user_is_404(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    admin_token = login("admin")
    unknown = _assign(client, admin_token, uuid.uuid4(), {"username": "admin"})
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"
    tablet = str(uuid.uuid4())
    login("admin", device_id=tablet)
    nobody = _assign(client, admin_token, tablet, {"username": "nobody"})
    assert nobody.status_code == 404
    assert nobody.get_json()["error"]["details"] == {"username": "nobody"}


def test_an_assignment_body_must_name_a_username(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    admin_token = login("admin")
    for body in ({}, {"username": 5}, {"username": "x", "extra": 1}, {"username": "a" * 65}):
        response = _assign(client, admin_token, uuid.uuid4(), body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["code"] == "validation_error"


def test_fieldsync_devices_assign(client, create_user_, login, cli, rt):
    create_user_("li.ming")
    create_user_("wang.fang")
    tablet = str(uuid.uuid4())
    token = login("li.ming", device_id=tablet)
    result = cli("devices", "assign", tablet, "wang.fang")
    assert result.exit_code == 0, result.output
    assert f"device {tablet} now belongs to wang.fang" in result.output
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    assert _login(client, "wang.fang", device_id=tablet).status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "device_assigned")
        ).one()
    assert entry.user_id is None
    unknown = cli("devices", "assign", str(uuid.uuid4()), "wang.fang")
    assert unknown.exit_code == 1 and "no such device" in unknown.output


def test_devices_registered_before_owners_existed_belong_to_who_registered_them(db_url):
    migrate.downgrade(db_url, "0006")
    engine = create_engine(db_url)
    device_id = uuid.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (username, display_name, password_hash, role, is_active,"
                    " created_at) VALUES ('li.ming', '', 'x', 'collector', true, '2026-12-01')"
                )
            )
            user_id = conn.execute(text("SELECT id FROM users")).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO devices (id, label, registered_by_id, registered_at,"
                    " highest_seq) VALUES (:id, '', :user, '2026-12-01', 0)"
                ),
                {
                    "id": device_id.hex if db_url.startswith("sqlite") else device_id,
                    "user": user_id,
                },
            )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            owner = conn.execute(text("SELECT owner_id FROM devices")).scalar_one()
        assert owner == user_id
    finally:
        engine.dispose()


def test_a_device_reassigned_between_a_pushs_checks_and_its_write_writes_nothing(
    client, create_user_, rt
):
    """The token is checked, then the batch planned, then written under the device's lock: a
    reassignment committed in between must stop the write, not let it pass as the old owner."""
    from server.auth.actor import system_actor
    from server.auth.service import actor_for_token, assign_device
    from server.db import utcnow
    from server.errors import Forbidden
    from server.submissions.models import Submission
    from server.sync.push import accept_push, plan_push
    from sync_protocol.messages import PushRequestSchema
    from tests.sync.helpers import Tablet, visit

    create_user_("li.ming", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("wang.fang", Role.COLLECTOR, [VILLAGE_A1])
    tablet = Tablet.login(client, "li.ming")
    body = {
        "device_id": tablet.device_id,
        "batch_id": str(uuid.uuid4()),
        "clock": str(tablet.clock.now()),
        "submissions": [tablet.submission(visit(annual_income=1234))],
    }
    batch = PushRequestSchema(max_submissions=10).load(body)
    now = utcnow()
    with rt.db.unit_of_work(write=False) as session:
        actor = actor_for_token(session, tablet.token, address="127.0.0.1")
        plan = plan_push(session, actor, rt.settings, batch, now=now)
    with rt.db.unit_of_work() as session:
        assign_device(session, system_actor(), uuid.UUID(tablet.device_id), "wang.fang")
    refused = None
    try:
        with rt.db.unit_of_work() as session:
            accept_push(session, actor, rt.settings, rt.codec, rt.clock, plan, now=now)
    except Forbidden as exc:
        refused = exc
    assert refused is not None and refused.details == {"device_id": tablet.device_id}
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalars(select(Submission)).first() is None


def test_fieldsync_devices_assign_of_a_revoked_device_says_it_stays_revoked(
    client, create_user_, login, cli
):
    # Assigning does not undo a revocation (a tablet reported stolen stays refused): the
    # command must not let an administrator believe the new owner can now log in with it.
    create_user_("admin", Role.ADMIN)
    create_user_("li.ming")
    create_user_("wang.fang")
    tablet = str(uuid.uuid4())
    login("li.ming", device_id=tablet)
    revoked = client.post(f"/api/v1/devices/{tablet}/revoke", headers=bearer(login("admin")))
    assert revoked.status_code == 200
    result = cli("devices", "assign", tablet, "wang.fang")
    assert result.exit_code == 0, result.output
    assert "(was li.ming; 0 tokens revoked)" in result.output
    assert "still revoked: no one can log in with it" in result.output
    assert _login(client, "wang.fang", device_id=tablet).status_code == 403
    single = str(uuid.uuid4())
    login("li.ming", device_id=single)
    once = cli("devices", "assign", single, "wang.fang")
    assert "(was li.ming; 1 token revoked)" in once.output
    assert "still revoked" not in once.output


def test_fieldsync_devices_list_says_whose_each_tablet_is(client, create_user_, login, cli):
    create_user_("admin", Role.ADMIN)
    create_user_("li.ming")
    create_user_("wang.fang")
    assert cli("devices", "list").output.strip() == "no devices"
    li_tablet, wang_tablet = str(uuid.uuid4()), str(uuid.uuid4())
    login("li.ming", device_id=li_tablet)
    login("wang.fang", device_id=wang_tablet)
    admin = login("admin")
    assert client.post(
        f"/api/v1/devices/{wang_tablet}/revoke", headers=bearer(admin)
    ).status_code in (200, 204)
    listed = cli("devices", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 2
    li_line, wang_line = lines
    assert li_line.startswith(f"{li_tablet}  li.ming  last seen ") and "revoked" not in li_line
    assert wang_line.startswith(f"{wang_tablet}  wang.fang  ") and " revoked " in wang_line
    only = cli("devices", "list", "--user", "li.ming")
    assert only.output.splitlines() == [li_line]
    assert cli("devices", "list", "--user", "nobody").output.strip() == "no devices of nobody"
