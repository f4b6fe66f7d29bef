"""The monitoring summary: numbers against a hand-counted county, the layout of the answer, the
year boundary in China Standard Time, scope and bad input over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from forms.register import MonitoringStatus as St
from forms.register import MonitoringType as Ty
from server.db import utcnow
from server.monitoring.help_models import HouseholdFollowup
from server.monitoring.models import CaseDirection as Dir
from server.monitoring.models import CaseOutcome, ReferralChannel
from server.monitoring.models import CaseStage as Stage
from server.monitoring.models import StepDecision as Dec
from server.users.models import Role
from tests.conftest import (
    COUNTY,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)
from tests.monitoring.summary_fixtures import case, household, referral, step


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def county(rt, regions):
    """The hand-counted county (comments give what each row adds)."""
    with rt.db.unit_of_work() as s:
        h1 = household(s, VILLAGE_A1, St.MONITORED, Ty.UNSTABLE_LIFTED, members=3)
        h2 = household(s, VILLAGE_A1, St.ENTRY_REVIEW, None, members=2)
        household(s, VILLAGE_A1, St.NOT_MONITORED, None, members=4)  # not counted
        h4 = household(s, VILLAGE_A1, St.RISK_ELIMINATED, Ty.MARGINAL, deleted_members=1)
        household(s, VILLAGE_A2, St.MONITORED, Ty.SUDDEN_DIFFICULTY, members=2)
        h6 = household(s, VILLAGE_A2, St.EXIT_REVIEW, Ty.MARGINAL, members=3)
        h7 = household(s, VILLAGE_B1, St.MONITORED, Ty.UNSTABLE_LIFTED, members=4)
        # h1 was visited two days ago; h5 and h7 never: their follow-ups are overdue.
        s.add(HouseholdFollowup(household_id=h1, last_visit_at=utcnow() - timedelta(days=2)))
        household(s, VILLAGE_B1, St.MONITORED, Ty.MARGINAL, members=5, deleted=True)  # deleted
        referral(s, h1, VILLAGE_A1, ReferralChannel.SELF_APPLICATION, at("2026-02-01T03:00"))
        referral(s, h2, VILLAGE_A1, ReferralChannel.SELF_APPLICATION, at("2026-11-01T03:00"))
        referral(s, h2, VILLAGE_A1, ReferralChannel.CADRE_SCREENING, at("2025-06-01T03:00"))
        referral(s, h7, VILLAGE_B1, ReferralChannel.DEPARTMENT_WARNING, at("2026-01-05T03:00"))
        case(s, h2, VILLAGE_A1, Dir.ENTRY, Stage.VILLAGE_REVIEW)
        case(s, h6, VILLAGE_A2, Dir.EXIT, Stage.TOWNSHIP_REVIEW)
        closed = CaseOutcome.APPROVED
        c1 = case(s, h1, VILLAGE_A1, Dir.ENTRY, Stage.CLOSED, outcome=closed)
        step(s, c1, 4, Stage.COUNTY_REVIEW, Dec.APPROVE, at("2026-03-01T02:00"))
        # 20:00 UTC on 31 December 2025 is 1 January 2026 in China: an entry of 2026.
        c7 = case(s, h7, VILLAGE_B1, Dir.ENTRY, Stage.CLOSED, outcome=closed)
        step(s, c7, 4, Stage.COUNTY_REVIEW, Dec.APPROVE, at("2025-12-31T20:00"))
        c4 = case(s, h4, VILLAGE_A1, Dir.EXIT, Stage.CLOSED, outcome=closed)
        step(s, c4, 4, Stage.TOWNSHIP_REVIEW, Dec.APPROVE, at("2026-05-20T02:00"))  # not county
        step(s, c4, 5, Stage.COUNTY_REVIEW, Dec.APPROVE, at("2026-06-01T02:00"))
        rejected = case(s, h6, VILLAGE_A2, Dir.ENTRY, Stage.CLOSED, outcome=CaseOutcome.REJECTED)
        step(s, rejected, 4, Stage.COUNTY_REVIEW, Dec.REJECT, at("2026-04-01T02:00"))
        # An older case of h4 returned once at the county step, then approved in 2024.
        old = case(s, h4, VILLAGE_A1, Dir.ENTRY, Stage.CLOSED, outcome=closed)
        step(s, old, 4, Stage.COUNTY_REVIEW, Dec.RETURN, at("2024-05-01T02:00"))
        step(s, old, 6, Stage.COUNTY_REVIEW, Dec.APPROVE, at("2024-06-01T02:00"))


def get_summary(client, token: str, query: str) -> Any:
    response = client.get(f"/api/v1/monitoring/summary?{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


DIMENSIONS = {
    "monitored": ("type", "status"),
    "referrals": ("channel",),
    "open_cases": ("direction", "stage"),
    "movements": ("direction",),
    "overdue_followups": ("type",),
}


def cells(region: dict[str, Any], section: str) -> dict[tuple[str, ...], dict[str, int]]:
    """A section's non-zero rows: dimension codes → measures."""
    out = {}
    for row in region["sections"][section]["rows"]:
        codes = tuple(row[name] for name in DIMENSIONS[section])
        counts = {k: v for k, v in row.items() if k not in DIMENSIONS[section]}
        if any(counts.values()):
            out[codes] = counts
    return out


