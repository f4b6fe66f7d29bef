"""The console's users pages (administrators): the list and its filters, creating a user, granting
and revoking regions through the region picker, resetting a password, disabling and enabling —
each change made by the users service with the acting administrator audited; other roles get the
403 page; bad input is answered next to the form with nothing changed. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.users.models import RegionGrant, Role, User
from tests.conftest import (
    COUNTY,
    PASSWORD,
    PROVINCE,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_B1,
)
from tests.console.conftest import text_of

NEW_PASSWORD = "a-new-long-password"


@pytest.fixture
def people(create_user_):
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col.a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col.b1", Role.COLLECTOR, [VILLAGE_B1])


def _user(rt, username):
    with rt.db.unit_of_work(write=False) as session:
        user = session.scalars(select(User).where(User.username == username)).one_or_none()
        if user is None:
            return None
        grants = sorted(
            session.scalars(select(RegionGrant.region_code).where(RegionGrant.user_id == user.id))
        )
        return {"id": user.id, "is_active": user.is_active, "regions": grants}


def _audit(rt, action):
    """The audit entries of `action` made by someone (the fixtures' own are by nobody)."""
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.user_id.is_not(None))
            .order_by(AuditEntry.id)
        ).all()


def _count_users(rt):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(User))


def _rows(html):
    """The usernames listed in the users table, in order."""
    body = html.split('class="users-table"', 1)[1].split("</table>", 1)[0]
    return [part.split(">", 1)[1].split("<", 1)[0] for part in body.split('<a href="/users/')[1:]]


def test_admins_list_users_with_their_regions_by_name_and_filter_them(console, people):
    admin = console("admin")
    page = admin.page("/users")
    assert _rows(page) == ["admin", "col.a1", "col.b1", "sup.a"]
    text = text_of(page)
    assert "上坪村" in text and VILLAGE_A1 in text and "青石镇" in text
    assert "采集员" in text and "审核员" in text and "启用" in text
    assert _rows(admin.page("/users?role=collector")) == ["col.a1", "col.b1"]
    assert _rows(admin.page(f"/users?region={TOWNSHIP_A}")) == ["col.a1", "sup.a"]
    assert _rows(admin.page(f"/users?region={TOWNSHIP_B}&role=collector")) == ["col.b1"]
    assert _rows(admin.page("/users?active=false")) == []
    # Empty filter fields (as a submitted form sends them) mean no filter.
    assert len(_rows(admin.page("/users?role=&region=&active=&lang=zh"))) == 4


def test_a_bad_filter_is_shown_next_to_it(console, people):
    admin = console("admin")
    response = admin.get("/users?region=12345")
    assert response.status_code == 422
    text = text_of(response.get_data(as_text=True))
    assert "12 位区划代码" in text
    assert _rows(response.get_data(as_text=True)) == ["admin", "col.a1", "col.b1", "sup.a"]


def test_the_list_pages_by_fifty(rt, console, people, create_user_):
    for i in range(50):
        create_user_(f"extra{i:02d}", Role.COLLECTOR, [VILLAGE_A1])
    admin = console("admin")
    first = admin.page("/users")
    assert len(_rows(first)) == 50
    assert "/users?offset=50" in first and "上一页" not in text_of(first)
    second = admin.page("/users?offset=50")
    assert _rows(second) == ["extra47", "extra48", "extra49", "sup.a"]
    assert "下一页" not in text_of(second) and "上一页" in text_of(second)


