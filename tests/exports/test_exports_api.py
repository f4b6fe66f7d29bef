"""Exports through the real app on both databases: every dataset and format read back and checked
against the register, scope, masking and the audit record, incremental exports on the change log
(pushes, merges, a household moved between villages, a conflict resolution), and malformed
filters refused with a 422."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from forms.bundled import load_bundled_form
from forms.register import MonitoringStatus, MonitoringType
from server.audit.models import AuditEntry
from server.conflicts.models import Conflict
from server.exports.formats import dumps
from server.households.models import Household, Member
from server.monitoring.summary import REPORT_TIMEZONE
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import Role
from tests.conftest import (
    ID_NUMBER,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)
from tests.exports.world import csv_rows, export, jsonl_rows, push_register, xlsx_rows
from tests.sync.helpers import HOUSEHOLD_A, HOUSEHOLD_B, MEMBERS_A, Tablet, load_register, visit

HOUSEHOLD_FIELDS = [
    "household_no",
    "village_code",
    "address",
    "head_member_id",
    "category",
    "monitoring_type",
    "monitoring_status",
    "risk_causes",
    "annual_income",
    "per_capita_income",
    "rigid_expenditure",
    "food_clothing_ok",
    "education_ok",
    "medical_ok",
    "housing_ok",
    "water_ok",
    "relocated",
    "receives_minimum_allowance",
    "receives_extreme_poverty_support",
    "helper",
]
MEMBER_FIELDS = [
    "name",
    "relation",
    "sex",
    "birth_date",
    "in_school",
    "education_level",
    "labor_capacity",
    "insured",
    "employment",
]
REGION_NAMES = {
    "990000000000": "演示省",
    "990100000000": "演示市",
    "990102000000": "云溪县",
    TOWNSHIP_A: "青石镇",
    TOWNSHIP_B: "白水乡",
    VILLAGE_A1: "上坪村",
    VILLAGE_A2: "下坪村",
    VILLAGE_B1: "白水村",
}


@pytest.fixture
def world(rt, client, create_user_, login, village_households):
    """The register, a collector's tablet in township A, and tokens of each kind of user."""
    load_register(rt)
    create_user_("collector_a", Role.COLLECTOR, [TOWNSHIP_A])
    create_user_("admin", Role.ADMIN)
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    tablet = Tablet.login(client, "collector_a")
    return {
        "tablet": tablet,
        "admin": login("admin"),
        "sup_a": login("sup_a"),
        "sup_b": login("sup_b"),
        "collector": tablet.token,
        "households": village_households,
    }


# --- what a cell should hold, computed from the register rows -----------------------------------


