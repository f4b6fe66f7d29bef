"""The `warnings` export dataset: the warnings a push raised, as a supervisor of their township
downloads them (CSV read back cell by cell against the table), and nothing for a supervisor of
another township; the values a rule read never leave in an export."""

from __future__ import annotations

import csv
import io
from typing import Any

from server.warnings.models import WarningStatus
from tests.conftest import bearer
from tests.sync.helpers import HOUSEHOLD_A
from tests.warnings.world import (  # noqa: F401 - world_fixture is the `world` fixture
    current,
    good_visit,
    push,
    world_fixture,
)


def _export(client, token: str, query: str) -> list[dict[str, str]]:
    response = client.get(f"/api/v1/exports/warnings?format=csv{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_warnings_export_matches_the_table_and_keeps_to_the_callers_regions(
    client, rt, world: dict[str, Any]
) -> None:
    instance = push(world["tablet"], good_visit(annual_income=15000, water_status="insufficient"))
    raised = current(rt, HOUSEHOLD_A)
    assert {("income_below_line", ""), ("unsafe_water", "")} <= set(raised)

    rows = _export(client, world["tokens"]["sup_county"], "")
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {str(w.id) for w in raised.values()}
    for warning in raised.values():
        row = by_id[str(warning.id)]
        assert row["household_id"] == str(HOUSEHOLD_A)
        assert row["village_code"] == warning.village_code
        assert row["rule"] == warning.rule
        assert row["status"] == WarningStatus.OPEN.value
        assert row["holds"] in {"true", "True", "1"}
        assert instance in row["evidence_source"]
    # The values the rule read (income, the line) are not in the file.
    assert "per_capita_income" not in str(rows) and "monitoring_line" not in str(rows)

    # Another township's supervisor sees none of them; a status filter narrows.
    assert _export(client, world["tokens"]["sup_b"], "") == []
    assert _export(client, world["tokens"]["sup_county"], "&status=dismissed") == []
    assert len(_export(client, world["tokens"]["sup_county"], "&status=open")) == len(raised)