def test_an_admin_creates_a_user_who_can_log_in_and_sees_their_region(rt, console, people):
    admin = console("admin")
    response = admin.post(
        "/users",
        {
            "username": "li.na",
            "display_name": "李娜",
            "role": "collector",
            "regions": f"{VILLAGE_A1}, {VILLAGE_B1}",
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
        form_page="/users",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/users/li.na"
    page = text_of(admin.page("/users/li.na"))
    assert "已创建用户 li.na" in page and "李娜" in page and "上坪村" in page and "白水村" in page
    created = _user(rt, "li.na")
    assert created["is_active"] and created["regions"] == [VILLAGE_A1, VILLAGE_B1]
    (entry,) = _audit(rt, "user_created")
    assert entry.user_id == _user(rt, "admin")["id"] and entry.object_id == "li.na"
    assert NEW_PASSWORD not in str(entry.details)

    newcomer = console()
    assert newcomer.login("li.na", NEW_PASSWORD).status_code == 302
    home = text_of(newcomer.page("/"))
    # Their dashboard: their two villages, nothing else of the county.
    assert "上坪村" in home and "白水村" in home and "下坪村" not in home and "青石镇" not in home


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"password": "short", "password_again": "short"}, 422, "至少 8 个字符"),
        ({"password_again": "something-else"}, 422, "两次输入的密码不一致"),
        ({"username": "bad name!"}, 422, "1–64 个字母"),
        ({"username": "."}, 422, "1–64 个字母"),
        ({"role": "root"}, 422, "请选择角色"),
        ({"regions": "990102009009"}, 422, "已有的 12 位区划代码"),
        ({"regions": "not-a-code"}, 422, "已有的 12 位区划代码"),
        ({"display_name": "名" * 101}, 422, "最多 100 个字符"),
        ({"username": "COL.A1"}, 409, "已有同名用户"),
    ],
)
def test_bad_input_when_creating_is_shown_on_the_form_and_creates_nothing(
    rt, console, people, fields, status, message
):
    admin = console("admin")
    before = _count_users(rt)
    form = {
        "username": "new.user",
        "display_name": "新用户",
        "role": "collector",
        "regions": VILLAGE_A1,
        "password": NEW_PASSWORD,
        "password_again": NEW_PASSWORD,
        **fields,
    }
    response = admin.post("/users", form, form_page="/users")
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert message in text_of(html)
    assert 'aria-invalid="true"' in html
    # What was typed stays in the form, except passwords.
    assert f'value="{form["username"]}"' in html and NEW_PASSWORD not in html
    assert _count_users(rt) == before
    assert _audit(rt, "user_created") == []


