"""Referrals from the three channels: a self-application (or a village or department screening
written on the application form) pushed from a tablet, a cadre's screening by API or by the
visit form's screening answer, and a department's warning by the admin API. A household already
under review is never referred twice: the referral joins its open case as more evidence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from forms.compatibility import check_register_compatibility
from forms.definition_schema import load_definition
from server.monitoring.models import MonitoringCase, Referral
from tests.conftest import VILLAGE_A1, VILLAGE_B1, bearer
from tests.monitoring.cases_world import (
    application,
    counts,
    household_fields,
    open_case_of,
    push_one,
    world_fixture,  # noqa: F401 - the `world` fixture
)
from tests.sync.helpers import HOUSEHOLD_A, HOUSEHOLD_B, visit


def referrals_of(rt, household_id: uuid.UUID) -> list[Referral]:
    with rt.db.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(Referral)
                .where(Referral.household_id == household_id)
                .order_by(Referral.created_at, Referral.referred_at)
            )
        )


def screen(client, token: str, household_id: uuid.UUID, **body):
    return client.post(
        "/api/v1/monitoring/referrals",
        json={"household_id": str(household_id), "causes": ["illness"], "note": "入户排查", **body},
        headers=bearer(token),
    )


def test_a_self_application_opens_a_referral_and_an_entry_case_in_the_push(rt, world):
    (referral,) = referrals_of(rt, world["household"])
    assert referral.channel.value == "self_application"
    assert referral.causes == ["disaster", "housing"]
    assert referral.submission_id is not None and referral.case_id is not None
    assert referral.evidence["risk_description"].startswith("8月山洪")
    assert "applicant_id_number" not in referral.evidence
    # The claimed causes go to the referral, not to the register (server-owned).
    assert household_fields(rt, world["household"])["risk_causes"] == []
    assert household_fields(rt, world["household"])["monitoring_status"] == "entry_review"


@pytest.mark.parametrize(
    ("answer", "channel", "department"),
    [
        ("cadre_screening", "cadre_screening", None),
        ("department_screening", "department_warning", "civil_affairs"),
    ],
)
def test_the_application_forms_channel_answer_picks_the_referral_channel(
    rt, world, answer, channel, department
):
    push_one(
        world["tablet"],
        application(HOUSEHOLD_A, VILLAGE_A1, channel=answer),
        form_id="monitoring_application",
        collected_at=datetime.now(UTC) - timedelta(days=1),
    )
    (referral,) = referrals_of(rt, HOUSEHOLD_A)
    assert (referral.channel.value, referral.department) == (channel, department)


def test_a_household_under_review_gets_the_referral_attached_not_a_second_case(client, rt, world):
    case_id = open_case_of(rt, world["household"])
    response = screen(client, world["tokens"]["sup_town"], world["household"])
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["opened_case"] is False and body["case_id"] == str(case_id)
    assert counts(rt)[:2] == (1, 2)
    department = client.post(
        "/api/v1/monitoring/referrals/department",
        json={
            "household_id": str(world["household"]),
            "department": "medical_insurance",
            "causes": ["illness"],
            "evidence": {"hospital_bill": 86000},
        },
        headers=bearer(world["tokens"]["admin"]),
    )
    assert department.status_code == 201
    assert department.get_json()["case_id"] == str(case_id)
    case = client.get(
        f"/api/v1/monitoring/cases/{case_id}", headers=bearer(world["tokens"]["sup_town"])
    ).get_json()
    assert [r["channel"] for r in case["referrals"]] == [
        "self_application",
        "cadre_screening",
        "department_warning",
    ]


def test_a_cadre_screening_by_api_opens_a_case(client, rt, world):
    response = screen(client, world["tokens"]["col_a1"], HOUSEHOLD_A, evidence={"visits": 2})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["opened_case"] is True
    with rt.db.unit_of_work(write=False) as session:
        case = session.scalars(
            select(MonitoringCase).where(MonitoringCase.household_id == HOUSEHOLD_A)
        ).one()
    assert (case.direction.value, case.stage.value, case.prior_status.value) == (
        "entry",
        "verification",
        "not_monitored",
    )
    assert household_fields(rt, HOUSEHOLD_A)["monitoring_status"] == "entry_review"


@pytest.mark.parametrize(
    ("who", "household", "body", "status"),
    [
        ("col_a1", "B", {}, 403),  # B is in another township
        ("col_a1", "missing", {}, 404),
        ("col_a1", "A", {"causes": []}, 422),
        ("col_a1", "A", {"causes": ["boredom"]}, 422),
        ("col_a1", "A", {"note": "x" * 2001}, 422),
    ],
)
def test_bad_screenings_are_refused_and_write_nothing(
    client, rt, world, who, household, body, status
):
    target = {"A": HOUSEHOLD_A, "B": HOUSEHOLD_B, "missing": uuid.uuid4()}[household]
    before = (counts(rt), household_fields(rt, HOUSEHOLD_A), household_fields(rt, HOUSEHOLD_B))
    response = screen(client, world["tokens"][who], target, **body)
    assert response.status_code == status, response.get_json()
    after = (counts(rt), household_fields(rt, HOUSEHOLD_A), household_fields(rt, HOUSEHOLD_B))
    assert after == before


def test_department_referrals_are_for_admins_and_name_the_department(client, rt, world):
    body = {
        "household_id": str(HOUSEHOLD_B),
        "department": "civil_affairs",
        "causes": ["lack_of_labor"],
        "evidence": {"list": "2026年12月低保名单比对"},
    }
    refused = client.post(
        "/api/v1/monitoring/referrals/department",
        json=body,
        headers=bearer(world["tokens"]["sup_county"]),
    )
    assert refused.status_code == 403
    missing = client.post(
        "/api/v1/monitoring/referrals/department",
        json={k: v for k, v in body.items() if k != "department"},
        headers=bearer(world["tokens"]["admin"]),
    )
    assert missing.status_code == 422
    response = client.post(
        "/api/v1/monitoring/referrals/department",
        json=body,
        headers=bearer(world["tokens"]["admin"]),
    )
    assert response.status_code == 201
    (referral,) = referrals_of(rt, HOUSEHOLD_B)
    assert (referral.channel.value, referral.department) == ("department_warning", "civil_affairs")
    assert referral.evidence == {"list": "2026年12月低保名单比对"}
    assert household_fields(rt, HOUSEHOLD_B)["monitoring_status"] == "entry_review"


def test_a_visit_answering_refer_for_monitoring_is_a_cadre_screening(rt, world):
    collected = datetime.now(UTC) - timedelta(hours=2)
    push_one(world["tablet"], visit(HOUSEHOLD_A), form_id="household_visit", collected_at=collected)
    assert referrals_of(rt, HOUSEHOLD_A) == []
    push_one(
        world["tablet"],
        visit(
            HOUSEHOLD_A,
            refer_for_monitoring=True,
            risk_causes=["illness", "education"],
            referral_note="户主确诊尿毒症，需长期透析",
        ),
        form_id="household_visit",
        collected_at=collected + timedelta(minutes=30),
    )
    (referral,) = referrals_of(rt, HOUSEHOLD_A)
    assert referral.channel.value == "cadre_screening"
    assert referral.causes == ["education", "illness"]
    assert referral.note == "户主确诊尿毒症，需长期透析"
    assert household_fields(rt, HOUSEHOLD_A)["monitoring_status"] == "entry_review"


def test_risk_causes_are_server_owned_and_no_form_may_bind_them():
    definition = load_definition(
        {
            "form_id": "claims_causes",
            "title": "x",
            "entities": [
                {"name": "hh", "type": "household", "id_field": "household_id", "create": False}
            ],
            "fields": [
                {"name": "household_id", "type": "text", "required": True},
                {
                    "name": "risk_causes",
                    "type": "select_multiple",
                    "choices": "register.risk_cause",
                    "bind": "hh.risk_causes",
                },
            ],
        }
    )
    issues = check_register_compatibility(definition)
    assert [issue.code.value for issue in issues] == ["field_read_only"]


def test_referral_counts_stay_put_for_a_household_in_another_village(rt, world):
    assert all(r.village_code == VILLAGE_A1 for r in referrals_of(rt, world["household"]))
    assert referrals_of(rt, HOUSEHOLD_B) == [] and VILLAGE_B1 != VILLAGE_A1