def _text(value: Any) -> str:
    """A value as the CSV writes it, computed independently of the export code."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "value") and not isinstance(value, Decimal):  # an enumeration member
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def _region_cells(village: str) -> dict[str, str]:
    cells: dict[str, str] = {}
    for level, digits in (("province", 2), ("city", 4), ("county", 6), ("township", 9)):
        code = village[:digits] + "0" * (12 - digits)
        cells[f"{level}_code"] = code
        cells[f"{level}_name"] = REGION_NAMES[code]
    cells["village_name"] = REGION_NAMES[village]
    return cells


def expected_household(h: Household) -> dict[str, str]:
    import json

    cells = {
        "id": str(h.id),
        "rev": str(h.rev),
        "extra": json.dumps(h.extra, ensure_ascii=False, separators=(",", ":")),
        **_region_cells(h.village_code),
    }
    for name in [
        "household_no",
        "village_code",
        "address",
        "head_member_id",
        "category",
        "monitoring_type",
        "monitoring_status",
        "risk_causes",
        "annual_income",
        "per_capita_income",
        "rigid_expenditure",
        "food_clothing_ok",
        "education_ok",
        "medical_ok",
        "housing_ok",
        "water_ok",
        "relocated",
        "receives_minimum_allowance",
        "receives_extreme_poverty_support",
        "helper",
    ]:
        cells[name] = _text(getattr(h, name))
    return cells


def expected_member(m: Member, h: Household, *, reveal: bool = False) -> dict[str, str]:
    cells = {
        "id": str(m.id),
        "household_id": str(m.household_id),
        "household_no": _text(h.household_no),
        "village_code": h.village_code,
        "village_name": REGION_NAMES[h.village_code],
        "rev": str(m.rev),
        "id_number": _text(m.id_number_masked),
        "phone": _text(m.phone_masked),
    }
    for name in [
        "name",
        "relation",
        "sex",
        "birth_date",
        "in_school",
        "education_level",
        "labor_capacity",
        "insured",
        "employment",
    ]:
        cells[name] = _text(getattr(m, name))
    for name in ("health", "disability"):
        value = getattr(m, name)
        cells[name] = _text(value) if reveal or value is None else "***"
    return cells


def _register(rt, model: Any) -> list[Any]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(model)))


def _subset(row: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in keys}


# --- every dataset, cell by cell ----------------------------------------------------------------


def test_households_csv_matches_the_register_cell_by_cell(world, client, rt):
    result = export(client, world["admin"], "households")
    assert result.status == 200
    assert result.headers["Content-Type"].startswith("text/csv")
    rows = {row["id"]: row for row in csv_rows(result.body)}
    households = _register(rt, Household)
    assert set(rows) == {str(h.id) for h in households}
    for h in households:
        expected = expected_household(h)
        assert _subset(rows[str(h.id)], expected) == expected


def test_members_csv_is_masked_by_default_and_matches_the_register(world, client, rt):
    push_register(world["tablet"], VILLAGE_A1)  # identity numbers, phones, health, disability
    result = export(client, world["admin"], "members")
    assert result.status == 200
    rows = {row["id"]: row for row in csv_rows(result.body)}
    households = {h.id: h for h in _register(rt, Household)}
    members = _register(rt, Member)
    assert set(rows) == {str(m.id) for m in members}
    for m in members:
        expected = expected_member(m, households[m.household_id])
        assert _subset(rows[str(m.id)], expected) == expected
    head = rows[str(MEMBERS_A[0])]
    assert head["id_number"] == "4528**********001X"
    assert head["phone"] == "139****1234"
    assert head["health"] == "***"
    assert ID_NUMBER not in result.body.decode()


def test_revealed_member_export_shows_clear_values_and_is_audited(world, client, rt):
    push_register(world["tablet"], VILLAGE_A1)
    result = export(client, world["sup_a"], "members", "reveal=sensitive&region=" + TOWNSHIP_A)
    assert result.status == 200
    rows = {row["id"]: row for row in csv_rows(result.body)}
    head = rows[str(MEMBERS_A[0])]
    assert head["id_number"] == "45280219780312001X"
    assert head["phone"] == "13907711234"
    assert head["health"] == "chronic"
    assert rows[str(MEMBERS_A[1])]["disability"] == "grade_3"
    with rt.db.unit_of_work(write=False) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "export_reveal")
        ).all()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.object_id == "members"
    assert entry.region_code == TOWNSHIP_A
    assert entry.details["filters"] == {"region": TOWNSHIP_A}
    assert {"id_number", "phone", "health", "disability"} <= set(entry.details["fields"])
    # A masked export leaves no reveal entry.
    assert export(client, world["sup_a"], "members").status == 200
    with rt.db.unit_of_work(write=False) as session:
        count = len(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "export_reveal")).all()
        )
    assert count == 1


def test_reveal_is_refused_to_roles_without_the_permission(world, client, rt):
    rt_settings = rt.settings
    object.__setattr__(rt_settings, "reveal_roles", ("admin",))
    try:
        result = export(client, world["sup_a"], "members", "reveal=sensitive")
    finally:
        object.__setattr__(rt_settings, "reveal_roles", ("admin", "supervisor"))
    assert result.status == 403
    assert result.json["error"]["code"] == "forbidden"


def test_collectors_may_not_export(world, client):
    result = export(client, world["collector"], "households")
    assert result.status == 403


def test_xlsx_has_chinese_headers_and_real_types(world, client, rt):
    push_register(world["tablet"], VILLAGE_A1)
    result = export(client, world["admin"], "members", "format=xlsx")
    assert result.status == 200
    header, rows = xlsx_rows(result.body, "members")
    assert header[:3] == ["成员ID", "农户ID", "户编号"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    head = by_id[str(MEMBERS_A[0])]
    assert head["出生日期"] == datetime(1978, 3, 12)  # openpyxl reads dates back as datetimes
    assert head["参加基本医疗保险"] is True
    assert isinstance(head["版本"], int)
    households = {h.id: h for h in _register(rt, Household)}
    members = _register(rt, Member)
    assert len(rows) == len(members)
    for m in members:
        row = by_id[str(m.id)]
        expected = expected_member(m, households[m.household_id])
        assert row["姓名"] == (m.name or None)
        assert row["户编号"] == (expected["household_no"] or None)
    _, legend = xlsx_rows(result.body, "columns")
    assert ["members", "id_number", "身份证号", "Identity number", "text", True] in [
        list(r) for r in legend
    ] or any(r[1] == "id_number" and r[5] is True for r in legend)


def test_xlsx_households_numbers_are_numbers(world, client, rt):
    result = export(client, world["admin"], "households", "format=xlsx")
    header, rows = xlsx_rows(result.body, "households")
    income_at = header.index("人均纯收入（元）") if "人均纯收入（元）" in header else None
    households = {str(h.id): h for h in _register(rt, Household)}
    assert len(rows) == len(households)
    for row in rows:
        h = households[row[0]]
        cells = dict(zip(header, row, strict=True))
        if income_at is not None and h.per_capita_income is not None:
            assert isinstance(row[income_at], float | int)
            assert Decimal(str(row[income_at])) == h.per_capita_income
        assert cells["户编号"] == h.household_no


def test_jsonl_keys_are_codes_and_values_typed(world, client, rt):
    result = export(client, world["admin"], "households", "format=jsonl")
    assert result.status == 200
    rows = {row["id"]: row for row in jsonl_rows(result.body)}
    for h in _register(rt, Household):
        row = rows[str(h.id)]
        assert row["village_code"] == h.village_code
        assert row["rev"] == h.rev
        assert "deleted" not in row
        if h.per_capita_income is not None:
            assert Decimal(str(row["per_capita_income"])) == h.per_capita_income
        assert row["category"] == (h.category.value if h.category else None)


def test_labels_in_chinese_or_english(world, client):
    zh = csv_rows(export(client, world["admin"], "households", "labels=zh&header=zh").body)
    assert {row["户类别"] for row in zh} >= {"脱贫户"}
    en = csv_rows(export(client, world["admin"], "households", "labels=en").body)
    assert all(
        row["category"] in {"Lifted out of poverty", "Ordinary rural household", ""}
        or row["category"]
        for row in en
    )
    assert {row["category"] for row in en} != {row["户类别"] for row in zh}


def test_csv_with_bom_reads_back_with_chinese_intact(world, client):
    result = export(client, world["admin"], "households", "bom=true&header=zh")
    assert result.body.startswith(b"\xef\xbb\xbf")
    import csv as csv_module

    text = result.body.decode("utf-8-sig")
    rows = list(csv_module.reader(io.StringIO(text, newline="")))
    assert rows[0][0] == "农户ID"
    assert "上坪村" in {cell for row in rows[1:] for cell in row}
    without = export(client, world["admin"], "households")
    assert not without.body.startswith(b"\xef\xbb\xbf")


def test_visits_are_flattened_by_form_version_and_repeats_linked_by_key(world, client, rt):
    tablet = world["tablet"]
    response = tablet.push([tablet.submission(visit(HOUSEHOLD_A, annual_income=20500))])
    assert response.status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        accepted = session.scalars(
            select(Submission).where(Submission.status == SubmissionStatus.ACCEPTED)
        ).all()
    assert len(accepted) == 1
    instance_id = str(accepted[0].instance_id)
    flat = csv_rows(
        export(client, world["sup_a"], "visits", "form_id=household_visit&form_version=1").body
    )
    assert [row["instance_id"] for row in flat] == [instance_id]
    assert flat[0]["annual_income"] == "20500"
    assert flat[0]["household_id"] == str(HOUSEHOLD_A)
    assert flat[0]["collector"] == "collector_a"
    assert flat[0]["village_code"] == VILLAGE_A1
    repeats = csv_rows(
        export(
            client, world["sup_a"], "visit_repeats", "form_id=household_visit&form_version=1"
        ).body
    )
    members = accepted[0].payload["data"]["members"]
    assert [row["key"] for row in repeats] == [
        f"{instance_id}/members[{n}]" for n in range(1, len(members) + 1)
    ]
    assert {row["parent_key"] for row in repeats} == {instance_id}
    assert [row["member_id"] for row in repeats] == [m["member_id"] for m in members]
    assert {row["health"] for row in repeats} <= {"***", ""}
    plain = jsonl_rows(export(client, world["sup_a"], "visits", "format=jsonl").body)
    assert plain[0]["answers"]["annual_income"] == 20500
    # Township B's supervisor sees none of it.
    assert csv_rows(export(client, world["sup_b"], "visits").body) == []


def test_conflicts_and_quarantine_datasets(world, client, rt):
    tablet = world["tablet"]
    other = Tablet.login(client, "collector_a")
    # Two tablets change the same field from the same base: the later clock wins, the other is a
    # conflict (values differ).
    first = tablet.submission(visit(HOUSEHOLD_A, annual_income=21000), base_revs={})
    second = other.submission(visit(HOUSEHOLD_A, annual_income=22000), base_revs={})
    assert tablet.push([first]).status_code == 200
    assert other.push([second]).status_code == 200
    bad = tablet.submission(visit(HOUSEHOLD_A), form_id="no_such_form")
    assert tablet.push([bad]).status_code == 200
    with rt.db.unit_of_work(write=False) as session:
        conflicts = session.scalars(select(Conflict)).all()
        rejected = session.scalars(
            select(Submission).where(Submission.status == SubmissionStatus.REJECTED)
        ).all()
    rows = csv_rows(export(client, world["sup_a"], "conflicts").body)
    assert {row["id"] for row in rows} == {str(c.id) for c in conflicts}
    for c in conflicts:
        row = next(r for r in rows if r["id"] == str(c.id))
        assert row["field"] == c.field
        assert row["status"] == c.status.value
        assert row["winner_clock"] == c.winner_clock
    # A submission naming an unknown form has no known village: only admins see it.
    quarantine = csv_rows(export(client, world["admin"], "quarantine").body)
    assert {row["instance_id"] for row in quarantine} == {str(s.instance_id) for s in rejected}
    assert len(quarantine) >= 1
    assert all(row["reason"] for row in quarantine)
    assert csv_rows(export(client, world["sup_a"], "quarantine").body) == []
    assert csv_rows(export(client, world["sup_b"], "conflicts").body) == []


def test_zip_bundle_holds_every_dataset_that_takes_the_filters(world, client):
    result = export(client, world["sup_a"], "all", f"format=zip&region={TOWNSHIP_A}")
    assert result.status == 200
    archive = zipfile.ZipFile(io.BytesIO(result.body))
    names = set(archive.namelist())
    assert {"households.csv", "members.csv", "visits.csv", "conflicts.csv", "cases.csv"} <= names
    households = csv_rows(archive.read("households.csv"))
    assert {row["village_code"] for row in households} <= {VILLAGE_A1, VILLAGE_A2}
    assert len(households) == 3


def test_monitoring_summary_dataset(world, client):
    result = export(client, world["sup_a"], "monitoring_summary", f"region={TOWNSHIP_A}&year=2026")
    assert result.status == 200, result.body
    rows = csv_rows(result.body)
    assert {row["region_code"] for row in rows if row["is_total"] == "true"} == {TOWNSHIP_A}
    assert {row["region_code"] for row in rows if row["is_total"] == "false"} <= {
        VILLAGE_A1,
        VILLAGE_A2,
    }
    missing = export(client, world["sup_a"], "monitoring_summary")
    assert missing.status == 422


# --- scope and malformed requests ----------------------------------------------------------------


def test_township_supervisor_never_sees_another_township(world, client):
    for dataset in ("households", "members", "visits", "conflicts", "quarantine", "cases"):
        rows = csv_rows(export(client, world["sup_a"], dataset).body)
        villages = {row["village_code"] for row in rows}
        assert villages <= {VILLAGE_A1, VILLAGE_A2}, dataset
    rows = csv_rows(export(client, world["sup_a"], "households").body)
    assert {row["village_code"] for row in rows} == {VILLAGE_A1, VILLAGE_A2}
    refused = export(client, world["sup_a"], "households", f"region={TOWNSHIP_B}")
    assert refused.status == 403
    assert refused.json["error"]["code"] == "forbidden"
    feed = client.get(
        f"/api/v1/exports/households/feed?region={VILLAGE_B1}", headers=bearer(world["sup_a"])
    )
    assert feed.status_code == 403


def test_region_filter_narrows_to_one_village(world, client):
    rows = csv_rows(export(client, world["admin"], "households", f"region={VILLAGE_A2}").body)
    assert [row["village_code"] for row in rows] == [VILLAGE_A2]


@pytest.mark.parametrize(
    ("dataset", "query", "path"),
    [
        ("households", "region=12345", "region"),
        ("households", "region=000000000000", "region"),
        ("households", "monitoring_type=nonsense", "monitoring_type"),
        ("households", "changed_since=yesterday", "changed_since"),
        ("households", "format=pdf", "format"),
        ("households", "colour=blue", "colour"),
        ("households", "form_id=household_visit", "form_id"),
        ("households", "cursor=not-a-cursor", "cursor"),
        ("visits", "form_version=0", "form_version"),
        ("visits", "cursor=abc.def", "cursor"),
        ("households", "region=990102001000&region=990102002000", "region"),
    ],
)
def test_malformed_filters_are_a_422_naming_the_parameter(world, client, dataset, query, path):
    result = export(client, world["admin"], dataset, query)
    assert result.status == 422, result.body
    assert result.json["error"]["code"] == "validation_error"
    assert path in {e["path"] for e in result.json["error"]["details"]["errors"]}


def test_unknown_dataset_is_a_404(world, client):
    result = export(client, world["admin"], "nonsense")
    assert result.status == 404


# --- incremental exports ------------------------------------------------------------------------


def _cursor(result: Any) -> str:
    cursor: str = result.headers["X-Export-Cursor"]
    return cursor


def test_incremental_export_returns_exactly_the_changes_after_pushes(world, client):
    full = export(client, world["sup_a"], "households")
    assert full.status == 200
    cursor = _cursor(full)
    nothing = export(client, world["sup_a"], "households", f"cursor={cursor}")
    assert csv_rows(nothing.body) == []
    tablet = world["tablet"]
    assert (
        tablet.push([tablet.submission(visit(HOUSEHOLD_A, annual_income=23000))]).status_code == 200
    )
    changed = export(client, world["sup_a"], "households", f"cursor={cursor}")
    rows = csv_rows(changed.body)
    assert [(row["change"], row["id"]) for row in rows] == [("changed", str(HOUSEHOLD_A))]
    assert rows[0]["annual_income"] == "23000.00"
    members = csv_rows(
        export(
            client,
            world["sup_a"],
            "members",
            f"cursor={_cursor(export(client, world['sup_a'], 'members'))}",
        ).body
    )
    assert members == []
    # The next cursor starts after these changes.
    again = export(client, world["sup_a"], "households", f"cursor={_cursor(changed)}")
    assert csv_rows(again.body) == []


def test_moved_household_appears_in_the_new_village_and_is_removed_from_the_old(world, client):
    old = export(client, world["admin"], "households", f"region={VILLAGE_A1}")
    new = export(client, world["admin"], "households", f"region={VILLAGE_A2}")
    old_members = export(client, world["admin"], "members", f"region={VILLAGE_A1}")
    push_register(world["tablet"], VILLAGE_A2)
    in_new = csv_rows(
        export(
            client, world["admin"], "households", f"region={VILLAGE_A2}&cursor={_cursor(new)}"
        ).body
    )
    assert [(row["change"], row["id"], row["village_code"]) for row in in_new] == [
        ("changed", str(HOUSEHOLD_A), VILLAGE_A2)
    ]
    from_old = csv_rows(
        export(
            client, world["admin"], "households", f"region={VILLAGE_A1}&cursor={_cursor(old)}"
        ).body
    )
    assert [(row["change"], row["id"], row["village_code"]) for row in from_old] == [
        ("removed", str(HOUSEHOLD_A), "")
    ]
    members_old = csv_rows(
        export(
            client, world["admin"], "members", f"region={VILLAGE_A1}&cursor={_cursor(old_members)}"
        ).body
    )
    assert {(row["change"], row["id"]) for row in members_old} == {
        ("removed", str(m)) for m in MEMBERS_A
    }


def test_incremental_export_sees_a_conflict_resolution(world, client, rt):
    tablet = world["tablet"]
    other = Tablet.login(client, "collector_a")
    assert (
        tablet.push([tablet.submission(visit(HOUSEHOLD_A, annual_income=21000))]).status_code == 200
    )
    assert (
        other.push([other.submission(visit(HOUSEHOLD_A, annual_income=22000))]).status_code == 200
    )
    with rt.db.unit_of_work(write=False) as session:
        conflict = session.scalars(
            select(Conflict).where(Conflict.field == "annual_income")
        ).first()
    assert conflict is not None
    start = export(client, world["sup_a"], "households")
    response = client.post(
        f"/api/v1/conflicts/{conflict.id}/resolve",
        json={"value": 21500},
        headers=bearer(world["sup_a"]),
    )
    assert response.status_code == 200, response.get_json()
    rows = csv_rows(export(client, world["sup_a"], "households", f"cursor={_cursor(start)}").body)
    assert [(row["change"], row["id"], row["annual_income"]) for row in rows] == [
        ("changed", str(HOUSEHOLD_A), "21500.00")
    ]
    assert HOUSEHOLD_B  # (B is in township B: never part of sup_a's exports)


def test_a_cursor_is_bound_to_its_dataset_user_and_filters(world, client):
    cursor = _cursor(export(client, world["sup_a"], "households"))
    assert export(client, world["sup_a"], "members", f"cursor={cursor}").status == 422
    assert export(client, world["admin"], "households", f"cursor={cursor}").status == 422
    assert (
        export(client, world["sup_a"], "households", f"cursor={cursor}&region={VILLAGE_A1}").status
        == 422
    )
    assert export(client, world["sup_a"], "conflicts", f"cursor={cursor}").status == 422


# --- the BI feed ---------------------------------------------------------------------------------


def test_feed_pages_with_next_links_until_the_end(world, client, rt):
    url = "/api/v1/exports/members/feed?limit=2"
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url, headers=bearer(world["admin"]))
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        seen += [row["id"] for row in page["value"]]
        url = page.get("next", "").replace("http://localhost", "")
        pages += 1
    members = _register(rt, Member)
    assert sorted(seen) == sorted(str(m.id) for m in members)
    assert len(seen) == len(set(seen))
    assert pages >= 3
    bad = client.get("/api/v1/exports/members/feed?after=nope", headers=bearer(world["admin"]))
    assert bad.status_code == 422


def test_dataset_list_names_every_dataset(world, client):
    response = client.get("/api/v1/exports", headers=bearer(world["sup_a"]))
    assert response.status_code == 200
    names = {d["name"] for d in response.get_json()["datasets"]}
    assert {
        "households",
        "members",
        "visits",
        "visit_repeats",
        "conflicts",
        "quarantine",
        "cases",
        "case_steps",
        "monitoring_summary",
    } <= names


def test_date_cells_are_iso_in_csv(world, client, rt):
    rows = csv_rows(export(client, world["admin"], "members").body)
    head = next(r for r in rows if r["id"] == str(MEMBERS_A[0]))
    assert date.fromisoformat(head["birth_date"]) == date(1978, 3, 12)


def test_flattened_choice_answers_show_their_form_labels(world, client):
    """With a form and version, a select_one answer is its choice's label and a select_multiple
    answer the labels of its choices, in the language `labels` asks for; codes by default."""
    tablet = world["tablet"]
    answers = visit(HOUSEHOLD_A, house_safety="safe", risk_causes=["illness", "water"])
    assert tablet.push([tablet.submission(answers)]).status_code == 200
    definition = load_bundled_form("household_visit")
    lists = definition.choice_lists
    label = {(name, choice.code): choice.label for name, items in lists.items() for choice in items}
    safe = label[("library.house_safety", "safe")]
    illness = label[("register.risk_cause", "illness")]
    water = label[("register.risk_cause", "water")]
    form = "form_id=household_visit&form_version=1"
    (coded,) = csv_rows(export(client, world["sup_a"], "visits", form).body)
    assert coded["house_safety"] == "safe"
    assert coded["risk_causes"] == "illness;water"
    (zh,) = csv_rows(export(client, world["sup_a"], "visits", f"{form}&labels=zh").body)
    assert zh["house_safety"] == safe.zh
    assert zh["risk_causes"] == f"{illness.zh};{water.zh}"
    (en,) = jsonl_rows(
        export(client, world["sup_a"], "visits", f"{form}&labels=en&format=jsonl").body
    )
    assert en["house_safety"] == safe.en
    assert en["risk_causes"] == [illness.en, water.en]
    assert safe.zh != safe.en  # the two languages were told apart


def test_monitoring_summary_rows_are_the_summary_figures(world, client, rt):
    """Every figure of the monitoring summary (`GET /api/v1/monitoring/summary`) is one row of the
    dataset, with the same value, and the dataset has no other rows."""
    push_register(world["tablet"], VILLAGE_A1)
    with rt.db.unit_of_work() as session:  # households under monitoring, so figures are not 0
        session.execute(
            update(Household).values(
                monitoring_type=MonitoringType.MARGINAL,
                monitoring_status=MonitoringStatus.MONITORED,
            )
        )
    year = datetime.now(REPORT_TIMEZONE).year
    query = f"region={TOWNSHIP_A}&year={year}"
    response = client.get(f"/api/v1/monitoring/summary?{query}", headers=bearer(world["sup_a"]))
    assert response.status_code == 200
    document = response.get_json()
    expected: dict[tuple[str, bool, str, str, str], int] = {}
    for region, is_total in [(document["region"], True)] + [
        (child, False) for child in document["children"]
    ]:
        for layout in document["layout"]:
            section = region["sections"][layout["name"]]
            names = [d["name"] for d in layout["dimensions"]]
            measures = [m["name"] for m in layout["measures"]]
            lines = [({n: row[n] for n in names}, row) for row in section["rows"]]
            lines.append(({}, section["total"]))
            for dimensions, values in lines:
                for measure in measures:
                    key = (region["code"], is_total, layout["name"], dumps(dimensions), measure)
                    expected[key] = values[measure]
    rows = jsonl_rows(
        export(client, world["sup_a"], "monitoring_summary", f"{query}&format=jsonl").body
    )
    exported = {
        (r["region_code"], r["is_total"], r["section"], dumps(r["dimensions"]), r["measure"]): r[
            "value"
        ]
        for r in rows
    }
    assert len(exported) == len(rows)  # no figure twice
    assert exported == expected
    assert {r["year"] for r in rows} == {year}
    assert any(value for value in expected.values())  # figures other than zero were compared


def test_quarantine_export_ends_with_each_submissions_review(world, client, rt):
    tablet = world["tablet"]
    wrong = tablet.submission(visit(HOUSEHOLD_A))
    wrong["data"]["annual_income"] = "lots"
    waiting = tablet.submission(visit(HOUSEHOLD_A), version=99)
    results = tablet.push([wrong, waiting]).get_json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    dismissed = client.post(
        f"/api/v1/submissions/{wrong['instance_id']}/dismiss",
        json={"reason": "重复采集 13812345678"},
        headers=bearer(world["sup_a"]),
    )
    assert dismissed.status_code == 200
    # Refused before binding, they have no village: the admin's export holds them.
    body = export(client, world["admin"], "quarantine").body
    header = body.decode("utf-8-sig").splitlines()[0].split(",")
    # The columns there were before come first, in their order; the review ones after them.
    assert header[:12] == [
        "instance_id",
        "form_id",
        "form_version",
        "village_code",
        "village_name",
        "collector",
        "device_id",
        "collected_at",
        "received_at",
        "reason",
        "errors",
        "payload",
    ]
    assert header[12:] == [
        "review_status",
        "reviewed_by",
        "reviewed_at",
        "review_reason",
        "corrected_by_instance_id",
    ]
    rows = {row["instance_id"]: row for row in csv_rows(body)}
    row = rows[wrong["instance_id"]]
    assert (row["review_status"], row["reviewed_by"]) == ("dismissed", "sup_a")
    assert row["reviewed_at"] and "13812345678" not in row["review_reason"]
    assert rows[waiting["instance_id"]]["review_status"] == ""
    lines = jsonl_rows(export(client, world["admin"], "quarantine", "format=jsonl").body)
    assert {r["instance_id"]: r["review_status"] for r in lines} == {
        wrong["instance_id"]: "dismissed",
        waiting["instance_id"]: None,
    }
    # Received long ago: `changed_since` still finds the one reviewed since.
    with rt.db.unit_of_work() as session:
        session.execute(
            update(Submission)
            .where(Submission.status == SubmissionStatus.REJECTED)
            .values(received_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
    recent = csv_rows(
        export(client, world["admin"], "quarantine", "changed_since=2026-06-01T00:00:00Z").body
    )
    assert [row["instance_id"] for row in recent] == [wrong["instance_id"]]
