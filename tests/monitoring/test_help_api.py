"""Helpers and assistance measures over HTTP with real roles: supervisors change them within their
regions, collectors only read them; phones are masked unless revealed (audited); bad input is a
JSON error and changes nothing; every change is audited and kept as a help event."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from forms.register import MonitoringStatus
from server.audit.models import AuditEntry
from server.monitoring.help_models import AssistanceMeasure, HelpEvent, HouseholdHelper
from server.runtime import Runtime
from server.users.models import Role
from tests.conftest import TOWNSHIP_A, VILLAGE_A1, VILLAGE_B1, Login, UserFactory, bearer
from tests.monitoring.help_fixtures import make_monitored

PHONE = "13912345678"


@pytest.fixture
def staff(create_user_: UserFactory, login: Login) -> dict[str, str]:
    """Tokens: a supervisor and a collector of township A, an admin, a collector of village B1."""
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("col_a", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col_b", Role.COLLECTOR, [VILLAGE_B1])
    create_user_("root", Role.ADMIN)
    return {name: login(name) for name in ("sup_a", "col_a", "col_b", "root")}


@pytest.fixture
def household_a(rt: Runtime, village_households: dict[str, dict[str, uuid.UUID]]) -> uuid.UUID:
    household_id = village_households[VILLAGE_A1]["household"]
    make_monitored(rt, household_id)
    return household_id


def help_history(client, token: str, household_id) -> list[dict[str, Any]]:
    """The help events of the household's timeline (the one place help history is read)."""
    response = client.get(
        f"/api/v1/households/{household_id}/timeline?limit=200", headers=bearer(token)
    )
    assert response.status_code == 200, response.get_json()
    return [e for e in response.get_json()["events"] if e["kind"] == "help"]


def _post(client: FlaskClient, path: str, token: str, body: Any) -> Any:
    return client.post(path, json=body, headers=bearer(token))


def _counts(rt: Runtime) -> tuple[int, int, int, int]:
    with rt.db.unit_of_work(write=False) as session:
        return (
            session.scalar(select(func.count()).select_from(HouseholdHelper)) or 0,
            session.scalar(select(func.count()).select_from(AssistanceMeasure)) or 0,
            session.scalar(select(func.count()).select_from(HelpEvent)) or 0,
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.object_type.in_(["household_helper", "assistance_measure"]))
            )
            or 0,
        )


def test_supervisor_assigns_helpers_and_measures_and_collector_sees_them_masked(
    client: FlaskClient, rt: Runtime, staff: dict[str, str], household_a: uuid.UUID
) -> None:
    base = f"/api/v1/households/{household_a}"
    user_helper = _post(client, f"{base}/helpers", staff["sup_a"], {"user": "col_a"})
    assert user_helper.status_code == 201, user_helper.get_json()
    assert user_helper.get_json()["user"] == "col_a"
    named = _post(
        client,
        f"{base}/helpers",
        staff["sup_a"],
        {"name": "韦秀英", "phone": "139-1234-5678", "assigned_on": "2026-11-02"},
    )
    assert named.status_code == 201, named.get_json()
    assert named.get_json()["phone"] == "139****5678"
    measure = _post(
        client,
        f"{base}/measures",
        staff["sup_a"],
        {
            "type": "public_welfare_job",
            "description": "村保洁员",
            "start_date": "2026-11-05",
            "amount": 800.5,
        },
    )
    assert measure.status_code == 201, measure.get_json()
    assert measure.get_json()["status"] == "in_progress"
    assert measure.get_json()["type_label"]["zh"] == "公益岗位"

    seen = client.get(f"{base}/help", headers=bearer(staff["col_a"]))
    assert seen.status_code == 200, seen.get_json()
    body = seen.get_json()
    assert [h["name"] for h in body["helpers"]] == ["韦秀英", "col_a"]  # by assignment date
    assert body["helpers"][0]["phone"] == "139****5678"
    assert body["measures"][0]["amount"] == 800.5
    assert body["revealed"] is False

    # A collector may not reveal; a supervisor may, and the reveal is audited.
    refused = client.get(f"{base}/help?reveal=sensitive", headers=bearer(staff["col_a"]))
    assert refused.status_code == 403
    revealed = client.get(f"{base}/help?reveal=sensitive", headers=bearer(staff["sup_a"]))
    assert revealed.get_json()["helpers"][0]["phone"] == PHONE
    with rt.db.unit_of_work(write=False) as session:
        reveals = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "reveal_sensitive", AuditEntry.object_type == "household_help"
            )
        ).all()
        assert [r.object_id for r in reveals] == [str(household_a)]
    events = help_history(client, staff["sup_a"], household_a)
    # Newest first, who and what; the phone in the record is masked.
    assert [e["data"]["action"] for e in events] == [
        "measure_added",
        "helper_assigned",
        "helper_assigned",
    ]
    assert {e["who"] for e in events} == {"sup_a"}
    assert events[1]["data"]["details"]["phone"] == "139****5678"
    assert PHONE not in str([e["data"] for e in events])
    assert _counts(rt) == (2, 1, 3, 3)


