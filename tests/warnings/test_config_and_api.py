"""The rules' configuration by year and province through the admin API (audited, re-evaluating
the province with each household's own record year), and the warning endpoints: lists scoped to
the caller's regions, one warning with its history, refer / handle / dismiss."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from server.audit.models import AuditEntry
from server.monitoring.models import Referral
from server.warnings.models import WarningStatus
from tests.conftest import PROVINCE, bearer
from tests.sync.helpers import HOUSEHOLD_A, MEMBERS_A
from tests.warnings.world import (
    current,
    good_visit,
    members,
    push,
    world_fixture,  # noqa: F401 - the `world` fixture
)

YEAR = datetime.now(UTC).year


def put_config(client, token, year, values, province=PROVINCE):
    return client.put(
        "/api/v1/warnings/config",
        json={"year": year, "province": province, "values": values},
        headers=bearer(token),
    )


def test_a_configuration_change_re_evaluates_the_province_for_its_year(client, rt, world):
    push(world["tablet"], good_visit(annual_income=24000))  # 8,000 a person: nothing
    assert current(rt, HOUSEHOLD_A) == {}
    # A line for another year leaves a record of this year alone.
    response = put_config(client, world["tokens"]["admin"], YEAR + 1, {"monitoring_line": 9000})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["reevaluated"]["raised"] == 0
    assert current(rt, HOUSEHOLD_A) == {}
    response = put_config(client, world["tokens"]["admin"], YEAR, {"monitoring_line": 8500})
    body = response.get_json()
    assert body["changed"] == ["monitoring_line"] and body["reevaluated"]["raised"] >= 1
    line = next(s for s in body["settings"] if s["name"] == "monitoring_line")
    assert line["value"] == 8500 and line["set_for"] == f"{YEAR}/{PROVINCE}"
    warning = current(rt, HOUSEHOLD_A)[("income_below_line", "")]
    assert warning.source == "configuration"
    assert warning.evidence["source"]["kind"] == "configuration"
    assert warning.evidence["source"]["settings"] == ["monitoring_line"]
    assert warning.evidence["values"]["monitoring_line"] == "8500"
    with rt.db.unit_of_work(write=False) as session:
        entry = session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "set_warning_setting")
            .order_by(AuditEntry.id.desc())
        )
        assert entry.details["new"] == "8500" and entry.details["old"] is None
    # Back to the default: the warning stays, and says it no longer holds.
    cleared = put_config(client, world["tokens"]["admin"], YEAR, {"monitoring_line": None})
    assert cleared.status_code == 200, cleared.get_json()
    after = current(rt, HOUSEHOLD_A)[("income_below_line", "")]
    assert after.id == warning.id and not after.holds


def test_configuration_reads_and_refusals(client, world):
    admin, supervisor = world["tokens"]["admin"], world["tokens"]["sup_county"]
    response = client.get(f"/api/v1/warnings/config?year={YEAR}", headers=bearer(supervisor))
    assert response.status_code == 200
    names = {s["name"]: s for s in response.get_json()["settings"]}
    assert names["monitoring_line"]["value"] == 6000 and names["gradual_exit_months"]["value"] == 6
    assert put_config(client, supervisor, YEAR, {"monitoring_line": 1}).status_code == 403
    bad = put_config(client, admin, YEAR, {"monitoring_line": -5})
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "validation_error"
    assert put_config(client, admin, YEAR, {"school_age_min": 6.5}).status_code == 422
    assert put_config(client, admin, YEAR, {"nonsense": 1}).status_code == 422
    assert put_config(client, admin, 1999, {"monitoring_line": 1}).status_code == 422
    assert (
        put_config(client, admin, YEAR, {"monitoring_line": 1}, "990100000000").status_code == 422
    )
    assert client.get("/api/v1/warnings/config", headers=bearer(admin)).status_code == 422


def _warning_id(client, token, rule):
    response = client.get(f"/api/v1/warnings?rule={rule}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    (item,) = response.get_json()["warnings"]
    return item


def test_lists_are_scoped_to_the_callers_regions_and_filtered(client, rt, world):
    push(world["tablet"], good_visit(annual_income=15000, water_status="insufficient"))
    tokens = world["tokens"]
    everything = client.get("/api/v1/warnings", headers=bearer(tokens["sup_county"])).get_json()
    assert {w["rule"] for w in everything["warnings"]} == {"income_below_line", "unsafe_water"}
    assert everything["total"] == 2
    elsewhere = client.get("/api/v1/warnings", headers=bearer(tokens["sup_b"])).get_json()
    assert elsewhere["total"] == 0
    assert client.get("/api/v1/warnings", headers=bearer(tokens["col_a1"])).status_code == 403
    filtered = client.get(
        "/api/v1/warnings?status=open&source=submission&holds=true&region=990102001001",
        headers=bearer(tokens["sup_a1"]),
    ).get_json()
    assert filtered["total"] == 2
    none = client.get("/api/v1/warnings?holds=false", headers=bearer(tokens["sup_a1"])).get_json()
    assert none["total"] == 0
    for bad in ("rule=nope", "status=nope", "region=12", "limit=0", "holds=yes"):
        response = client.get(f"/api/v1/warnings?{bad}", headers=bearer(tokens["sup_a1"]))
        assert response.status_code == 422, bad


def test_show_refer_handle_dismiss(client, rt, world):
    push(world["tablet"], good_visit(annual_income=15000, water_status="insufficient"))
    tokens = world["tokens"]
    income = _warning_id(client, tokens["sup_a1"], "income_below_line")
    shown = client.get(f"/api/v1/warnings/{income['id']}", headers=bearer(tokens["sup_a1"]))
    assert shown.status_code == 200 and shown.get_json()["events"][0]["kind"] == "raised"
    outside = client.get(f"/api/v1/warnings/{income['id']}", headers=bearer(tokens["sup_b"]))
    assert outside.status_code == 403
    referred = client.post(
        f"/api/v1/warnings/{income['id']}/refer",
        json={"note": "收入低于监测标准", "version": 0},
        headers=bearer(tokens["sup_a1"]),
    )
    assert referred.status_code == 200, referred.get_json()
    body = referred.get_json()
    assert body["status"] == "referred" and body["referral_id"]
    assert [e["kind"] for e in body["events"]] == ["raised", "referred"]
    with rt.db.unit_of_work(write=False) as session:
        referral = session.scalar(
            select(Referral).where(Referral.warning_id == uuid.UUID(income["id"]))
        )
        assert referral is not None and referral.channel.value == "cadre_screening"
        assert referral.evidence["rule"] == "income_below_line"
    again = client.post(
        f"/api/v1/warnings/{income['id']}/refer", json={}, headers=bearer(tokens["sup_a1"])
    )
    assert again.status_code == 409
    handled = client.post(
        f"/api/v1/warnings/{income['id']}/handle",
        json={"note": "已落实帮扶"},
        headers=bearer(tokens["sup_a1"]),
    )
    assert handled.get_json()["status"] == WarningStatus.HANDLED.value
    water = _warning_id(client, tokens["sup_a1"], "unsafe_water")
    no_reason = client.post(
        f"/api/v1/warnings/{water['id']}/dismiss", json={}, headers=bearer(tokens["sup_a1"])
    )
    assert no_reason.status_code == 422
    stale = client.post(
        f"/api/v1/warnings/{water['id']}/dismiss",
        json={"reason": "误报", "version": 7},
        headers=bearer(tokens["sup_a1"]),
    )
    assert stale.status_code == 409
    dismissed = client.post(
        f"/api/v1/warnings/{water['id']}/dismiss",
        json={"reason": "已接入自来水，入户核实"},
        headers=bearer(tokens["sup_a1"]),
    ).get_json()
    assert dismissed["status"] == "dismissed" and dismissed["status_by"] == "sup_a1"
    assert dismissed["status_reason"] == "已接入自来水，入户核实"
    unknown = client.post(
        "/api/v1/warnings/00000000-0000-4000-8000-000000000000/handle",
        json={},
        headers=bearer(tokens["sup_a1"]),
    )
    assert unknown.status_code == 404
    malformed = client.post(
        f"/api/v1/warnings/{water['id']}/handle", data="{", headers=bearer(tokens["sup_a1"])
    )
    assert malformed.status_code in (400, 415)


def test_a_department_warning_is_referred_as_a_department_warning(client, rt, world):
    from tests.warnings.test_department_warnings import write_facts

    push(world["tablet"], good_visit())
    write_facts(rt, [("insured", False, MEMBERS_A[0])])
    warning = _warning_id(client, world["tokens"]["sup_a1"], "department_uninsured")
    response = client.post(
        f"/api/v1/warnings/{warning['id']}/refer",
        json={},
        headers=bearer(world["tokens"]["sup_a1"]),
    )
    assert response.status_code == 200, response.get_json()
    with rt.db.unit_of_work(write=False) as session:
        referral = session.scalar(
            select(Referral).where(Referral.warning_id == uuid.UUID(warning["id"]))
        )
        assert referral.channel.value == "department_warning"
        assert referral.department == "medical_insurance" and referral.causes == ["illness"]


def test_health_values_in_evidence_are_masked(client, rt, world):
    push(
        world["tablet"],
        good_visit(medical_expenditure=15000, members=members(m0={"health": "serious"})),
    )
    response = client.get(
        "/api/v1/warnings?rule=illness_with_large_medical_costs",
        headers=bearer(world["tokens"]["sup_a1"]),
    )
    items = response.get_json()["warnings"]
    assert len(items) == 2  # the sample's head (now seriously ill) and his disabled wife
    assert all(item["evidence"]["values"]["health"] == "***" for item in items)
    # Revealed on request (supervisors are among the reveal roles), each warning audited.
    revealed = client.get(
        "/api/v1/warnings?rule=illness_with_large_medical_costs&reveal=sensitive",
        headers=bearer(world["tokens"]["sup_a1"]),
    ).get_json()["warnings"]
    assert {item["evidence"]["values"]["health"] for item in revealed} <= {"serious", "disabled"}
    assert "serious" in {item["evidence"]["values"]["health"] for item in revealed}
    one = client.get(
        f"/api/v1/warnings/{revealed[0]['id']}?reveal=sensitive",
        headers=bearer(world["tokens"]["sup_a1"]),
    ).get_json()
    assert one["evidence"]["values"]["health"] != "***"
    masked = client.get(
        f"/api/v1/warnings/{revealed[0]['id']}", headers=bearer(world["tokens"]["sup_a1"])
    ).get_json()
    assert masked["evidence"]["values"]["health"] == "***"
    with rt.db.unit_of_work(write=False) as session:
        audited = session.scalars(
            select(AuditEntry.object_id).where(
                AuditEntry.action == "reveal_sensitive", AuditEntry.object_type == "risk_warning"
            )
        ).all()
    assert sorted(audited) == sorted([item["id"] for item in revealed] + [revealed[0]["id"]])
    bad = client.get("/api/v1/warnings?reveal=all", headers=bearer(world["tokens"]["sup_a1"]))
    assert bad.status_code == 422


def test_a_role_outside_the_reveal_roles_may_not_reveal_evidence(client, rt, world, settings):
    import dataclasses

    from server.app import create_app

    push(
        world["tablet"],
        good_visit(medical_expenditure=15000, members=members(m0={"health": "serious"})),
    )
    app = create_app(dataclasses.replace(settings, reveal_roles=("admin",)))
    try:
        narrow = app.test_client()
        token = world["tokens"]["sup_a1"]
        response = narrow.get("/api/v1/warnings?reveal=sensitive", headers=bearer(token))
        assert response.status_code == 403, response.get_json()
        items = narrow.get("/api/v1/warnings", headers=bearer(token)).get_json()["warnings"]
        assert items and all(
            item["evidence"]["values"].get("health", "***") == "***" for item in items
        )
    finally:
        app.extensions["fieldsync"].db.dispose()
