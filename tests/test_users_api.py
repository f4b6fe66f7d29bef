"""Managing users over HTTP (administrators): list and filter, create with the password policy,
grant and revoke regions, reset a password, disable and enable — each change audited with who did
it, never a password or its hash in an answer — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.users.models import Role, User
from tests.conftest import PASSWORD, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, VILLAGE_B1, bearer

NEW_PASSWORD = "a-new-long-password"


@pytest.fixture
def admin(create_user_, login, regions):
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col.a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col.b1", Role.COLLECTOR, [VILLAGE_B1])
    return login("admin")


def _audit(rt, action):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        ).all()


def _admin_id(rt):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(select(User.id).where(User.username == "admin")).one()


def test_admins_list_users_by_role_region_and_activity_without_password_hashes(client, admin):
    def names(**args):
        response = client.get("/api/v1/users", query_string=args, headers=bearer(admin))
        assert response.status_code == 200, response.get_json()
        assert "password" not in response.get_data(as_text=True)
        return [u["username"] for u in response.get_json()["users"]]

    assert names() == ["admin", "col.a1", "col.b1", "sup.a"]
    assert names(role="collector") == ["col.a1", "col.b1"]
    assert names(region=TOWNSHIP_A) == ["col.a1", "sup.a"]
    assert names(region=TOWNSHIP_B, role="collector") == ["col.b1"]
    assert names(active="false") == []
    assert names(limit="2", offset="1") == ["col.a1", "col.b1"]
    one = client.get("/api/v1/users/col.a1", headers=bearer(admin)).get_json()
    assert one["regions"] == [VILLAGE_A1] and one["role"] == "collector"
    assert set(one) == {
        "username",
        "display_name",
        "role",
        "is_active",
        "created_at",
        "disabled_at",
        "regions",
    }
    assert client.get("/api/v1/users/nobody", headers=bearer(admin)).status_code == 404
    bad = client.get("/api/v1/users", query_string={"role": "boss"}, headers=bearer(admin))
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"]["errors"][0]["path"] == "role"


def test_only_admins_manage_users_supervisors_read_their_collectors(client, admin, login):
    supervisor = login("sup.a")
    listed = client.get("/api/v1/users", headers=bearer(supervisor))
    assert [u["username"] for u in listed.get_json()["users"]] == ["col.a1"]
    assert client.get("/api/v1/users/col.a1", headers=bearer(supervisor)).status_code == 200
    for other in ("col.b1", "admin", "sup.a"):
        assert client.get(f"/api/v1/users/{other}", headers=bearer(supervisor)).status_code == 403
    collector = login("col.a1")
    assert client.get("/api/v1/users", headers=bearer(collector)).status_code == 403
    for name in ("sup.a", "col.a1"):
        token = login(name)
        created = client.post(
            "/api/v1/users",
            json={"username": "x", "password": PASSWORD, "role": "admin"},
            headers=bearer(token),
        )
        assert created.status_code == 403
        assert created.get_json()["error"]["code"] == "forbidden"
    assert client.get("/api/v1/users").status_code == 401


def test_creating_a_user_follows_the_password_policy_and_is_audited(client, rt, admin, login):
    body = {
        "username": "li.ming",
        "password": PASSWORD,
        "role": "collector",
        "display_name": "李明",
        "regions": [VILLAGE_A1],
    }
    response = client.post("/api/v1/users", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["display_name"] == "李明" and created["regions"] == [VILLAGE_A1]
    assert "password" not in response.get_data(as_text=True)
    assert login("li.ming")
    # The fixture's users were made from the command line (no acting user); this one by the admin.
    [entry] = [e for e in _audit(rt, "user_created") if e.user_id is not None]
    assert entry.user_id == _admin_id(rt) and entry.object_id == "li.ming"
    assert entry.at is not None and PASSWORD not in str(entry.details)

    def refused(changes, status=422):
        answer = client.post("/api/v1/users", json={**body, **changes}, headers=bearer(admin))
        assert answer.status_code == status, (changes, answer.get_json())
        return answer.get_json()["error"]

    assert refused({}, 409)["code"] == "conflict"
    assert refused({"username": "LI.MING"}, 409)["code"] == "conflict"
    short = refused({"username": "wang", "password": "short"})
    assert [e["path"] for e in short["details"]["errors"]] == ["password"]
    unknown = refused({"username": "wang", "regions": ["990102009000"]})
    assert unknown["details"]["errors"][0]["code"] == "unknown_region"
    for changes, path in (
        ({"username": "wang fang"}, "username"),
        ({"username": ".."}, "username"),
        ({"username": "wang", "role": "boss"}, "role"),
        ({"username": "wang", "regions": ["12"]}, "regions[0]"),
        ({"username": "wang", "extra": 1}, "extra"),
    ):
        error = refused(changes)
        assert [e["path"] for e in error["details"]["errors"]] == [path], changes
    assert len([e for e in _audit(rt, "user_created") if e.user_id is not None]) == 1


def test_granting_and_revoking_regions_is_audited(client, rt, admin):
    granted = client.post(
        "/api/v1/users/col.a1/grants", json={"region": VILLAGE_B1}, headers=bearer(admin)
    )
    assert granted.status_code == 200
    assert granted.get_json()["regions"] == [VILLAGE_A1, VILLAGE_B1]
    unknown = client.post(
        "/api/v1/users/col.a1/grants", json={"region": "990102009000"}, headers=bearer(admin)
    )
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["details"]["errors"][0]["path"] == "region"
    no_user = client.post(
        "/api/v1/users/nobody/grants", json={"region": VILLAGE_B1}, headers=bearer(admin)
    )
    assert no_user.status_code == 404
    revoked = client.delete(f"/api/v1/users/col.a1/grants/{VILLAGE_A1}", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.get_json()["regions"] == [VILLAGE_B1]
    again = client.delete(f"/api/v1/users/col.a1/grants/{VILLAGE_A1}", headers=bearer(admin))
    assert again.status_code == 404
    admin_id = _admin_id(rt)
    assert [(e.object_id, e.region_code, e.user_id) for e in _audit(rt, "region_granted")] == [
        ("col.a1", VILLAGE_B1, admin_id)
    ]
    assert [(e.object_id, e.region_code) for e in _audit(rt, "region_revoked")] == [
        ("col.a1", VILLAGE_A1)
    ]


def test_a_password_reset_ends_the_users_tokens(client, rt, admin, login):
    old = login("col.a1")
    short = client.post(
        "/api/v1/users/col.a1/password", json={"password": "short"}, headers=bearer(admin)
    )
    assert short.status_code == 422
    assert short.get_json()["error"]["details"]["errors"][0]["path"] == "password"
    reset = client.post(
        "/api/v1/users/col.a1/password", json={"password": NEW_PASSWORD}, headers=bearer(admin)
    )
    assert reset.status_code == 200
    assert reset.get_json() == {"username": "col.a1", "tokens_ended": 1}
    assert client.get("/api/v1/auth/me", headers=bearer(old)).status_code == 401
    assert login("col.a1", NEW_PASSWORD)
    [entry] = _audit(rt, "password_set")
    assert entry.user_id == _admin_id(rt) and NEW_PASSWORD not in str(entry.details)


def test_disabling_ends_tokens_and_refuses_logins_until_enabled(client, rt, admin, login):
    token = login("sup.a")
    disabled = client.post("/api/v1/users/sup.a/disable", headers=bearer(admin))
    assert disabled.status_code == 200
    assert disabled.get_json()["is_active"] is False and disabled.get_json()["disabled_at"]
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    refused = client.post("/api/v1/auth/login", json={"username": "sup.a", "password": PASSWORD})
    assert refused.status_code == 401
    listed = client.get("/api/v1/users", query_string={"active": "false"}, headers=bearer(admin))
    assert [u["username"] for u in listed.get_json()["users"]] == ["sup.a"]
    enabled = client.post("/api/v1/users/sup.a/enable", headers=bearer(admin))
    assert enabled.status_code == 200 and enabled.get_json()["is_active"] is True
    assert login("sup.a")
    # An administrator cannot lock themselves out.
    self_disable = client.post("/api/v1/users/admin/disable", headers=bearer(admin))
    assert self_disable.status_code == 409
    assert client.get("/api/v1/auth/me", headers=bearer(admin)).status_code == 200
    admin_id = _admin_id(rt)
    assert [(e.object_id, e.user_id) for e in _audit(rt, "user_disabled")] == [("sup.a", admin_id)]
    assert [(e.object_id, e.user_id) for e in _audit(rt, "user_enabled")] == [("sup.a", admin_id)]
