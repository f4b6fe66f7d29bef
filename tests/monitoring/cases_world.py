"""A small world for case tests: the bundled forms, two households (A in village A1, B in B1),
users at every level and the calls the tests make over HTTP. Imported by the test_cases*,
test_referrals* modules; fixtures build everything through the same services users go through."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from forms.bundled import load_sample_answers
from server.households.models import Household
from server.monitoring.models import CaseStep, MonitoringCase, Referral
from server.runtime import Runtime
from tests.conftest import bearer
from tests.sync.helpers import HOUSEHOLD_A, Tablet

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
__all__ = ["HOUSEHOLD_A"]
