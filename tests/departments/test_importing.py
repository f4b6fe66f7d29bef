"""Department imports through the service, on SQLite and PostgreSQL: matching by identity hash,
the report's counts and rows, duplicates, set-based facts, full and partial lists, the same file
twice, and bad files refused whole."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

import server.departments.importing as importing
from server.departments.importing import ImportRefused
from server.departments.models import DepartmentFact, DepartmentImport
from server.errors import TooLarge
from server.runtime import Runtime
from tests.departments.world import (
    ALICE,
    ALLOWANCE_MAPPING,
    BOB,
    CAROL,
    DAN,
    ERIN,
    MEDICAL_HEADER,
    MEDICAL_MAPPING,
    NOBODY,
    World,
    build_register,
    csv_bytes,
    make_source,
    run_import,
)


@pytest.fixture
def world(rt: Runtime, regions: list[str]) -> World:
    return build_register(rt)


@pytest.fixture
def hook_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[uuid.UUID, set[uuid.UUID]]]:
    calls: list[tuple[uuid.UUID, set[uuid.UUID]]] = []

    def record(
        session: Any, import_id: uuid.UUID, household_ids: Any, now: Any, department: Any
    ) -> None:
        calls.append((import_id, set(household_ids)))

    monkeypatch.setattr(importing, "after_department_import", record)
    return calls


def facts(rt: Runtime) -> dict[tuple[str, uuid.UUID, str], DepartmentFact]:
    with rt.db.unit_of_work(write=False) as session:
        rows = session.scalars(select(DepartmentFact)).all()
    return {(f.fact, f.household_id, f.subject_key): f for f in rows}


def import_count(rt: Runtime) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(DepartmentImport)) or 0


def test_import_reports_matched_unmatched_ambiguous_mismatched_and_duplicate_rows(
    rt: Runtime, world: World, hook_calls: list[Any]
) -> None:
    source = make_source(rt, "medical", "medical_insurance", MEDICAL_MAPPING)
    content = csv_bytes(
        [
            MEDICAL_HEADER,
            [ALICE, "alice", "是", "1200.5", "2026-11-30"],  # row 2: register says not insured
            [BOB, "bob", "是", "0", "2026-11-30"],  # row 3: agrees
            [NOBODY, "x", "否", "", ""],  # row 4: unmatched
            [CAROL, "carol", "否", "", ""],  # row 5: ambiguous (two live members)
            [ALICE, "alice", "是", "1200.5", "2026-11-30"],  # row 6: duplicate of row 2
            [DAN, "dan", "是", "", ""],  # row 7: conflicting with row 8
            [DAN, "dan", "否", "", ""],  # row 8
            [ERIN.lower(), "erin", "否", "30", "2026/11/30"],  # row 9: register unknown
        ]
    )
    outcome = run_import(rt, source, content)
    record = outcome.record
    assert not outcome.unchanged
    assert (record.rows, record.matched, record.unmatched, record.ambiguous) == (8, 3, 1, 1)
    assert (record.mismatched, record.duplicates, record.conflicting) == (1, 1, 2)
    assert record.facts_written == 6  # insured and costs of Alice, Bob and Erin
    report = record.report
    assert [r["row"] for r in report["unmatched"]] == [4]
    assert [r["row"] for r in report["ambiguous"]] == [5]
    assert report["ambiguous"][0]["members"] == 2
    assert [(r["row"], r["first_row"]) for r in report["duplicate"]] == [(6, 2)]
    assert sorted(r["row"] for r in report["conflicting"]) == [7, 8]
    (mismatch,) = report["mismatched"]
    assert mismatch["row"] == 2
    assert mismatch["member_id"] == str(world.members["alice"])
    assert mismatch["facts"] == [{"fact": "insured", "register": False, "department": True}]
    assert report["unmatched"][0]["id_number"] == "9901**********0099"
    text = json.dumps(report)
    for clear in (ALICE, BOB, CAROL, DAN, ERIN, NOBODY):
        assert clear not in text

    stored = facts(rt)
    alice = stored[("insured", world.households["h1"], str(world.members["alice"]))]
    assert (alice.value, alice.present, alice.source_row) == (True, True, 2)
    assert alice.as_of is not None and alice.as_of.isoformat() == "2026-11-30"
    assert alice.import_id == record.id
    costs = stored[("medical_costs", world.households["h1"], str(world.members["erin"]))]
    assert costs.value == "30.00"
    assert ("insured", world.households["h4"], str(world.members["dan"])) not in stored
    assert hook_calls == [(record.id, {world.households["h1"], world.households["h2"]})]


def test_the_same_file_twice_changes_nothing(rt: Runtime, world: World) -> None:
    source = make_source(rt, "medical", "medical_insurance", MEDICAL_MAPPING)
    content = csv_bytes([MEDICAL_HEADER, [ALICE, "alice", "是", "", ""]])
    first = run_import(rt, source, content)
    before = {key: (f.value, f.import_id, f.updated_at) for key, f in facts(rt).items()}
    second = run_import(rt, source, content)
    assert second.unchanged and second.record.id == first.record.id
    assert {key: (f.value, f.import_id, f.updated_at) for key, f in facts(rt).items()} == before
    assert import_count(rt) == 1


def test_household_facts_match_through_any_member_and_a_full_list_withdraws_the_rest(
    rt: Runtime, world: World, hook_calls: list[Any]
) -> None:
    source = make_source(rt, "dibao", "civil_affairs", ALLOWANCE_MAPPING, list_kind="full")
    header = ["身份证号码"]
    # Erin is not the head of h1; Bob heads h2, whose register already says 低保.
    first = run_import(rt, source, csv_bytes([header, [ERIN], [BOB]])).record
    assert (first.matched, first.mismatched, first.facts_written) == (2, 1, 2)
    assert first.report["mismatched"][0]["household_id"] == str(world.households["h1"])
    h1 = ("minimum_allowance", world.households["h1"], "")
    h2 = ("minimum_allowance", world.households["h2"], "")
    assert facts(rt)[h1].value is True and facts(rt)[h1].member_id is None
    facts_before_second = facts(rt)
    # The next month's roll no longer lists h1: its fact is withdrawn, not deleted. h2's fact is
    # listed again with the same value: left alone (it keeps the import that said it), and the
    # rules are not asked about h2 again.
    second = run_import(rt, source, csv_bytes([header, [BOB]])).record
    assert (second.facts_written, second.facts_withdrawn) == (0, 1)
    after = facts(rt)
    assert (after[h1].present, after[h1].import_id) == (False, second.id)
    assert (after[h2].present, after[h2].import_id, after[h2].source_row) == (True, first.id, 3)
    assert after[h2].updated_at == facts_before_second[h2].updated_at
    assert hook_calls[-1] == (second.id, {world.households["h1"]})
    # A third roll lists h1 again: its fact is present again, written by the third import.
    third = run_import(rt, source, csv_bytes([header, [BOB], [ERIN]])).record
    assert (third.facts_written, third.facts_withdrawn) == (1, 0)
    assert (facts(rt)[h1].present, facts(rt)[h1].import_id) == (True, third.id)
    assert hook_calls[-1] == (third.id, {world.households["h1"]})


def test_a_partial_list_leaves_facts_it_does_not_mention(rt: Runtime, world: World) -> None:
    source = make_source(rt, "dibao-part", "civil_affairs", ALLOWANCE_MAPPING)
    run_import(rt, source, csv_bytes([["身份证号码"], [ERIN]]))
    second = run_import(rt, source, csv_bytes([["身份证号码"], [BOB]])).record
    assert second.facts_withdrawn == 0
    assert facts(rt)[("minimum_allowance", world.households["h1"], "")].present is True


def test_two_members_of_one_household_disagreeing_on_a_household_fact_apply_nothing(
    rt: Runtime, world: World
) -> None:
    mapping = {"id_number": "证件号", "facts": {"minimum_allowance": {"column": "低保"}}}
    source = make_source(rt, "dibao-yn", "civil_affairs", mapping)
    record = run_import(rt, source, csv_bytes([["证件号", "低保"], [ALICE, "是"], [ERIN, "否"]]))
    assert record.record.conflicting == 1
    assert ("minimum_allowance", world.households["h1"], "") not in facts(rt)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030", "gbk"])
def test_bom_and_chinese_encodings_are_read(rt: Runtime, world: World, encoding: str) -> None:
    source = make_source(rt, "medical", "medical_insurance", MEDICAL_MAPPING)
    content = csv_bytes([MEDICAL_HEADER, [ALICE, "王小花", "否", "", ""]], encoding)
    record = run_import(rt, source, content).record
    assert (record.rows, record.matched, record.mismatched) == (1, 1, 0)


def test_an_xlsx_workbook_is_read(rt: Runtime, world: World) -> None:
    source = make_source(rt, "medical", "medical_insurance", MEDICAL_MAPPING)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(MEDICAL_HEADER)
    sheet.append([ALICE, "alice", "是", 88, None])
    sheet.append([BOB, "bob", "否", 12.5, None])
    buffer = io.BytesIO()
    book.save(buffer)
    record = run_import(rt, source, buffer.getvalue()).record
    assert (record.rows, record.matched, record.mismatched) == (2, 2, 2)
    assert (
        facts(rt)[("medical_costs", world.households["h2"], str(world.members["bob"]))].value
        == "12.50"
    )


BAD_FILES: dict[str, tuple[dict[str, Any], bytes, str]] = {
    "wrong encoding": (
        {**MEDICAL_MAPPING, "encoding": "utf-8"},
        csv_bytes([MEDICAL_HEADER, [ALICE, "王小花", "否", "", ""]], "gbk"),
        "row 1",  # the header's Chinese is the first undecodable text
    ),
    "missing mapped column": (
        MEDICAL_MAPPING,
        csv_bytes([["身份证号", "姓名", "参保状态", "日期"], [ALICE, "a", "否", ""]]),
        "header: 自付费用",
    ),
    "malformed number": (
        MEDICAL_MAPPING,
        csv_bytes([MEDICAL_HEADER, [BOB, "b", "是", "1", ""], [ALICE, "a", "否", "12.3x", ""]]),
        "row 3: 自付费用",
    ),
    "malformed date": (
        MEDICAL_MAPPING,
        csv_bytes([MEDICAL_HEADER, [ALICE, "a", "否", "", "2026-13-45"]]),
        "row 2: 日期",
    ),
    "unknown yes/no word": (
        MEDICAL_MAPPING,
        csv_bytes([MEDICAL_HEADER, [ALICE, "a", "maybe", "", ""]]),
        "row 2: 参保状态",
    ),
    "bad identity number": (
        MEDICAL_MAPPING,
        csv_bytes([MEDICAL_HEADER, ["99010219800101", "a", "否", "", ""]]),
        "row 2: 身份证号",
    ),
    "truncated row": (
        MEDICAL_MAPPING,
        csv_bytes([MEDICAL_HEADER, [BOB, "b", "是", "1", ""]]) + f"{ALICE},a".encode(),
        "row 3",
    ),
    "not a table at all": (MEDICAL_MAPPING, b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "file"),
    "a zip that is no workbook": (MEDICAL_MAPPING, b"PK\x03\x04" + b"\x00" * 64, "file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_with_its_location_and_changes_nothing(
    rt: Runtime, world: World, case: str
) -> None:
    mapping, content, path = BAD_FILES[case]
    source = make_source(rt, "medical", "medical_insurance", mapping)
    with pytest.raises(ImportRefused) as refused:
        run_import(rt, source, content)
    assert path in [error["path"] for error in refused.value.errors]
    assert ALICE not in json.dumps(refused.value.errors, ensure_ascii=False)
    assert facts(rt) == {}
    assert import_count(rt) == 0


def test_an_oversized_file_is_refused_before_it_is_read(
    rt: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "MAX_FILE_BYTES", 1000)
    source = make_source(rt, "medical", "medical_insurance", MEDICAL_MAPPING)
    content = csv_bytes([MEDICAL_HEADER] + [[ALICE, "a", "否", "", ""]] * 100)
    with pytest.raises(TooLarge):
        run_import(rt, source, content)
    assert facts(rt) == {} and import_count(rt) == 0