def test_collectors_read_help_but_cannot_change_it(
    client: FlaskClient, rt: Runtime, staff: dict[str, str], household_a: uuid.UUID
) -> None:
    base = f"/api/v1/households/{household_a}"
    assert client.get(f"{base}/help", headers=bearer(staff["col_a"])).status_code == 200
    response = _post(client, f"{base}/helpers", staff["col_a"], {"user": "col_a"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    response = _post(
        client, f"{base}/measures", staff["col_a"], {"type": "industry", "start_date": "2026-11-01"}
    )
    assert response.status_code == 403
    assert _counts(rt) == (0, 0, 0, 0)


def test_households_outside_the_callers_regions_are_forbidden_and_unknown_ones_not_found(
    client: FlaskClient,
    rt: Runtime,
    staff: dict[str, str],
    village_households: dict[str, dict[str, uuid.UUID]],
) -> None:
    household_b = village_households[VILLAGE_B1]["household"]
    make_monitored(rt, household_b)
    base = f"/api/v1/households/{household_b}"
    assert client.get(f"{base}/help", headers=bearer(staff["col_a"])).status_code == 403
    response = _post(client, f"{base}/helpers", staff["sup_a"], {"user": "col_a"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    # The admin may, everywhere.
    assert _post(client, f"{base}/helpers", staff["root"], {"user": "col_b"}).status_code == 201
    # What the admin gave there stays out of reach of township A's supervisor.
    measure = _post(
        client,
        f"{base}/measures",
        staff["root"],
        {"type": "housing_renovation", "start_date": "2026-11-01"},
    ).get_json()
    patch = client.patch(
        f"/api/v1/monitoring/measures/{measure['id']}",
        json={"status": "completed"},
        headers=bearer(staff["sup_a"]),
    )
    assert patch.status_code == 403
    helpers = client.get(f"{base}/help", headers=bearer(staff["col_b"])).get_json()["helpers"]
    end = _post(client, f"/api/v1/monitoring/helpers/{helpers[0]['id']}/end", staff["sup_a"], {})
    assert end.status_code == 403
    assert helpers[0]["ended_on"] is None
    unknown = f"/api/v1/households/{uuid.uuid4()}"
    assert client.get(f"{unknown}/help", headers=bearer(staff["sup_a"])).status_code == 404
    assert _post(client, f"{unknown}/helpers", staff["sup_a"], {"user": "x"}).status_code == 404
    patch = client.patch(
        f"/api/v1/monitoring/measures/{uuid.uuid4()}",
        json={"status": "completed"},
        headers=bearer(staff["sup_a"]),
    )
    assert patch.status_code == 404
    assert patch.get_json()["error"]["code"] == "not_found"


def test_help_is_refused_for_a_household_that_is_not_monitored(
    client: FlaskClient,
    rt: Runtime,
    staff: dict[str, str],
    village_households: dict[str, dict[str, uuid.UUID]],
) -> None:
    household = village_households[VILLAGE_A1]["household"]  # not monitored
    response = _post(
        client, f"/api/v1/households/{household}/helpers", staff["sup_a"], {"user": "col_a"}
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["details"]["monitoring_status"] == "not_monitored"
    make_monitored(rt, household, status=MonitoringStatus.ENTRY_REVIEW)
    response = _post(
        client,
        f"/api/v1/households/{household}/measures",
        staff["sup_a"],
        {"type": "industry", "start_date": "2026-11-01"},
    )
    assert response.status_code == 409
    assert _counts(rt) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("path", "body", "bad_path"),
    [
        ("helpers", {"name": "韦秀英"}, "phone"),
        ("helpers", {"phone": PHONE}, "name"),
        ("helpers", {"user": "nobody"}, "user"),
        ("helpers", {"name": "韦秀英", "phone": "call me"}, "phone"),
        ("helpers", {"user": "col_a", "assigned_on": "2026-02-30"}, "assigned_on"),
        ("helpers", {"user": "col_a", "colour": "red"}, "colour"),
        ("measures", {"type": "charity", "start_date": "2026-11-01"}, "type"),
        ("measures", {"type": "industry"}, "start_date"),
        (
            "measures",
            {"type": "industry", "start_date": "2026-11-01", "end_date": "2026-10-01"},
            "end_date",
        ),
        ("measures", {"type": "small_loan", "start_date": "2026-11-01", "amount": 1.005}, "amount"),
        ("measures", {"type": "small_loan", "start_date": "2026-11-01", "amount": -5}, "amount"),
        ("measures", {"type": "small_loan", "start_date": "2026-11-01", "amount": "5"}, "amount"),
        ("measures", {"type": "small_loan", "start_date": "2026-11-01", "amount": True}, "amount"),
        ("measures", {"type": "industry", "start_date": 20261101}, "start_date"),
    ],
)
def test_bad_input_is_a_validation_error_and_changes_nothing(
    client: FlaskClient,
    rt: Runtime,
    staff: dict[str, str],
    household_a: uuid.UUID,
    path: str,
    body: dict[str, Any],
    bad_path: str,
) -> None:
    response = _post(client, f"/api/v1/households/{household_a}/{path}", staff["sup_a"], body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert bad_path in [d["path"] for d in error["details"]["errors"]]
    assert _counts(rt) == (0, 0, 0, 0)


def test_malformed_bodies_get_the_json_error_shape(
    client: FlaskClient, staff: dict[str, str], household_a: uuid.UUID
) -> None:
    path = f"/api/v1/households/{household_a}/measures"
    headers = {**bearer(staff["sup_a"]), "Content-Type": "application/json"}
    response = client.post(path, data=b"{not json", headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"
    response = client.post(path, data=b"[1, 2]", headers=headers)
    assert response.status_code == 400
    response = client.post(path, data=b"type=industry", headers=bearer(staff["sup_a"]))
    assert response.status_code == 415


def test_measures_change_as_they_go_and_helpers_end_once(
    client: FlaskClient, rt: Runtime, staff: dict[str, str], household_a: uuid.UUID
) -> None:
    base = f"/api/v1/households/{household_a}"
    measure = _post(
        client,
        f"{base}/measures",
        staff["sup_a"],
        {"type": "temporary_relief", "start_date": "2026-11-10", "amount": 2000},
    ).get_json()
    path = f"/api/v1/monitoring/measures/{measure['id']}"
    done = client.patch(
        path,
        json={"status": "completed", "outcome": "医疗费用已报销", "end_date": "2026-11-30"},
        headers=bearer(staff["sup_a"]),
    )
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["status"], done.get_json()["end_date"]) == ("completed", "2026-11-30")
    # A start date after the stored end date is refused, and nothing changes.
    refused = client.patch(
        path, json={"start_date": "2026-12-05", "amount": 1}, headers=bearer(staff["sup_a"])
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"]["errors"][0]["path"] == "end_date"
    with rt.db.unit_of_work(write=False) as session:
        stored = session.get(AssistanceMeasure, uuid.UUID(measure["id"]))
        assert stored is not None
        assert (str(stored.start_date), int(stored.amount or 0)) == ("2026-11-10", 2000)
    assert (
        client.patch(path, json={"status": "done"}, headers=bearer(staff["sup_a"])).status_code
        == 422
    )
    assert (
        client.patch(path, json={"status": "stopped"}, headers=bearer(staff["col_a"])).status_code
        == 403
    )

    helper = _post(
        client, f"{base}/helpers", staff["sup_a"], {"user": "col_a", "assigned_on": "2026-11-01"}
    ).get_json()
    end = f"/api/v1/monitoring/helpers/{helper['id']}/end"
    early = _post(client, end, staff["sup_a"], {"ended_on": "2026-10-01"})
    assert early.status_code == 422
    ended = _post(client, end, staff["sup_a"], {"ended_on": "2026-12-01"})
    assert ended.status_code == 200, ended.get_json()
    assert ended.get_json()["ended_on"] == "2026-12-01"
    again = _post(client, end, staff["sup_a"], {})
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "conflict"
    # A named helper keeps a phone; a user helper may drop it.
    named = _post(
        client, f"{base}/helpers", staff["sup_a"], {"name": "韦秀英", "phone": PHONE}
    ).get_json()
    cleared = client.patch(
        f"/api/v1/monitoring/helpers/{named['id']}",
        json={"phone": None},
        headers=bearer(staff["sup_a"]),
    )
    assert cleared.status_code == 422
    renamed = client.patch(
        f"/api/v1/monitoring/helpers/{named['id']}",
        json={"name": "韦秀英（村医）", "phone": "13800001111"},
        headers=bearer(staff["sup_a"]),
    )
    assert renamed.get_json()["phone"] == "138****1111"
    actions = [e["data"]["action"] for e in help_history(client, staff["sup_a"], household_a)]
    assert actions == [
        "helper_updated",
        "helper_assigned",
        "helper_ended",
        "helper_assigned",
        "measure_updated",
        "measure_added",
    ]
