"""The console's devices pages: administrators see every tablet, supervisors those of collectors
in their regions, each with owner, last sync, the device_seq numbers never received and open
conflicts; revoking a tablet; provisioning one by QR code (a one-time code for a user, its QR
code holding the server's address and the code, revocable until used). Scope refusals get the 403
page; bad input is answered next to the form with nothing changed. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.conflicts.models import Conflict, ConflictStatus
from server.db import utcnow
from server.devices.enrolment import qr_payload, qr_svg
from server.devices.models import Device, DeviceEnrolment, DeviceSequenceGap
from server.users.models import Role, User
from tests.conftest import LOAD_CLOCK, TOWNSHIP_A, VILLAGE_A1, VILLAGE_B1, bearer
from tests.console.conftest import text_of
from tests.sync.helpers import store_accepted_submission

ENROLMENT_PATH = "/devices/enrolments/"


@pytest.fixture
def setup(rt, create_user_, village_households):
    """Admin, a township-A supervisor, collectors in A1 and B1, each collector with a tablet that
    sent one submission; col.a1's tablet misses numbers 3–5 and 9 and has two open conflicts."""
    create_user_("admin", Role.ADMIN)
    create_user_("sup.a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col.a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col.b1", Role.COLLECTOR, [VILLAGE_B1])
    received = utcnow().replace(microsecond=0) - timedelta(hours=2)
    submissions, devices = {}, {}
    for name, village in (("col.a1", VILLAGE_A1), ("col.b1", VILLAGE_B1)):
        submissions[name], devices[name] = store_accepted_submission(
            rt, name, village, hlc=LOAD_CLOCK, received_at=received
        )
    mine, other = submissions["col.a1"], submissions["col.b1"]
    with rt.db.unit_of_work() as session:
        tablet = session.get(Device, devices["col.a1"])
        tablet.highest_seq, tablet.label = 40, "青石镇 3 号平板"
        session.add_all(
            [
                DeviceSequenceGap(device_id=tablet.id, first_seq=3, last_seq=5),
                DeviceSequenceGap(device_id=tablet.id, first_seq=9, last_seq=9),
            ]
        )
        for winner, loser in ((mine, other), (other, mine)):
            session.add(
                Conflict(
                    id=uuid.uuid4(),
                    entity_type="household",
                    entity_id=village_households[VILLAGE_A1]["household"],
                    field="per_capita_income",
                    village_code=VILLAGE_A1,
                    winner_value=1,
                    winner_clock=LOAD_CLOCK,
                    winner_submission_id=winner,
                    loser_value=2,
                    loser_clock=LOAD_CLOCK,
                    loser_submission_id=loser,
                    status=ConflictStatus.OPEN,
                )
            )
    return devices


def _rows(html):
    """The devices table's rows as text."""
    body = html.split('class="devices-table"', 1)[1].split("<tbody>", 1)[1].split("</tbody>")[0]
    return [text_of("<tr" + row) for row in body.split("<tr")[1:]]


def _device(rt, device_id):
    with rt.db.unit_of_work(write=False) as session:
        return session.get(Device, device_id)


def _audit(rt, action):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        ).all()


def _user_id(rt, username):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def _enrolments(rt):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalars(select(DeviceEnrolment).order_by(DeviceEnrolment.created_at)).all()


def test_admins_see_every_tablet_with_its_sync_state(console, setup):
    page = console("admin").page("/devices")
    rows = _rows(page)
    assert len(rows) == 2
    a1, b1 = rows
    assert "青石镇 3 号平板" in a1 and "col.a1" in a1 and "40" in a1
    assert "缺 4 条" in a1 and "3–5, 9" in a1
    assert "col.b1" in b1 and "未命名平板" in b1 and "无" in b1
    # Both tablets sent one side of each open conflict.
    assert page.count('<span class="badge warn">2</span>') == 2
    assert "吊销" in a1
    suggested = page.split('<datalist id="enrol-users">')[1].split("</datalist>")[0]
    assert [part.split('"')[0] for part in suggested.split('value="')[1:]] == [
        "admin",
        "col.a1",
        "col.b1",
        "sup.a",
    ]


def test_supervisors_see_only_the_tablets_of_collectors_in_their_regions(console, setup):
    page = console("sup.a").page("/devices")
    rows = _rows(page)
    assert len(rows) == 1 and "col.a1" in rows[0]
    assert "col.b1" not in page and str(setup["col.b1"]) not in page
    # The provisioning form suggests only the collectors the supervisor manages.
    assert '<option value="col.a1">' in page and '<option value="sup.a">' not in page
    # Nor through the owner filter.
    assert _rows(console("sup.a").page("/devices?owner=col.b1")) == ["暂无平板。"]


