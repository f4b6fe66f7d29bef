"""Building blocks for the help and follow-up tests: putting households under monitoring (written
directly: the case workflow that does it for real lives elsewhere) and pulling raw pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update

from forms.register import MonitoringStatus, MonitoringType
from server.households.models import Household
from server.monitoring.help_models import HouseholdFollowup
from server.runtime import Runtime
from tests.conftest import bearer


def make_monitored(
    rt: Runtime,
    household_id: uuid.UUID,
    kind: MonitoringType | None = MonitoringType.MARGINAL,
    status: MonitoringStatus = MonitoringStatus.MONITORED,
) -> None:
    with rt.db.unit_of_work() as session:
        session.execute(
            update(Household)
            .where(Household.id == household_id)
            .values(monitoring_status=status, monitoring_type=kind)
        )


def set_last_visit(rt: Runtime, household_id: uuid.UUID, at: datetime) -> None:
    with rt.db.unit_of_work() as session:
        session.add(HouseholdFollowup(household_id=household_id, last_visit_at=at))


def pull_pages(
    client: FlaskClient, token: str, cursor: str | None = None, limit: int = 1000
) -> tuple[list[dict[str, Any]], str]:
    """Every page of one pull, raw, and the cursor to go on from."""
    pages: list[dict[str, Any]] = []
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/api/v1/sync/pull{query}", headers=bearer(token))
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        pages.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            return pages, page["cursor"]


def pulled_help(pages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The help entries of a pull by household id (later pages win, as a tablet applies them)."""
    found: dict[str, dict[str, Any]] = {}
    for page in pages:
        for entry in page["help"]:
            found[entry["household_id"]] = entry
    return found
