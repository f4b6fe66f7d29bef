"""The case workflow over HTTP with real roles: a self-application pushed from a tablet opens a
referral and an entry case; the collector's visit through sync verifies it; the village, township
and county steps by supervisors at the right levels make the household `monitored`, which the
tablet pulls; the exit chain takes it to `risk_eliminated`. Wrong role, level and region get 403,
steps out of order 409, bad bodies 422 — and a refusal leaves the register and the case as they
were."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import TOWNSHIP_A, VILLAGE_A1, bearer
from tests.monitoring.cases_world import (
    COUNTY_BODY,
    counts,
    household_fields,
    open_case_of,
    step,
    verify,
    village_body,
    world_fixture,  # noqa: F401 - the `world` fixture
)
from tests.sync.helpers import Tablet


def get_case(client, token: str, case_id: uuid.UUID) -> dict[str, Any]:
    response = client.get(f"/api/v1/monitoring/cases/{case_id}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def pulled_household(tablet: Tablet, household_id: uuid.UUID) -> dict[str, Any]:
    entities, _, _ = tablet.pull_all()
    found = [e for e in entities if e["entity"] == "household" and e["id"] == str(household_id)]
    assert found, "the household was not pulled"
    fields: dict[str, Any] = found[-1]["fields"]
    return fields


def test_entry_and_exit_chains_end_to_end_with_real_roles(client, rt, world):
    tokens, household_id, tablet = world["tokens"], world["household"], world["tablet"]
    case_id = open_case_of(rt, household_id)
    assert household_fields(rt, household_id)["monitoring_status"] == "entry_review"
    assert pulled_household(tablet, household_id)["monitoring_status"] == "entry_review"
    case = get_case(client, tokens["sup_town"], case_id)
    assert case["stage"] == "verification" and case["direction"] == "entry"
    assert [r["channel"] for r in case["referrals"]] == ["self_application"]
    assert case["referrals"][0]["causes"] == ["disaster", "housing"]
    assert case["referrals"][0]["submission_id"] is not None

    visit_result = verify(world)
    case = get_case(client, tokens["sup_town"], case_id)
    assert case["stage"] == "village_review"
    assert case["steps"][0]["stage"] == "verification"
    assert case["steps"][0]["submission_id"] == visit_result["instance_id"]
    assert case["steps"][0]["taken_by"] == "col_a1"

    response = step(
        client,
        tokens["sup_village"],
        case_id,
        "village_review",
        "approve",
        **village_body(objections=["邻居反映其子女有稳定收入，经核实不属实"]),
    )
    assert response.status_code == 201, response.get_json()
    village = response.get_json()["steps"][-1]
    assert village["details"]["notice_days"] == 5 and len(village["details"]["objections"]) == 1
    response = step(
        client, tokens["sup_town"], case_id, "township_review", "approve", comment="乡镇初审通过"
    )
    assert response.status_code == 201, response.get_json()
    response = step(
        client, tokens["sup_county"], case_id, "county_review", "approve", **COUNTY_BODY
    )
    assert response.status_code == 201, response.get_json()
    closed = response.get_json()
    assert (closed["stage"], closed["outcome"], closed["version"]) == ("closed", "approved", 4)
    assert [s["seq"] for s in closed["steps"]] == [1, 2, 3, 4]

    fields = household_fields(rt, household_id)
    assert fields["monitoring_status"] == "monitored"
    assert fields["monitoring_type"] == "sudden_difficulty"
    assert fields["risk_causes"] == ["disaster", "housing"]
    pulled = pulled_household(tablet, household_id)
    assert pulled["monitoring_status"] == "monitored"
    assert pulled["monitoring_type"] == "sudden_difficulty"
    assert pulled["risk_causes"] == ["disaster", "housing"]

    # The exit chain, opened by the collector with the exit evidence.
    response = client.post(
        "/api/v1/monitoring/exit-cases",
        json={
            "household_id": str(household_id),
            "income_months_above_line": 8,
            "causes_resolved": ["disaster", "housing"],
            "measure_outcomes": "危房改造完成，公益岗位月收入1500元",
        },
        headers=bearer(tokens["col_a1"]),
    )
    assert response.status_code == 201, response.get_json()
    exit_case = response.get_json()
    assert exit_case["direction"] == "exit" and exit_case["stage"] == "verification"
    assert household_fields(rt, household_id)["monitoring_status"] == "exit_review"
    verify(world, days_ago=0)
    exit_id = uuid.UUID(exit_case["id"])
    assert get_case(client, tokens["sup_town"], exit_id)["stage"] == "village_review"
    for token, stage, body in (
        ("sup_village", "village_review", village_body()),
        ("sup_town", "township_review", {}),
        ("sup_county", "county_review", {}),
    ):
        response = step(client, tokens[token], exit_id, stage, "approve", **body)
        assert response.status_code == 201, response.get_json()
    assert household_fields(rt, household_id)["monitoring_status"] == "risk_eliminated"
    assert pulled_household(tablet, household_id)["monitoring_status"] == "risk_eliminated"

    # 有进有出: a new referral later opens a new entry case; both directions stay on record.
    response = client.post(
        "/api/v1/monitoring/referrals",
        json={"household_id": str(household_id), "causes": ["illness"], "note": "户主突发重病"},
        headers=bearer(tokens["col_a1"]),
    )
    assert response.status_code == 201 and response.get_json()["opened_case"] is True
    listed = client.get(
        f"/api/v1/monitoring/cases?household_id={household_id}", headers=bearer(tokens["sup_town"])
    ).get_json()
    assert sorted(c["direction"] for c in listed["cases"]) == ["entry", "entry", "exit"]
    assert household_fields(rt, household_id)["monitoring_status"] == "entry_review"


def test_a_visit_collected_before_the_referral_does_not_verify(client, rt, world):
    verify(world, days_ago=25)  # the application was collected 20 days ago
    case = get_case(client, world["tokens"]["sup_town"], open_case_of(rt, world["household"]))
    assert case["stage"] == "verification" and case["steps"] == []


@pytest.mark.parametrize(
    ("who", "stage"),
    [
        ("col_a1", "village_review"),  # collectors never take review steps
        ("sup_b", "village_review"),  # out of region
        ("sup_village", "township_review"),  # a village grant is below the township level
        ("sup_town", "county_review"),  # a township grant is below the county level
    ],
)
def test_wrong_role_level_or_region_is_forbidden_and_changes_nothing(client, rt, world, who, stage):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    before = (household_fields(rt, world["household"]), counts(rt))
    response = step(client, world["tokens"][who], case_id, stage, "approve", **village_body())
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["code"] == "forbidden"
    assert (household_fields(rt, world["household"]), counts(rt)) == before


def test_a_step_out_of_order_is_a_conflict_with_the_current_state(client, rt, world):
    case_id = open_case_of(rt, world["household"])
    before = counts(rt)
    response = step(client, world["tokens"]["sup_county"], case_id, "township_review", "approve")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "conflict"
    assert error["details"]["case"]["stage"] == "verification"
    assert counts(rt) == before


def test_return_goes_back_one_stage_and_needs_a_reason(client, rt, world):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    tokens = world["tokens"]
    assert (
        step(
            client, tokens["sup_village"], case_id, "village_review", "approve", **village_body()
        ).status_code
        == 201
    )
    no_reason = step(client, tokens["sup_town"], case_id, "township_review", "return")
    assert no_reason.status_code == 422
    assert [e["path"] for e in no_reason.get_json()["error"]["details"]["errors"]] == ["comment"]
    response = step(
        client,
        tokens["sup_town"],
        case_id,
        "township_review",
        "return",
        comment="公示材料缺少村民代表签字",
    )
    assert response.status_code == 201
    case = response.get_json()
    assert case["stage"] == "village_review" and case["outcome"] == "open"
    assert case["steps"][-1]["decision"] == "return"
    assert household_fields(rt, world["household"])["monitoring_status"] == "entry_review"


def test_rejection_closes_the_case_and_restores_the_prior_status(client, rt, world):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    tokens = world["tokens"]
    response = step(
        client,
        tokens["sup_village"],
        case_id,
        "village_review",
        "reject",
        comment="评议认为家庭收入稳定，不符合条件",
    )
    assert response.status_code == 201
    assert (response.get_json()["stage"], response.get_json()["outcome"]) == ("closed", "rejected")
    assert household_fields(rt, world["household"])["monitoring_status"] == "not_monitored"
    again = step(client, tokens["sup_town"], case_id, "township_review", "approve")
    assert again.status_code == 409


def test_a_supervisor_may_reject_at_verification_but_not_approve_without_a_visit(client, rt, world):
    case_id = open_case_of(rt, world["household"])
    sup = world["tokens"]["sup_village"]
    assert step(client, sup, case_id, "verification", "approve").status_code == 422
    response = step(client, sup, case_id, "verification", "reject", comment="该户已迁出本村")
    assert response.status_code == 201
    assert household_fields(rt, world["household"])["monitoring_status"] == "not_monitored"


@pytest.mark.parametrize(
    ("overrides", "path", "code"),
    [
        ({"notice_end": None}, None, None),  # default end: start + notice_days
        (
            {
                "notice_start": "2020-01-10",
                "notice_end": "2020-01-12",
                "deliberation_date": "2020-01-09",
            },
            "notice_end",
            "too_short",
        ),
        (
            {
                "notice_start": "2020-01-10",
                "notice_end": "2020-01-09",
                "deliberation_date": "2020-01-09",
            },
            "notice_end",
            "before_start",
        ),
        (
            {
                "notice_start": "2020-01-10",
                "notice_end": "2020-01-20",
                "deliberation_date": "2020-01-11",
            },
            "notice_start",
            "before_deliberation",
        ),
        ({"deliberation_date": "2999-01-01"}, "deliberation_date", "in_future"),
        ({"notice_end": "2999-01-01"}, "notice_end", "notice_not_over"),
        ({"deliberation_date": None}, "deliberation_date", "required"),
        ({"notice_start": "2026-02-30"}, "notice_start", "invalid_value"),
        ({"attachments": ["sha256:" + "ab" * 32]}, "attachments", "unknown_attachment"),
        ({"surprise": 1}, "surprise", "unknown_field"),
    ],
)
def test_village_step_rules_refuse_bad_notices_and_change_nothing(
    client, rt, world, overrides, path, code
):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    body = village_body()
    body.update({k: v for k, v in overrides.items() if v is not None})
    for name in [k for k, v in overrides.items() if v is None]:
        body.pop(name)
    before = (household_fields(rt, world["household"]), counts(rt))
    response = step(
        client, world["tokens"]["sup_village"], case_id, "village_review", "approve", **body
    )
    if path is None:
        assert response.status_code == 201, response.get_json()
        return
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["error"]["details"]["errors"]
    assert (path, code) in {(e["path"], e["code"]) for e in errors}, errors
    assert (household_fields(rt, world["household"]), counts(rt)) == before


def test_the_notice_minimum_follows_the_region_setting(client, rt, world):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    admin = world["tokens"]["admin"]
    response = client.put(
        "/api/v1/monitoring/settings",
        json={"region": TOWNSHIP_A, "values": {"notice_min_days": 7, "notice_days": 7}},
        headers=bearer(admin),
    )
    assert response.status_code == 200, response.get_json()
    shown = client.get(
        f"/api/v1/monitoring/settings?region={VILLAGE_A1}", headers=bearer(admin)
    ).get_json()
    by_name = {s["name"]: s for s in shown["settings"]}
    assert by_name["notice_min_days"]["value"] == 7
    assert by_name["notice_min_days"]["set_on"] == TOWNSHIP_A
    refused = step(
        client,
        world["tokens"]["sup_village"],
        case_id,
        "village_review",
        "approve",
        **village_body(),
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"]["errors"][0]["code"] == "too_short"


def test_county_approval_needs_a_type_and_confirmed_causes(client, rt, world):
    verify(world)
    case_id = open_case_of(rt, world["household"])
    tokens = world["tokens"]
    step(client, tokens["sup_village"], case_id, "village_review", "approve", **village_body())
    step(client, tokens["sup_town"], case_id, "township_review", "approve")
    before = (household_fields(rt, world["household"]), counts(rt))
    response = step(client, tokens["sup_county"], case_id, "county_review", "approve")
    assert response.status_code == 422
    paths = {e["path"] for e in response.get_json()["error"]["details"]["errors"]}
    assert paths == {"monitoring_type", "risk_causes"}
    assert (household_fields(rt, world["household"]), counts(rt)) == before


def test_unknown_case_is_not_found_and_a_case_elsewhere_is_forbidden(client, rt, world):
    tokens = world["tokens"]
    missing = step(client, tokens["sup_county"], uuid.uuid4(), "village_review", "approve")
    assert missing.status_code == 404
    case_id = open_case_of(rt, world["household"])
    response = client.get(f"/api/v1/monitoring/cases/{case_id}", headers=bearer(tokens["sup_b"]))
    assert response.status_code == 403
    listed = client.get("/api/v1/monitoring/cases", headers=bearer(tokens["sup_b"])).get_json()
    assert listed["total"] == 0
    mine = client.get(
        "/api/v1/monitoring/cases?stage=verification", headers=bearer(tokens["sup_town"])
    ).get_json()
    assert [c["id"] for c in mine["cases"]] == [str(case_id)]


def test_exit_case_needs_a_monitored_household_and_enough_evidence(client, rt, world):
    tokens, household_id = world["tokens"], world["household"]
    body = {
        "household_id": str(household_id),
        "income_months_above_line": 12,
        "causes_resolved": ["disaster"],
        "measure_outcomes": "收入稳定",
    }
    response = client.post(
        "/api/v1/monitoring/exit-cases", json=body, headers=bearer(tokens["col_a1"])
    )
    assert response.status_code == 409  # under entry review, not monitored
    # Take the household through the entry chain.
    verify(world)
    case_id = open_case_of(rt, household_id)
    step(client, tokens["sup_village"], case_id, "village_review", "approve", **village_body())
    step(client, tokens["sup_town"], case_id, "township_review", "approve")
    step(client, tokens["sup_county"], case_id, "county_review", "approve", **COUNTY_BODY)
    before = (household_fields(rt, household_id), counts(rt))
    short = client.post(
        "/api/v1/monitoring/exit-cases",
        json={**body, "income_months_above_line": 3},
        headers=bearer(tokens["col_a1"]),
    )
    assert short.status_code == 422
    codes = {e["path"]: e["code"] for e in short.get_json()["error"]["details"]["errors"]}
    assert codes == {"income_months_above_line": "below_min", "causes_resolved": "incomplete"}
    elsewhere = client.post(
        "/api/v1/monitoring/exit-cases",
        json={**body, "causes_resolved": ["disaster", "housing"]},
        headers=bearer(tokens["col_b"]),
    )
    assert elsewhere.status_code == 403
    assert (household_fields(rt, household_id), counts(rt)) == before


def test_settings_are_set_within_the_callers_regions_and_audited(client, rt, world):
    tokens = world["tokens"]

    def put(token: str, region: str, values: dict[str, Any]) -> Any:
        return client.put(
            "/api/v1/monitoring/settings",
            json={"region": region, "values": values},
            headers=bearer(token),
        )

    assert put(tokens["sup_town"], TOWNSHIP_A, {"notice_days": 6}).status_code == 200
    assert put(tokens["sup_b"], TOWNSHIP_A, {"notice_days": 9}).status_code == 403
    assert put(tokens["sup_town"], "*", {"notice_days": 9}).status_code == 403  # admins only
    assert put(tokens["sup_town"], TOWNSHIP_A, {"notice_days": 0}).status_code == 422
    assert put(tokens["sup_town"], TOWNSHIP_A, {"colour": 1}).status_code == 422
    # All or nothing: one bad value leaves the good one unset.
    assert put(tokens["admin"], "*", {"notice_days": 8, "notice_min_days": 99}).status_code == 422
    got = client.get("/api/v1/monitoring/settings", headers=bearer(tokens["admin"])).get_json()
    assert {s["name"]: s["value"] for s in got["settings"]}["notice_days"] == 5
    collector = client.get("/api/v1/monitoring/settings", headers=bearer(tokens["col_a1"]))
    assert collector.status_code == 403
    with rt.db.unit_of_work(write=False) as session:
        from sqlalchemy import select

        from server.audit.models import AuditEntry

        actions = list(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.action == "set_monitoring_setting")
            )
        )
    assert actions == ["set_monitoring_setting"]