@pytest.fixture
def county_supervisor(create_user_, login):
    create_user_("county_sup", Role.SUPERVISOR, [COUNTY])
    return login("county_sup")


def test_county_summary_matches_the_hand_count(client, county, county_supervisor):
    doc = get_summary(client, county_supervisor, f"region={COUNTY}&year=2026")
    assert doc["year"] == 2026
    region = doc["region"]
    assert (region["code"], region["name"], region["level"]) == (COUNTY, "云溪县", "county")
    assert cells(region, "monitored") == {
        ("unstable_lifted", "monitored"): {"households": 2, "persons": 7},
        ("none", "entry_review"): {"households": 1, "persons": 2},
        ("marginal", "risk_eliminated"): {"households": 1, "persons": 1},
        ("sudden_difficulty", "monitored"): {"households": 1, "persons": 2},
        ("marginal", "exit_review"): {"households": 1, "persons": 3},
    }
    assert region["sections"]["monitored"]["total"] == {"households": 6, "persons": 15}
    assert cells(region, "referrals") == {
        ("self_application",): {"referrals": 2},
        ("department_warning",): {"referrals": 1},
    }
    assert cells(region, "open_cases") == {
        ("entry", "village_review"): {"cases": 1},
        ("exit", "township_review"): {"cases": 1},
    }
    assert cells(region, "movements") == {("entry",): {"cases": 2}, ("exit",): {"cases": 1}}
    assert cells(region, "overdue_followups") == {
        ("unstable_lifted",): {"households": 1},
        ("sudden_difficulty",): {"households": 1},
    }

    children = {c["code"]: c for c in doc["children"]}
    assert list(children) == [TOWNSHIP_A, TOWNSHIP_B]
    a, b = children[TOWNSHIP_A], children[TOWNSHIP_B]
    assert (a["name"], a["level"]) == ("青石镇", "township")
    assert a["sections"]["monitored"]["total"] == {"households": 5, "persons": 11}
    assert b["sections"]["monitored"]["total"] == {"households": 1, "persons": 4}
    assert a["sections"]["referrals"]["total"] == {"referrals": 2}
    assert b["sections"]["referrals"]["total"] == {"referrals": 1}
    assert a["sections"]["open_cases"]["total"] == {"cases": 2}
    assert b["sections"]["open_cases"]["total"] == {"cases": 0}
    assert cells(a, "movements") == {("entry",): {"cases": 1}, ("exit",): {"cases": 1}}
    assert cells(b, "movements") == {("entry",): {"cases": 1}}
    assert cells(a, "overdue_followups") == {("sudden_difficulty",): {"households": 1}}
    assert cells(b, "overdue_followups") == {("unstable_lifted",): {"households": 1}}