def test_collectors_get_the_403_page(rt, console, setup):
    collector = console("col.a1")
    for path in ("/devices", f"/devices/{setup['col.a1']}/revoke"):
        response = collector.get(path) if path == "/devices" else collector.post(path, {})
        assert response.status_code == 403, path
        assert "无权操作" in text_of(response.get_data(as_text=True))
    assert _device(rt, setup["col.a1"]).revoked_at is None
    assert 'href="/devices"' not in collector.page("/")


def test_the_devices_filters(console, setup):
    admin = console("admin")
    assert [("col.b1" in row) for row in _rows(admin.page("/devices?owner=col.b1"))] == [True]
    assert len(_rows(admin.page("/devices?revoked=false&owner=&lang=zh"))) == 2
    assert _rows(admin.page("/devices?revoked=true")) == ["暂无平板。"]
    response = admin.get("/devices?revoked=maybe")
    assert response.status_code == 422
    assert len(_rows(response.get_data(as_text=True))) == 2


def test_revoking_a_tablet_logs_it_out_and_is_audited(rt, client, console, login, setup):
    tablet_token = login("col.a1", device_id=str(setup["col.a1"]))
    admin = console("admin")
    response = admin.post(
        f"/devices/{setup['col.a1']}/revoke", {"owner": "col.a1"}, form_page="/devices"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/devices?owner=col.a1"
    page = admin.page(response.headers["Location"])
    assert "已吊销该平板" in text_of(page) and "已吊销" in _rows(page)[0]
    assert _device(rt, setup["col.a1"]).revoked_at is not None
    assert client.get("/api/v1/forms", headers=bearer(tablet_token)).status_code == 401
    (entry,) = _audit(rt, "device_revoked")
    assert entry.user_id == _user_id(rt, "admin") and entry.object_id == str(setup["col.a1"])


def test_supervisors_revoke_only_their_collectors_tablets(rt, console, setup):
    supervisor = console("sup.a")
    response = supervisor.post(f"/devices/{setup['col.b1']}/revoke", {}, form_page="/devices")
    assert response.status_code == 403
    assert _device(rt, setup["col.b1"]).revoked_at is None
    assert supervisor.post(f"/devices/{uuid.uuid4()}/revoke", {}).status_code == 404
    response = supervisor.post(f"/devices/{setup['col.a1']}/revoke", {}, form_page="/devices")
    assert response.status_code == 302
    assert _device(rt, setup["col.a1"]).revoked_at is not None
    assert [e.user_id for e in _audit(rt, "device_revoked")] == [_user_id(rt, "sup.a")]


def test_provisioning_shows_a_qr_code_with_the_server_and_a_working_code(
    rt, client, console, setup
):
    admin = console("admin")
    form = admin.page("/devices?enrol=col.a1")
    assert 'value="col.a1"' in form
    response = admin.post(
        "/devices/enrolments",
        {"username": "col.a1", "label": "青石镇 4 号平板", "expires_in": "3600"},
        form_page="/devices",
    )
    assert response.status_code == 302
    (made,) = _enrolments(rt)
    assert response.headers["Location"] == f"{ENROLMENT_PATH}{made.id}"
    assert made.expires_at - made.created_at == timedelta(hours=1)
    assert made.created_by_id == _user_id(rt, "admin")

    page = admin.page(response.headers["Location"])
    text = text_of(page)
    assert "col.a1 的平板" in text and "等待平板扫码" in text and "http://localhost" in text
    assert f'src="{ENROLMENT_PATH}{made.id}/qr.svg"' in page
    # The page itself never holds the code: only the picture does.
    code = rt.codec.unseal(made.code_cipher, f"enrolment:{made.id}")
    assert code not in page

    picture = admin.get(f"{ENROLMENT_PATH}{made.id}/qr.svg")
    assert picture.status_code == 200 and picture.mimetype == "image/svg+xml"
    assert picture.headers["Cache-Control"] == "no-store"
    payload = qr_payload("http://localhost", code)
    assert picture.get_data(as_text=True) == qr_svg(payload)
    assert json.loads(payload)["server"] == "http://localhost"
    assert len(_audit(rt, "enrolment_qr_shown")) == 1

    # The tablet scans it and is enrolled; the page then says so and shows no picture.
    tablet = str(uuid.uuid4())
    enrolled = client.post("/api/v1/auth/enrol", json={"code": code, "device_id": tablet})
    assert enrolled.status_code == 200, enrolled.get_json()
    assert admin.get(f"{ENROLMENT_PATH}{made.id}/status").get_json()["status"] == "redeemed"
    page = admin.page(f"{ENROLMENT_PATH}{made.id}")
    assert "已被平板使用" in text_of(page) and "qr.svg" not in page and tablet in page
    assert admin.get(f"{ENROLMENT_PATH}{made.id}/qr.svg").status_code == 410
    # Revoking a used code is refused next to the button; revoke the tablet instead.
    response = admin.post(f"{ENROLMENT_PATH}{made.id}/revoke", {}, form_page="/devices")
    assert response.status_code == 409
    assert "请改为吊销该平板" in text_of(response.get_data(as_text=True))


def test_a_code_revoked_before_use_no_longer_works(rt, client, console, setup):
    supervisor = console("sup.a")
    response = supervisor.post(
        "/devices/enrolments", {"username": "col.a1", "expires_in": "86400"}, form_page="/devices"
    )
    assert response.status_code == 302
    (made,) = _enrolments(rt)
    code = rt.codec.unseal(made.code_cipher, f"enrolment:{made.id}")
    listed = text_of(supervisor.page("/devices"))
    assert "尚未使用的注册码" in listed and "col.a1" in listed.split("尚未使用的注册码")[1]

    response = supervisor.post(
        f"{ENROLMENT_PATH}{made.id}/revoke", {"back": "devices"}, form_page="/devices"
    )
    assert response.status_code == 302 and response.headers["Location"] == "/devices"
    assert "已吊销注册码" in text_of(supervisor.page("/devices"))
    assert "已吊销" in text_of(supervisor.page(f"{ENROLMENT_PATH}{made.id}"))
    refused = client.post("/api/v1/auth/enrol", json={"code": code, "device_id": str(uuid.uuid4())})
    assert refused.status_code == 410
    (entry,) = _audit(rt, "enrolment_revoked")
    assert entry.user_id == _user_id(rt, "sup.a")


@pytest.mark.parametrize(
    ("who", "fields", "status", "message"),
    [
        ("admin", {"username": "nobody"}, 404, "没有这个用户名的用户"),
        ("admin", {"username": ""}, 422, "请输入使用该平板的用户名"),
        ("admin", {"expires_in": "60"}, 422, "请选择注册码的有效期"),
        ("admin", {"expires_in": "x" * 20}, 422, "请选择注册码的有效期"),
        ("admin", {"label": "平" * 101}, 422, "最多 100 个字符"),
        ("admin", {"username": "col.off"}, 409, "该账号已停用"),
        ("sup.a", {"username": "col.b1"}, 403, "只能为本辖区的采集员注册平板"),
        ("sup.a", {"username": "admin"}, 403, "只能为本辖区的采集员注册平板"),
    ],
)
def test_bad_provisioning_is_shown_on_the_form_and_makes_no_code(
    rt, console, create_user_, setup, who, fields, status, message
):
    create_user_("col.off", Role.COLLECTOR, [VILLAGE_A1])
    console("admin").post("/users/col.off/disable", {}, form_page="/users/col.off")
    response = console(who).post(
        "/devices/enrolments",
        {"username": "col.a1", "expires_in": "86400", **fields},
        form_page="/devices",
    )
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert message in text_of(html) and 'aria-invalid="true"' in html
    assert _enrolments(rt) == []


def test_enrolments_of_other_regions_stay_out_of_reach(rt, console, setup):
    admin = console("admin")
    admin.post("/devices/enrolments", {"username": "col.b1"}, form_page="/devices")
    (made,) = _enrolments(rt)
    supervisor = console("sup.a")
    assert "col.b1" not in supervisor.page("/devices")
    for path in ("", "/qr.svg", "/status"):
        assert supervisor.get(f"{ENROLMENT_PATH}{made.id}{path}").status_code == 403, path
    assert supervisor.post(f"{ENROLMENT_PATH}{made.id}/revoke", {}).status_code == 403
    assert admin.get(f"{ENROLMENT_PATH}{uuid.uuid4()}").status_code == 404
    with rt.db.unit_of_work(write=False) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(DeviceEnrolment)
                .where(DeviceEnrolment.revoked_at.is_not(None))
            )
            == 0
        )
    assert _audit(rt, "enrolment_qr_shown") == []


def test_the_devices_pages_speak_english_too(console, setup):
    admin = console("admin", lang="en")
    text = text_of(admin.page("/devices"))
    assert "Provision a tablet" in text and "4 missing" in text and "Open conflicts" in text
    admin.post("/devices/enrolments", {"username": "col.a1"}, form_page="/devices")
    page = admin.page("/devices")
    assert "Codes not used yet" in text_of(page)
