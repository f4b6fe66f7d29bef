"""A small world for case tests: the bundled forms, two households (A in village A1, B in B1),
users at every level and the calls the tests make over HTTP. Imported by the test_cases*,
test_referrals* modules; fixtures build everything through the same services users go through."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from forms.bundled import load_sample_answers
from server.households.loading import NewHousehold, load_households
from server.households.models import Household
from server.monitoring.models import CaseStep, MonitoringCase, Referral
from server.runtime import Runtime
from server.users.models import Role
from tests.conftest import COUNTY, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, bearer
from tests.sync.helpers import SAMPLE, Tablet, load_register, visit

APPLICATION = load_sample_answers("monitoring_application")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def application(
    household_id: uuid.UUID, village: str, *, channel: str = "household_application", **answers: Any
) -> dict[str, Any]:
    """The bundled sample application for `household_id` in `village`."""
    data = copy.deepcopy(APPLICATION)
    data.update(household_id=str(household_id), village_code=village, channel=channel)
    if channel != "household_application":
        data.pop("applicant_signature", None)
        data.pop("applicant_id_number", None)
    if channel == "cadre_screening":
        data["cadre_name"] = "韦村干"
    if channel == "department_screening":
        data["department"] = "civil_affairs"
    data.update(answers)
    return data


def push_one(
    tablet: Tablet, data: dict[str, Any], *, form_id: str, collected_at: datetime
) -> dict[str, Any]:
    submission = tablet.submission(data, form_id=form_id)
    submission["collected_at"] = iso(collected_at)
    response = tablet.push([submission])
    assert response.status_code == 200, response.get_json()
    result: dict[str, Any] = response.get_json()["results"][0]
    assert result["status"] == "accepted", result
    return result


def household_fields(rt: Runtime, household_id: uuid.UUID) -> dict[str, Any]:
    with rt.db.unit_of_work(write=False) as session:
        row = session.get(Household, household_id)
        assert row is not None
        return {
            "monitoring_status": row.monitoring_status.value,
            "monitoring_type": None if row.monitoring_type is None else row.monitoring_type.value,
            "risk_causes": list(row.risk_causes),
            "rev": row.rev,
        }


def counts(rt: Runtime) -> tuple[int, int, int]:
    """(cases, referrals, steps) in the database."""
    with rt.db.unit_of_work(write=False) as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (MonitoringCase, Referral, CaseStep)
        )


def open_case_of(rt: Runtime, household_id: uuid.UUID) -> uuid.UUID:
    with rt.db.unit_of_work(write=False) as session:
        case_id = session.scalar(
            select(MonitoringCase.id).where(
                MonitoringCase.household_id == household_id, MonitoringCase.outcome == "open"
            )
        )
    assert case_id is not None
    return case_id


def step(
    client: FlaskClient, token: str, case_id: uuid.UUID, stage: str, decision: str, **body: Any
) -> Any:
    return client.post(
        f"/api/v1/monitoring/cases/{case_id}/steps",
        json={"stage": stage, "decision": decision, **body},
        headers=bearer(token),
    )


def village_body(today: date | None = None, **overrides: Any) -> dict[str, Any]:
    """An approvable village step: deliberated 10 days ago, a 5-day notice since ended."""
    today = today or datetime.now(UTC).date()
    body = {
        "deliberation_date": (today - timedelta(days=10)).isoformat(),
        "notice_start": (today - timedelta(days=9)).isoformat(),
        "notice_end": (today - timedelta(days=4)).isoformat(),
        "objections": [],
        "comment": "村民代表大会评议通过，公示无异议",
    }
    body.update(overrides)
    return body


COUNTY_BODY = {
    "monitoring_type": "sudden_difficulty",
    "risk_causes": ["disaster", "housing"],
    "comment": "县级比对审定",
}


@pytest.fixture(name="world")
def world_fixture(client, rt, create_user_, login) -> dict[str, Any]:
    """Bundled forms, users at every level, a collector's tablet, and a new household's
    self-application pushed from it (the referral's case waits at verification)."""
    load_register(rt)
    create_user_("col_a1", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("col_b", Role.COLLECTOR, [TOWNSHIP_B])
    create_user_("sup_village", Role.SUPERVISOR, [VILLAGE_A1])
    create_user_("sup_town", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_county", Role.SUPERVISOR, [COUNTY])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    create_user_("admin", Role.ADMIN, [])
    tablet = Tablet.login(client, "col_a1")
    now = datetime.now(UTC)
    household_id, member_id = uuid.uuid4(), uuid.uuid4()
    with rt.db.unit_of_work() as session:
        load_households(
            session,
            rt.codec,
            [
                NewHousehold(
                    household_id,
                    {"village_code": VILLAGE_A1, "household_no": "A-009", "category": "ordinary"},
                    [(member_id, {"name": "陆桂芳", "relation": "head", "sex": "female"})],
                )
            ],
            clock=f"{int(now.timestamp() * 1000) - 86_400_000 * 30:013d}-00000-server",
        )
    push_one(
        tablet,
        application(household_id, VILLAGE_A1),
        form_id="monitoring_application",
        collected_at=now - timedelta(days=20),
    )
    return {
        "tablet": tablet,
        "household": household_id,
        "member": str(member_id),
        "tokens": {
            name: login(name)
            for name in ("col_a1", "col_b", "sup_village", "sup_town", "sup_county", "sup_b")
        }
        | {"admin": login("admin")},
    }


def verify(world: dict[str, Any], *, days_ago: int = 15) -> dict[str, Any]:
    member = {**SAMPLE["members"][0], "member_id": world["member"]}  # type: ignore[index]
    return push_one(
        world["tablet"],
        visit(world["household"], members=[member]),
        form_id="household_visit",
        collected_at=datetime.now(UTC) - timedelta(days=days_ago),
    )