def test_another_year_counts_that_years_referrals_and_movements_only(
    client, county, county_supervisor
):
    doc = get_summary(client, county_supervisor, f"region={COUNTY}&year=2025")
    region = doc["region"]
    assert cells(region, "referrals") == {("cadre_screening",): {"referrals": 1}}
    assert cells(region, "movements") == {}  # the 31 December 20:00 UTC approval is 2026's
    # Households and open cases are as they stand now, whatever the year.
    assert region["sections"]["monitored"]["total"] == {"households": 6, "persons": 15}
    older = get_summary(client, county_supervisor, f"region={COUNTY}&year=2024")["region"]
    assert cells(older, "movements") == {("entry",): {"cases": 1}}  # the approve, not the return


def test_layout_labels_every_section_and_rows_cover_every_combination(
    client, county, county_supervisor
):
    doc = get_summary(client, county_supervisor, f"region={COUNTY}&year=2026")
    layout = {s["name"]: s for s in doc["layout"]}
    assert list(layout) == [
        "monitored",
        "referrals",
        "open_cases",
        "overdue_followups",
        "movements",
    ]
    monitored = layout["monitored"]
    assert monitored["label"] == {"zh": "监测对象", "en": "Households under monitoring"}
    types = [v["code"] for v in monitored["dimensions"][0]["values"]]
    statuses = [v["code"] for v in monitored["dimensions"][1]["values"]]
    assert types == ["unstable_lifted", "marginal", "sudden_difficulty", "none"]
    assert "not_monitored" not in statuses and len(statuses) == 4
    assert monitored["dimensions"][0]["values"][0]["label"]["zh"] == "脱贫不稳定户"
    for region in (doc["region"], *doc["children"]):
        assert len(region["sections"]["monitored"]["rows"]) == len(types) * len(statuses)
        assert len(region["sections"]["referrals"]["rows"]) == 3


def test_township_summary_drills_down_to_villages(client, county, create_user_, login):
    create_user_("township_sup", Role.SUPERVISOR, [TOWNSHIP_A])
    token = login("township_sup")
    doc = get_summary(client, token, f"region={TOWNSHIP_A}&year=2026")
    assert [c["code"] for c in doc["children"]] == [VILLAGE_A1, VILLAGE_A2]
    a1, a2 = doc["children"]
    assert a1["level"] == "village"
    assert a1["sections"]["monitored"]["total"] == {"households": 3, "persons": 6}
    assert a2["sections"]["monitored"]["total"] == {"households": 2, "persons": 5}
    village = get_summary(client, token, f"region={VILLAGE_A2}&year=2026")
    assert village["children"] == []
    assert village["region"]["sections"]["monitored"]["total"] == {"households": 2, "persons": 5}


def test_scope_and_bad_input_get_clear_errors(client, county, create_user_, login):
    create_user_("township_b", Role.SUPERVISOR, [TOWNSHIP_B])
    create_user_("collector_b1", Role.COLLECTOR, [VILLAGE_B1])
    token = login("township_b")
    collector = login("collector_b1")

    def status(query: str, who: str = token) -> tuple[int, Any]:
        response = client.get(f"/api/v1/monitoring/summary?{query}", headers=bearer(who))
        return response.status_code, response.get_json()

    code, body = status(f"region={COUNTY}&year=2026")
    assert code == 403 and body["error"]["code"] == "forbidden"
    assert status(f"region={TOWNSHIP_A}")[0] == 403
    assert status(f"region={TOWNSHIP_B}")[0] == 200
    assert status(f"region={VILLAGE_B1}", collector)[0] == 200
    assert status(f"region={TOWNSHIP_B}", collector)[0] == 403
    assert status("region=990102003000&year=2026")[0] == 404  # well-formed, not in the register
    for query in (
        "",
        "year=2026",
        "region=12345",
        f"region={TOWNSHIP_B}&year=1999",
        f"region={TOWNSHIP_B}&year=20x6",
        f"region={TOWNSHIP_B}&colour=red",
    ):
        code, body = status(query)
        assert code == 422, (query, body)
        assert body["error"]["code"] == "validation_error"
    assert client.get(f"/api/v1/monitoring/summary?region={COUNTY}").status_code == 401


def test_the_year_defaults_to_the_current_one(client, county, county_supervisor):
    doc = get_summary(client, county_supervisor, f"region={COUNTY}")
    assert doc["year"] in {datetime.now(UTC).year, datetime.now(UTC).year + 1}
