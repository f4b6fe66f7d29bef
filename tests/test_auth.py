"""Login, tokens, devices and the login rate limit, through the real WSGI app on both databases.
(Throttling in depth: test_login_throttle.py; device owners: test_device_owners.py.)"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from server.audit.models import AuditEntry
from server.auth.models import LoginThrottle, Token
from server.db import utcnow
from server.devices.models import Device
from server.users.models import Role
from server.users.service import disable_user
from tests.conftest import PASSWORD, VILLAGE_A1, VILLAGE_A2, bearer


def _login(client, username, password=PASSWORD, **extra):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password, **extra}
    )


def test_login_returns_token_expiry_and_the_users_role_and_regions(client, create_user_, rt):
    create_user_("li.ming", Role.COLLECTOR, [VILLAGE_A2, VILLAGE_A1])
    response = _login(client, "li.ming")
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["token"]) >= 32
    assert body["user"] == {
        "username": "li.ming",
        "role": "collector",
        "regions": sorted([VILLAGE_A1, VILLAGE_A2]),
    }
    # The token is stored only as a hash.
    with rt.db.unit_of_work(write=False) as session:
        hashes = list(session.scalars(select(Token.token_hash)))
    assert body["token"] not in hashes and len(hashes) == 1


def test_token_expiry_is_the_configured_lifetime(client, create_user_, rt):
    create_user_("li.ming")
    body = _login(client, "li.ming").get_json()
    from datetime import datetime

    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.tzinfo is not None
    lifetime = (expires - utcnow()).total_seconds()
    assert rt.settings.token_ttl - 60 < lifetime <= rt.settings.token_ttl


@pytest.mark.parametrize("username,password", [("li.ming", "wrong-password"), ("nobody", PASSWORD)])
def test_wrong_password_or_unknown_user_is_401_with_the_error_shape(
    client, create_user_, username, password
):
    create_user_("li.ming")
    response = _login(client, username, password)
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "unauthorized"
    assert set(error) == {"code", "message", "details"}
    assert "token" not in response.get_json()


def test_disabled_user_cannot_log_in_and_loses_existing_tokens(client, create_user_, login, rt):
    create_user_("li.ming")
    token = login("li.ming")
    with rt.db.unit_of_work() as session:
        disable_user(session, "li.ming")
    assert _login(client, "li.ming").status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401


def test_me_requires_a_valid_bearer_token(client, create_user_, login):
    create_user_("li.ming")
    token = login("li.ming")
    assert (
        client.get("/api/v1/auth/me", headers=bearer(token)).get_json()["user"]["username"]
        == "li.ming"
    )
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        bearer("not-a-real-token"),
    ):
        response = client.get("/api/v1/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_expired_token_is_refused(client, create_user_, login, rt):
    create_user_("li.ming")
    token = login("li.ming")
    with rt.db.unit_of_work() as session:
        session.execute(update(Token).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]["message"]


def test_logout_revokes_only_the_token_used(client, create_user_, login):
    create_user_("li.ming")
    first, second = login("li.ming"), login("li.ming")
    assert client.post("/api/v1/auth/logout", headers=bearer(first)).status_code == 204
    assert client.get("/api/v1/auth/me", headers=bearer(first)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(second)).status_code == 200


def test_login_with_device_id_registers_the_device_and_binds_the_token(client, create_user_, rt):
    create_user_("li.ming")
    device_id = str(uuid.uuid4())
    assert _login(client, "li.ming", device_id=device_id).status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        device = session.get(Device, uuid.UUID(device_id))
        token = session.scalars(select(Token)).one()
        registered = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "device_registered")
        ).one()
    assert device is not None and device.revoked_at is None
    assert token.device_id == uuid.UUID(device_id)
    assert registered.object_id == device_id


def test_admin_revoking_a_device_ends_its_tokens_and_blocks_its_logins(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    create_user_("li.ming")
    device_id = str(uuid.uuid4())
    tablet_token = login("li.ming", device_id=device_id)
    other_token = login("li.ming")
    admin_token = login("admin")
    response = client.post(f"/api/v1/devices/{device_id}/revoke", headers=bearer(admin_token))
    assert response.status_code == 200 and response.get_json()["revoked_at"]
    assert client.get("/api/v1/auth/me", headers=bearer(tablet_token)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(other_token)).status_code == 200
    again = _login(client, "li.ming", device_id=device_id)
    assert again.status_code == 403 and again.get_json()["error"]["code"] == "forbidden"


def test_only_an_admin_may_revoke_a_device(client, create_user_, login):
    create_user_("supervisor", Role.SUPERVISOR, [VILLAGE_A1])
    device_id = str(uuid.uuid4())
    token = login("supervisor", device_id=device_id)
    response = client.post(f"/api/v1/devices/{device_id}/revoke", headers=bearer(token))
    assert response.status_code == 403
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200


def test_revoking_an_unknown_device_is_404(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    response = client.post(f"/api/v1/devices/{uuid.uuid4()}/revoke", headers=bearer(login("admin")))
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_repeated_failures_for_one_user_are_rate_limited_with_retry_after(client, create_user_, rt):
    create_user_("li.ming")
    limit = rt.settings.login_max_failures_per_user
    for _ in range(limit):
        assert _login(client, "li.ming", "wrong-password").status_code == 401
    limited = _login(client, "li.ming")  # even the right password waits
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 0 < retry_after <= rt.settings.login_window
    assert limited.get_json()["error"]["details"]["retry_after"] == retry_after
    # Another user from the same address is not affected by this user's failures.
    create_user_("wang.fang")
    assert _login(client, "wang.fang").status_code == 200


def test_rate_limit_lifts_when_the_wait_is_over(client, create_user_, rt):
    create_user_("li.ming")
    for _ in range(rt.settings.login_max_failures_per_user):
        _login(client, "li.ming", "wrong-password")
    assert _login(client, "li.ming").status_code == 429
    with rt.db.unit_of_work() as session:
        session.execute(update(LoginThrottle).values(blocked_until=utcnow() - timedelta(seconds=1)))
    assert _login(client, "li.ming").status_code == 200


def test_login_validation_errors_list_each_bad_field(client):
    response = client.post("/api/v1/auth/login", json={"username": 5, "device_id": "not-a-uuid"})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    paths = {item["path"] for item in error["details"]["errors"]}
    assert {"username", "password", "device_id"} <= paths
    assert all({"path", "code", "message"} <= set(item) for item in error["details"]["errors"])
