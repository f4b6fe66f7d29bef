"""Importing the region tree from CSV: the parsing rules on their own, then `fieldsync regions
import` on both databases — all or nothing, idempotent, every bad row reported by line number."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.config import PROJECT_ROOT
from server.demo.county import demo_regions
from server.regions.codes import RegionLevel
from server.regions.importing import parse_regions
from server.regions.models import Region
from tests.conftest import CITY, COUNTY, PROVINCE, TOWNSHIP_A, VILLAGE_A1, VILLAGE_A2

HEADER = "code,name,parent_code\n"
# Children before parents on purpose: the file order must not matter.
TREE = (
    HEADER
    + f"{VILLAGE_A1},上坪村,{TOWNSHIP_A}\n"
    + f"{VILLAGE_A2},下坪村,\n"
    + f"{TOWNSHIP_A},青石镇,{COUNTY}\n"
    + f"{COUNTY},云溪县,{CITY}\n"
    + f"{CITY},演示市,{PROVINCE}\n"
    + f"{PROVINCE},演示省,\n"
)


@pytest.fixture
def import_file(cli, tmp_path):
    """`import_file(text, encoding="utf-8")` writes a CSV file and runs `regions import` on it."""

    def run(text, encoding="utf-8"):
        path = tmp_path / "regions.csv"
        path.write_bytes(text.encode(encoding))
        return cli("regions", "import", str(path))

    return run


def _regions(rt):
    with rt.db.unit_of_work(write=False) as session:
        rows = session.execute(select(Region.code, Region.name, Region.level, Region.parent_code))
        return {code: (name, level, parent) for code, name, level, parent in rows}


def _count(rt):
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(Region))


# -- parsing (pure) ----------------------------------------------------------------------------


def test_parsing_derives_an_empty_parent_from_the_code_and_leaves_a_province_without_one():
    parsed = parse_regions((HEADER + f"{VILLAGE_A2},下坪村,\n{PROVINCE},演示省,\n").encode())
    assert parsed.errors == []
    assert [(r.code, r.parent_code) for r in parsed.rows] == [
        (VILLAGE_A2, TOWNSHIP_A),
        (PROVINCE, None),
    ]


def test_parsing_accepts_a_county_directly_under_its_province():
    # 省直辖县级行政区: the parent is above by prefix without being the level right above.
    parsed = parse_regions((HEADER + "429004000000,仙桃市,420000000000\n").encode())
    assert parsed.errors == []
    assert parsed.rows[0].parent_code == "420000000000"


def test_parsing_skips_blank_lines_and_counts_them_in_line_numbers():
    parsed = parse_regions((HEADER + "\n" + f"{PROVINCE},,\n").encode())
    assert [(e.line, e.code) for e in parsed.errors] == [(3, "empty_name")]


def test_parsing_reports_a_file_that_is_not_utf8_at_the_line_of_its_first_bad_byte():
    # A file saved as GB18030 (Excel's default on Chinese Windows): its header is plain ASCII,
    # the first Chinese name is on line 2.
    parsed = parse_regions((HEADER + f"{PROVINCE},演示省,\n").encode("gb18030"))
    assert [(e.line, e.code) for e in parsed.errors] == [(2, "not_utf8")]
    assert "save it as UTF-8" in parsed.errors[0].message
    assert "position" not in parsed.errors[0].message  # a byte offset helps nobody


# -- importing through the CLI -----------------------------------------------------------------


def test_import_creates_the_tree_with_levels_and_parents_whatever_the_row_order(import_file, rt):
    result = import_file(TREE)
    assert result.exit_code == 0, result.output
    assert "6 created, 0 updated, 0 unchanged" in result.output
    stored = _regions(rt)
    assert stored[VILLAGE_A1] == ("上坪村", RegionLevel.VILLAGE, TOWNSHIP_A)
    assert stored[VILLAGE_A2] == ("下坪村", RegionLevel.VILLAGE, TOWNSHIP_A)
    assert stored[COUNTY] == ("云溪县", RegionLevel.COUNTY, CITY)
    assert stored[PROVINCE] == ("演示省", RegionLevel.PROVINCE, None)


def test_reimporting_the_same_file_changes_nothing(import_file, rt):
    import_file(TREE)
    before = _regions(rt)
    result = import_file(TREE)
    assert result.exit_code == 0, result.output
    assert "0 created, 0 updated, 6 unchanged" in result.output
    assert _regions(rt) == before


def test_reimporting_with_a_changed_name_renames_the_region(import_file, rt):
    import_file(TREE)
    result = import_file(TREE.replace("上坪村", "上坪社区"))
    assert result.exit_code == 0, result.output
    assert "0 created, 1 updated, 5 unchanged" in result.output
    assert _regions(rt)[VILLAGE_A1] == ("上坪社区", RegionLevel.VILLAGE, TOWNSHIP_A)


def test_a_byte_order_mark_before_the_header_is_tolerated(import_file, rt):
    result = import_file("\ufeff" + TREE)
    assert result.exit_code == 0, result.output
    assert _count(rt) == 6


def test_parents_may_already_be_in_the_database(import_file, regions, rt):
    before = _count(rt)
    result = import_file(HEADER + f"{TOWNSHIP_A[:9]}009,新村,{TOWNSHIP_A}\n")
    assert result.exit_code == 0, result.output
    assert _count(rt) == before + 1


@pytest.mark.parametrize(
    "bad_row, message",
    [
        (f"12345,短码村,{TOWNSHIP_A}", "'12345' is not a 12-digit division code"),
        (f"{VILLAGE_A2},重复村,{TOWNSHIP_A}", f"{VILLAGE_A2} is already on line 3"),
        (
            "990102007001,孤村,990102007000",
            "parent 990102007000 of 990102007001 is not in the file or the database",
        ),
        (
            f"{TOWNSHIP_A[:9]}078,错村,990103000000",
            "990103000000 is not a region above 990102001078 (code prefix)",
        ),
        (f"{TOWNSHIP_A[:9]}079,,{TOWNSHIP_A}", "the name is empty"),
        (f"{TOWNSHIP_A[:9]}080,多列村,{TOWNSHIP_A},extra", "expected 3 fields, found 4"),
        (f"{PROVINCE},演示省,{CITY}", f"{CITY} is not a region above {PROVINCE}"),
    ],
    ids=[
        "invalid-code",
        "duplicate-code",
        "unknown-parent",
        "parent-not-above",
        "empty-name",
        "extra-field",
        "province-with-a-parent",
    ],
)
def test_a_bad_row_is_reported_by_line_number_and_nothing_is_imported(
    import_file, rt, bad_row, message
):
    # Lines: 1 header, 2 the province, 3 VILLAGE_A2 and the rest of the tree, bad row last.
    rows = TREE.splitlines()
    text = "\n".join([rows[0], rows[6], rows[2], rows[1], *rows[3:6], bad_row]) + "\n"
    result = import_file(text)
    assert result.exit_code == 1
    assert f"line 8: {message}" in result.stderr
    assert "nothing was imported" in result.stderr
    assert _count(rt) == 0


def test_every_bad_row_is_listed_in_one_run(import_file, rt):
    text = HEADER + f"{PROVINCE},,\n" + "99,短,\n" + f"{PROVINCE},演示省,\n" + f"{CITY},,\n"
    result = import_file(text)
    assert result.exit_code == 1
    lines = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert [line.split(":")[0] for line in lines] == ["line 2", "line 3", "line 5"]
    assert "Traceback" not in result.output
    assert _count(rt) == 0


@pytest.mark.parametrize("header", ["code,name", "code,name,parent", "name,code,parent_code", ""])
def test_a_wrong_header_is_reported_on_line_1(import_file, rt, header):
    result = import_file(header + "\n" + f"{PROVINCE},演示省,\n")
    assert result.exit_code == 1
    assert "line 1: the header must be code,name,parent_code" in result.stderr
    assert _count(rt) == 0


def test_a_bad_file_leaves_earlier_imports_untouched(import_file, rt):
    import_file(TREE)
    before = _regions(rt)
    result = import_file(TREE.replace("上坪村", "改名村") + f"{CITY},,\n")
    assert result.exit_code == 1
    assert _regions(rt) == before


def test_the_example_region_file_is_the_demo_county_tree_with_its_parents():
    parsed = parse_regions((PROJECT_ROOT / "docs" / "examples" / "regions.csv").read_bytes())
    assert parsed.errors == []
    assert [(row.code, row.name) for row in parsed.rows] == demo_regions()
    codes = {row.code for row in parsed.rows}
    assert all(row.parent_code is None or row.parent_code in codes for row in parsed.rows)
