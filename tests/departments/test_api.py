"""The department endpoints through the real WSGI app: admins configure sources, upload files and
read the history; supervisors and collectors are refused; bad requests and bad files are JSON
errors that change nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.departments.models import DepartmentFact, DepartmentImport
from server.runtime import Runtime
from server.users.models import Role
from tests.conftest import VILLAGE_A1, Login, UserFactory, bearer
from tests.departments.world import (
    ALICE,
    BOB,
    MEDICAL_HEADER,
    MEDICAL_MAPPING,
    NOBODY,
    World,
    build_register,
    csv_bytes,
)

SOURCES = "/api/v1/departments/sources"


@pytest.fixture
def world(rt: Runtime, regions: list[str]) -> World:
    return build_register(rt)


@pytest.fixture
def admin(create_user_: UserFactory, login: Login) -> dict[str, str]:
    create_user_("root", Role.ADMIN)
    return bearer(login("root"))


def _upload(client: FlaskClient, headers: dict[str, str], source_id: str, content: bytes) -> Any:
    return client.post(
        f"{SOURCES}/{source_id}/imports",
        headers=headers,
        data={"file": (io.BytesIO(content), "医保名单.csv")},
        content_type="multipart/form-data",
    )


def _count(rt: Runtime, model: Any) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _create(client: FlaskClient, admin: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {
        "name": "medical",
        "department": "medical_insurance",
        "mapping": MEDICAL_MAPPING,
        **extra,
    }
    response = client.post(SOURCES, headers=admin, json=body)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def test_an_admin_configures_a_source_uploads_a_file_and_reads_the_history(
    client: FlaskClient, rt: Runtime, world: World, admin: dict[str, str]
) -> None:
    source = _create(client, admin, list_kind="full")
    assert (source["list_kind"], source["url"], source["mapping"]) == (
        "full",
        None,
        MEDICAL_MAPPING,
    )
    content = csv_bytes([MEDICAL_HEADER, [ALICE, "a", "是", "", ""], [NOBODY, "n", "否", "", ""]])
    first = _upload(client, admin, source["id"], content)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["matched"], body["unmatched"], body["mismatched"], body["unchanged"]) == (
        1,
        1,
        1,
        False,
    )
    assert body["report"]["unmatched"] == [{"row": 3, "id_number": "9901**********0099"}]
    assert body["filename"] == "医保名单.csv" and body["origin"] == "upload"
    assert ALICE not in json.dumps(body) and NOBODY not in json.dumps(body)

    again = _upload(client, admin, source["id"], content)
    assert again.status_code == 200 and again.get_json()["unchanged"] is True
    assert again.get_json()["id"] == body["id"]

    page = client.get(f"/api/v1/departments/imports?source_id={source['id']}", headers=admin)
    assert page.status_code == 200
    assert [i["id"] for i in page.get_json()["imports"]] == [body["id"]]
    assert page.get_json()["total"] == 1
    one = client.get(f"/api/v1/departments/imports/{body['id']}", headers=admin)
    assert one.status_code == 200 and one.get_json()["report"] == body["report"]

    changed = client.patch(
        f"{SOURCES}/{source['id']}",
        headers=admin,
        json={"list_kind": "partial", "timeout_seconds": 5},
    )
    assert changed.status_code == 200
    assert (changed.get_json()["list_kind"], changed.get_json()["timeout_seconds"]) == (
        "partial",
        5,
    )
    listing = client.get(SOURCES, headers=admin).get_json()
    assert [s["name"] for s in listing["sources"]] == ["medical"] and listing["total"] == 1
    with rt.db.unit_of_work(write=False) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert {"department_source.create", "department_source.update", "department.import"} <= set(
        actions
    )


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.COLLECTOR])
def test_only_admins_reach_department_data(
    client: FlaskClient,
    rt: Runtime,
    world: World,
    admin: dict[str, str],
    create_user_: UserFactory,
    login: Login,
    role: Role,
) -> None:
    source = _create(client, admin)
    create_user_("someone", role, regions=[VILLAGE_A1])
    headers = bearer(login("someone"))
    content = csv_bytes([MEDICAL_HEADER, [ALICE, "a", "是", "", ""]])
    for response in (
        client.get(SOURCES, headers=headers),
        client.post(
            SOURCES, headers=headers, json={"name": "x", "department": "housing", "mapping": {}}
        ),
        client.patch(f"{SOURCES}/{source['id']}", headers=headers, json={"url": None}),
        _upload(client, headers, source["id"], content),
        client.get("/api/v1/departments/imports", headers=headers),
    ):
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
    assert client.get(SOURCES).status_code == 401
    assert _count(rt, DepartmentImport) == 0


def test_a_bad_mapping_or_schedule_is_a_422_naming_each_problem(
    client: FlaskClient, world: World, admin: dict[str, str]
) -> None:
    response = client.post(
        SOURCES,
        headers=admin,
        json={
            "name": "houses",
            "department": "housing",
            "mapping": {"id_number": "证件", "facts": {"insured": {"column": "x"}}},
            "schedule": "61 * * * *",
        },
    )
    assert response.status_code == 422
    paths = {e["path"] for e in response.get_json()["error"]["details"]["errors"]}
    assert {"mapping.facts.insured", "schedule"} <= paths
    source = _create(client, admin)
    duplicate = client.post(
        SOURCES,
        headers=admin,
        json={"name": "medical", "department": "medical_insurance", "mapping": MEDICAL_MAPPING},
    )
    assert duplicate.status_code == 409
    unknown = client.patch(f"{SOURCES}/{source['id']}", headers=admin, json={"colour": "red"})
    assert unknown.status_code == 422


def test_bad_uploads_are_json_errors_that_change_nothing(
    client: FlaskClient, rt: Runtime, world: World, admin: dict[str, str]
) -> None:
    source = _create(client, admin)
    url = f"{SOURCES}/{source['id']}/imports"
    not_multipart = client.post(url, headers=admin, json={"file": "x"})
    assert not_multipart.status_code == 415
    no_file = client.post(
        url, headers=admin, data={"other": "x"}, content_type="multipart/form-data"
    )
    assert no_file.status_code == 400
    bad = _upload(
        client,
        admin,
        source["id"],
        csv_bytes([MEDICAL_HEADER, [BOB, "b", "是", "", ""], [ALICE, "a", "?", "", ""]]),
    )
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"]["errors"][0]["path"] == "row 3: 参保状态"
    # Raw bytes (not a file the test client would spool to a temporary file it never closes).
    huge = client.post(
        url,
        headers=admin,
        data=b"x" * (rt.settings.max_body_size + 10),
        content_type="multipart/form-data; boundary=b",
    )
    assert huge.status_code == 413 and huge.get_json()["error"]["code"] == "too_large"
    missing = _upload(client, admin, "00000000-0000-4000-8000-000000000000", b"a,b\n")
    assert missing.status_code == 404
    assert _count(rt, DepartmentImport) == 0 and _count(rt, DepartmentFact) == 0