def test_the_region_picker_walks_the_tree_and_grants_and_withdraws(rt, console, people):
    admin = console("admin")
    top = text_of(admin.page("/users/col.a1"))
    assert "演示省" in top and PROVINCE in top and "青石镇" not in top.split("授予辖区")[1]
    county = admin.page(f"/users/col.a1?under={COUNTY}")
    text = text_of(county)
    assert "演示省 › 演示市 › 云溪县" in text and "青石镇" in text and "白水乡" in text
    assert "授予云溪县全部" in text

    response = admin.post(
        "/users/col.a1/grants",
        {"region": TOWNSHIP_B, "under": COUNTY},
        form_page=f"/users/col.a1?under={COUNTY}",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/users/col.a1?under={COUNTY}"
    assert _user(rt, "col.a1")["regions"] == [VILLAGE_A1, TOWNSHIP_B]
    page = text_of(admin.page(response.headers["Location"]))
    assert f"已授予辖区 {TOWNSHIP_B}" in page
    (granted,) = _audit(rt, "region_granted")
    assert granted.user_id == _user(rt, "admin")["id"] and granted.region_code == TOWNSHIP_B

    response = admin.post(
        f"/users/col.a1/grants/{VILLAGE_A1}/revoke", {}, form_page="/users/col.a1"
    )
    assert response.status_code == 302
    assert _user(rt, "col.a1")["regions"] == [TOWNSHIP_B]
    (revoked,) = _audit(rt, "region_revoked")
    assert revoked.user_id == _user(rt, "admin")["id"] and revoked.region_code == VILLAGE_A1


def test_granting_an_unknown_region_changes_nothing(rt, console, people):
    admin = console("admin")
    for region, status in (("990102009009", 422), ("99", 422), ("", 422)):
        response = admin.post("/users/col.a1/grants", {"region": region}, form_page="/users/col.a1")
        assert response.status_code == status, region
        assert "12 位区划代码" in text_of(response.get_data(as_text=True))
    assert _user(rt, "col.a1")["regions"] == [VILLAGE_A1]
    # A stale picker position falls back to the top of the tree instead of failing.
    assert "演示省" in text_of(admin.page("/users/col.a1?under=990102009009"))
    assert admin.get("/users/nobody").status_code == 404


def test_resetting_a_password_ends_the_old_one(rt, console, people):
    colleague = console("col.a1")
    admin = console("admin")
    response = admin.post(
        "/users/col.a1/password",
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        form_page="/users/col.a1",
    )
    assert response.status_code == 302
    assert "已修改 col.a1 的密码" in text_of(admin.page("/users/col.a1"))
    # The session opened with the old password has ended; only the new password works.
    assert colleague.get("/").status_code == 302
    assert console().login("col.a1", PASSWORD).status_code == 401
    assert console().login("col.a1", NEW_PASSWORD).status_code == 302
    (entry,) = _audit(rt, "password_set")
    assert entry.user_id == _user(rt, "admin")["id"] and entry.details == {"tokens_ended": 1}


def test_a_bad_new_password_is_refused_on_the_form(rt, console, people):
    admin = console("admin")
    for fields, message in (
        ({"password": "short", "password_again": "short"}, "至少 8 个字符"),
        ({"password": NEW_PASSWORD, "password_again": "typo"}, "两次输入的密码不一致"),
    ):
        response = admin.post("/users/col.a1/password", fields, form_page="/users/col.a1")
        assert response.status_code == 422
        assert message in text_of(response.get_data(as_text=True))
    assert _audit(rt, "password_set") == []
    assert console().login("col.a1", PASSWORD).status_code == 302


def test_disabling_logs_the_user_out_and_enabling_lets_them_back(rt, console, people):
    colleague = console("col.a1")
    admin = console("admin")
    response = admin.post("/users/col.a1/disable", {}, form_page="/users/col.a1")
    assert response.status_code == 302
    assert "已停用" in text_of(admin.page("/users/col.a1"))
    assert not _user(rt, "col.a1")["is_active"]
    assert colleague.get("/").status_code == 302
    assert console().login("col.a1").status_code == 401
    assert _rows(admin.page("/users?active=false")) == ["col.a1"]

    response = admin.post("/users/col.a1/enable", {}, form_page="/users/col.a1")
    assert response.status_code == 302
    assert _user(rt, "col.a1")["is_active"]
    assert console().login("col.a1").status_code == 302
    admin_id = _user(rt, "admin")["id"]
    assert [e.user_id for e in _audit(rt, "user_disabled")] == [admin_id]
    assert [e.user_id for e in _audit(rt, "user_enabled")] == [admin_id]


def test_an_admin_cannot_disable_their_own_account(rt, console, people):
    admin = console("admin")
    assert "停用账号" not in text_of(admin.page("/users/admin"))
    response = admin.post("/users/admin/disable", {}, form_page="/users/admin")
    assert response.status_code == 409
    assert "不能停用自己的账号" in text_of(response.get_data(as_text=True))
    assert _user(rt, "admin")["is_active"]
    assert admin.get("/").status_code == 200


@pytest.mark.parametrize("username", ["sup.a", "col.a1"])
def test_other_roles_get_the_403_page_and_change_nothing(rt, console, people, username):
    other = console(username)
    assert "用户" not in [a for a in text_of(other.page("/")).split() if a == "用户"]
    for path in ("/users", "/users/col.b1", f"/users/col.b1?under={COUNTY}"):
        response = other.get(path)
        assert response.status_code == 403, path
        assert "无权操作" in text_of(response.get_data(as_text=True))
    for path, data in (
        ("/users", {"username": "x.y", "role": "admin", "password": NEW_PASSWORD}),
        ("/users/col.b1/grants", {"region": TOWNSHIP_A}),
        (f"/users/col.b1/grants/{VILLAGE_B1}/revoke", {}),
        ("/users/col.b1/password", {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}),
        ("/users/col.b1/disable", {}),
    ):
        assert other.post(path, data).status_code == 403, path
    assert _user(rt, "x.y") is None
    assert _user(rt, "col.b1") == {**_user(rt, "col.b1"), "is_active": True}
    assert _user(rt, "col.b1")["regions"] == [VILLAGE_B1]
    assert console().login("col.b1").status_code == 302


def test_the_users_menu_entry_shows_for_admins_only(console, people):
    assert 'href="/users"' in console("admin").page("/")
    assert 'href="/users"' not in console("sup.a").page("/")


def test_a_change_without_the_forms_csrf_token_is_refused(rt, console, people):
    admin = console("admin")
    response = admin.client.post("/users/col.a1/disable", data={})
    assert response.status_code == 403
    assert _user(rt, "col.a1")["is_active"]


def test_the_pages_speak_english_too(console, people):
    admin = console("admin", lang="en")
    text = text_of(admin.page("/users"))
    assert "Create a user" in text and "Field collector" in text and "Active" in text
    user = text_of(admin.page(f"/users/col.a1?under={COUNTY}"))
    assert "Grant a region" in user and "Reset the password" in user and "Township" in user
