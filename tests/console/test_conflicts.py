"""The conflicts page: a conflict made by two tablets pushing the same field, shown with both
values and their origins, resolved in one click (either side or an entered value), refused
input shown next to it; scope, roles, English."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from server.conflicts.models import Conflict, ConflictStatus
from server.households.models import Household
from server.users.models import Role
from sync_protocol.clock import Hlc
from tests.conftest import TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1
from tests.console.conftest import text_of
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register, visit


@pytest.fixture
def conflict(client, rt, create_user_):
    """Two visits of household A, seen from the same revision, with different incomes: the later
    observation (25000, by tablet 2) wins, the earlier one (20000, tablet 1) is the conflict."""
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    first, second = Tablet.login(client, "collector"), Tablet.login(client, "collector")
    base = {f"household/{HOUSEHOLD_A}": 1}
    early = first.submission(visit(annual_income=20000), base_revs=base)
    second.clock.observe(Hlc.parse(early["hlc"]))
    late = second.submission(visit(annual_income=25000), base_revs=base)
    assert second.push([late]).get_json()["results"][0]["status"] == "accepted"
    result = first.push([early]).get_json()["results"][0]
    [income] = [c for c in result["conflicts"] if c["field"] == "annual_income"]
    return {"id": income["conflict_id"], "early": early, "late": late}


def _income(rt) -> float:
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None
        return float(household.annual_income or 0)


def _status(rt, conflict_id) -> ConflictStatus:
    with rt.db.unit_of_work(write=False) as session:
        row = session.scalars(select(Conflict).where(Conflict.id == uuid.UUID(conflict_id))).one()
        status: ConflictStatus = row.status
        return status


def test_both_values_are_shown_side_by_side_with_their_origins(conflict, console):
    html = console("sup_a").page("/conflicts?field=annual_income")
    text = text_of(html)
    assert "25000" in text and "20000" in text
    assert conflict["early"]["instance_id"] in text and conflict["late"]["instance_id"] in text
    assert "collector" in text
    assert f"/conflicts/{conflict['id']}/resolve" in html


def test_taking_the_other_value_resolves_it_in_one_click(conflict, console, rt):
    browser = console("sup_a")
    response = browser.post(
        f"/conflicts/{conflict['id']}/resolve",
        {"choose": "loser", "back": "/conflicts?field=annual_income"},
        form_page="/conflicts",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/conflicts?field=annual_income"
    assert _income(rt) == 20000
    assert _status(rt, conflict["id"]) is ConflictStatus.RESOLVED
    page = text_of(browser.page("/conflicts?field=annual_income"))
    assert conflict["early"]["instance_id"] not in page  # no longer in the open queue
    resolved = text_of(browser.page("/conflicts?status=resolved&field=annual_income"))
    assert "sup_a" in resolved and "20000" in resolved
    # Twice: the second is refused (already resolved), nothing changes.
    again = browser.post(
        f"/conflicts/{conflict['id']}/resolve", {"choose": "winner"}, form_page="/conflicts"
    )
    assert again.status_code == 409
    assert _income(rt) == 20000


def test_an_entered_value_is_checked_by_the_service(conflict, console, rt):
    browser = console("sup_a")
    path = f"/conflicts/{conflict['id']}/resolve"
    data = {"entity": "household", "field": "annual_income"}
    response = browser.post(path, {**data, "value": "lots"}, form_page="/conflicts")
    assert response.status_code == 422
    assert "lots" not in str(_income(rt)) and _income(rt) == 25000
    assert 'role="alert"' in response.get_data(as_text=True)
    assert _status(rt, conflict["id"]) is ConflictStatus.OPEN
    response = browser.post(path, {**data, "value": "23500"}, form_page="/conflicts")
    assert response.status_code == 302
    assert _income(rt) == 23500


def test_other_townships_and_collectors_cannot_see_or_resolve_it(conflict, console, rt):
    other = console("sup_b")
    assert conflict["early"]["instance_id"] not in text_of(other.page("/conflicts"))
    response = other.post(
        f"/conflicts/{conflict['id']}/resolve", {"choose": "loser"}, form_page="/conflicts"
    )
    assert response.status_code == 403
    assert other.get(f"/conflicts?region={VILLAGE_A1}").status_code == 403
    assert console("collector").get("/conflicts").status_code == 403
    assert _income(rt) == 25000 and _status(rt, conflict["id"]) is ConflictStatus.OPEN
    assert console("sup_a").get("/conflicts?status=nonsense").status_code == 422


def test_the_conflicts_page_in_english(conflict, console):
    text = text_of(console("sup_a", lang="en").page("/conflicts"))
    assert "Value in the register" in text and "Keep the register's value" in text
    assert "Annual household income (yuan)" in text  # the field's own label
