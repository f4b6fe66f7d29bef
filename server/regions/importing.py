"""Importing the region tree from a CSV file (`code,name,parent_code`, UTF-8, BOM tolerated).

Parsing and checking are pure and collect every bad row with its line number; `import_regions`
applies a file in the caller's unit of work only when the whole file is good — never half of it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from server.errors import ValidationFailed
from server.regions.codes import (
    PREFIX_LENGTH,
    RegionLevel,
    covers,
    is_valid_code,
    level_of,
    parent_code_of,
)
from server.regions.models import Region

HEADER = ("code", "name", "parent_code")
MAX_NAME_LENGTH = 100
_LEVEL_ORDER = list(PREFIX_LENGTH)
# Codes per IN (...) list when reading the stored regions a file refers to.
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class RegionRow:
    line: int
    code: str
    name: str
    # None only for a province; otherwise given in the file or derived from the code.
    parent_code: str | None

    @property
    def level(self) -> RegionLevel:
        return level_of(self.code)


@dataclass(frozen=True)
class RowError:
    line: int
    code: str
    message: str


@dataclass(frozen=True)
class ParsedRegions:
    rows: list[RegionRow]
    errors: list[RowError]


@dataclass(frozen=True)
class StoredRegion:
    name: str
    parent_code: str | None


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def parse_regions(data: bytes) -> ParsedRegions:
    """Rows of a region CSV file and the errors of its shape (header, code, name, parent code).

    A parent code left empty is derived from the code (a province has none); parents are not
    looked up here — `check_parents` does that against the file and the stored tree.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = "the file is not UTF-8 text from this line on: save it as UTF-8 (CSV UTF-8)"
        return ParsedRegions([], [RowError(line, "not_utf8", message)])
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(cell.strip() for cell in header) != HEADER:
        found = ",".join(header) if header else "nothing"
        return ParsedRegions(
            [], [RowError(1, "bad_header", f"the header must be {','.join(HEADER)}, not {found}")]
        )
    rows: list[RegionRow] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        row, row_errors = _parse_row(line, cells)
        errors.extend(row_errors)
        if row is None:
            continue
        if row.code in first_line:
            errors.append(
                RowError(
                    line, "duplicate_code", f"{row.code} is already on line {first_line[row.code]}"
                )
            )
            continue
        first_line[row.code] = line
        rows.append(row)
    return ParsedRegions(rows, errors)


def _parse_row(line: int, cells: list[str]) -> tuple[RegionRow | None, list[RowError]]:
    if len(cells) != len(HEADER):
        return None, [RowError(line, "bad_row", f"expected 3 fields, found {len(cells)}")]
    code, name, parent = (cell.strip() for cell in cells)
    errors: list[RowError] = []
    if not is_valid_code(code):
        errors.append(RowError(line, "invalid_code", f"{code!r} is not a 12-digit division code"))
    if not name:
        errors.append(RowError(line, "empty_name", "the name is empty"))
    elif len(name) > MAX_NAME_LENGTH:
        errors.append(RowError(line, "name_too_long", f"the name is over {MAX_NAME_LENGTH} chars"))
    if parent and not is_valid_code(parent):
        errors.append(
            RowError(line, "invalid_parent", f"parent {parent!r} is not a 12-digit division code")
        )
    if errors:
        return None, errors
    if not parent:
        return RegionRow(line, code, name, parent_code_of(code)), []
    if not _is_above(parent, code):
        return None, [
            RowError(
                line, "parent_not_above", f"{parent} is not a region above {code} (code prefix)"
            )
        ]
    return RegionRow(line, code, name, parent), []


def _is_above(parent: str, child: str) -> bool:
    """Whether `parent` is at a higher level than `child` and its prefix contains it. Not always the
    level directly above: counties directly under a province exist (省直辖县级行政区)."""
    higher = _LEVEL_ORDER.index(level_of(parent)) < _LEVEL_ORDER.index(level_of(child))
    return higher and covers(parent, child)


def check_parents(rows: Iterable[RegionRow], stored: Mapping[str, StoredRegion]) -> list[RowError]:
    """Errors for rows whose parent is neither in the file nor among the `stored` regions."""
    in_file = {row.code for row in rows}
    return [
        RowError(
            row.line,
            "unknown_parent",
            f"parent {row.parent_code} of {row.code} is not in the file or the database",
        )
        for row in rows
        if row.parent_code is not None
        and row.parent_code not in in_file
        and row.parent_code not in stored
    ]


def import_regions(session: Session, data: bytes) -> ImportResult:
    """Create and rename regions from a CSV file; all or nothing.

    Raises `ValidationFailed` listing every bad row (`path` is `line N`) and changes nothing then.
    Re-importing the same file changes nothing; a changed name or parent updates the region.
    """
    parsed = parse_regions(data)
    stored = _stored_regions(session, _referenced_codes(parsed.rows))
    errors = sorted(parsed.errors + check_parents(parsed.rows, stored), key=lambda e: e.line)
    if errors:
        raise ValidationFailed(
            f"the region file has {len(errors)} bad row(s); nothing was imported",
            [{"path": f"line {e.line}", "code": e.code, "message": e.message} for e in errors],
        )
    new = [row for row in parsed.rows if row.code not in stored]
    changed = [
        row
        for row in parsed.rows
        if row.code in stored and stored[row.code] != StoredRegion(row.name, row.parent_code)
    ]
    # Parents first, one level at a time: the foreign key on parent_code is checked per statement.
    for level in _LEVEL_ORDER:
        batch = [row for row in new if row.level is level]
        if batch:
            session.execute(
                insert(Region),
                [
                    {"code": r.code, "name": r.name, "level": level, "parent_code": r.parent_code}
                    for r in batch
                ],
            )
    if changed:
        session.execute(
            update(Region),
            [{"code": r.code, "name": r.name, "parent_code": r.parent_code} for r in changed],
        )
    session.flush()
    return ImportResult(
        created=len(new), updated=len(changed), unchanged=len(parsed.rows) - len(new) - len(changed)
    )


def _referenced_codes(rows: Iterable[RegionRow]) -> set[str]:
    codes: set[str] = set()
    for row in rows:
        codes.add(row.code)
        if row.parent_code is not None:
            codes.add(row.parent_code)
    return codes


def _stored_regions(session: Session, codes: set[str]) -> dict[str, StoredRegion]:
    ordered = sorted(codes)
    stored: dict[str, StoredRegion] = {}
    for start in range(0, len(ordered), _LOOKUP_CHUNK):
        chunk = ordered[start : start + _LOOKUP_CHUNK]
        query = select(Region.code, Region.name, Region.parent_code).where(Region.code.in_(chunk))
        for code, name, parent in session.execute(query):
            stored[code] = StoredRegion(name, parent)
    return stored
