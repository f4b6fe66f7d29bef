"""Importing a department's file: read it through its source's mapping, match each person by the
keyed hash of the identity number, write `department_facts` set-based, withdraw what a full list
no longer says, report every row that did not simply match, and tell the early-warning rules.

All or nothing: a bad file is refused before anything is written, and everything an import writes
is in the caller's unit of work (this module only flushes). A clear identity number never leaves
this module: it is hashed for matching and masked for the report.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, and_, select, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.db import upsert_insert
from server.departments.facts import FactSpec, Subject
from server.departments.mapping import (
    ColumnMapping,
    MappingProblems,
    department_of,
    parse_mapping,
)
from server.departments.models import (
    DepartmentFact,
    DepartmentImport,
    DepartmentSource,
    ImportOrigin,
    ImportStatus,
    ListKind,
)
from server.departments.reading import MAX_FILE_BYTES, FileRefused, FileRow, read_rows
from server.errors import TooLarge, ValidationFailed
from server.households.models import Household, Member
from server.sensitive import SensitiveCodec, mask_id_number
from server.users.models import Role
from server.warnings.hooks import after_department_import

# Rows of each kind kept in an import's report; the counts are always exact.
REPORT_ROWS = 500
_LOOKUP_CHUNK = 5000
_WRITE_CHUNK = 5000
# Register values a fact is compared with, by `FactSpec.register_field`.
FACTS_TABLE = cast(Table, DepartmentFact.__table__)
_EMPLOYED = {"in_county", "in_province", "out_of_province", "public_welfare_job", "self_employed"}


class ImportRefused(ValidationFailed):
    """A file (or mapping) that cannot be imported: nothing was written."""


@dataclass
class ImportOutcome:
    record: DepartmentImport
    unchanged: bool  # the same file with the same mapping was the source's last import


@dataclass
class _Report:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, item: dict[str, Any]) -> None:
        kept = self.rows[kind]
        if len(kept) < REPORT_ROWS:
            kept.append(item)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def mapping_digest(source: DepartmentSource) -> str:
    text = json.dumps([source.list_kind.value, source.mapping], sort_keys=True, ensure_ascii=True)
    return digest(text.encode())


def import_content(
    session: Session,
    actor: Actor,
    codec: SensitiveCodec,
    source: DepartmentSource,
    content: bytes,
    *,
    origin: ImportOrigin,
    filename: str | None,
    now: datetime,
) -> ImportOutcome:
    """Import `content` for `source`, or ImportRefused/TooLarge with every located problem."""
    actor.ensure_role(Role.ADMIN)
    if len(content) > MAX_FILE_BYTES:
        raise TooLarge(
            f"the file is larger than {MAX_FILE_BYTES} bytes; nothing was imported",
            details={"limit": MAX_FILE_BYTES, "size": len(content)},
        )
    department = department_of(source.department)
    try:
        mapping = parse_mapping(department, source.mapping)
    except MappingProblems as problems:
        raise ImportRefused("the source's mapping cannot be used", problems.errors) from None
    content_hash, mapping_hash = digest(content), mapping_digest(source)
    last = session.scalar(
        select(DepartmentImport)
        .where(
            DepartmentImport.source_id == source.id,
            DepartmentImport.status == ImportStatus.APPLIED,
        )
        .order_by(DepartmentImport.started_at.desc(), DepartmentImport.id.desc())
        .limit(1)
    )
    if last is not None and (last.content_hash, last.mapping_hash) == (content_hash, mapping_hash):
        return ImportOutcome(last, unchanged=True)
    try:
        rows = read_rows(content, mapping)
    except FileRefused as refused:
        raise ImportRefused(refused.message, refused.errors) from None
    record = DepartmentImport(
        id=uuid.uuid4(),
        source_id=source.id,
        status=ImportStatus.APPLIED,
        origin=origin,
        filename=filename[:255] if filename else None,
        content_hash=content_hash,
        mapping_hash=mapping_hash,
        size=len(content),
        rows=len(rows),
        imported_by=actor.user_id,
        started_at=now,
        finished_at=now,
    )
    household_ids = _apply(session, codec, source, mapping, rows, record, now)
    session.add(record)
    session.flush()
    after_department_import(session, record.id, household_ids, now)
    audit.record(
        session,
        "department.import",
        user_id=actor.user_id,
        object_type="department_import",
        object_id=str(record.id),
        address=actor.address,
        details={
            "source": source.name,
            "rows": record.rows,
            "matched": record.matched,
            "facts_written": record.facts_written,
            "facts_withdrawn": record.facts_withdrawn,
        },
    )
    return ImportOutcome(record, unchanged=False)


def record_failure(
    session: Session,
    source: DepartmentSource,
    *,
    origin: ImportOrigin,
    error: dict[str, Any],
    now: datetime,
    content: bytes | None = None,
) -> DepartmentImport:
    """An import that applied nothing (a failed fetch, a refused file from a fetch), on record."""
    record = DepartmentImport(
        source_id=source.id,
        status=ImportStatus.FAILED,
        origin=origin,
        content_hash=digest(content) if content is not None else None,
        size=len(content) if content is not None else 0,
        error=error,
        started_at=now,
        finished_at=now,
    )
    session.add(record)
    session.flush()
    return record


# --- the import proper -------------------------------------------------------------------------


def _value_json(value: bool | Decimal | str) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _apply(
    session: Session,
    codec: SensitiveCodec,
    source: DepartmentSource,
    mapping: ColumnMapping,
    rows: Sequence[FileRow],
    record: DepartmentImport,
    now: datetime,
) -> set[uuid.UUID]:
    report = _Report()
    by_hash: dict[str, list[FileRow]] = defaultdict(list)
    for row in rows:
        by_hash[codec.lookup_hash("id_number", row.id_number)].append(row)

    # Duplicates: the same person twice with the same values keeps the first row; with
    # different values nothing of that person is applied (which row is right cannot be known).
    people: dict[str, FileRow] = {}
    duplicates = conflicting = 0
    for key, group in by_hash.items():
        first = group[0]
        if len(group) > 1:
            same = all((r.values, r.as_of) == (first.values, first.as_of) for r in group)
            kind = "duplicate" if same else "conflicting"
            for r in group[1:] if same else group:
                report.add(
                    kind,
                    {
                        "row": r.row,
                        "id_number": mask_id_number(r.id_number),
                        "first_row": first.row,
                    },
                )
            if same:
                duplicates += len(group) - 1
            else:
                conflicting += len(group)
                continue
        people[key] = first

    matches = _find_members(session, list(people))
    specs = {column.spec.code: column.spec for column in mapping.facts}
    # (fact, household, subject_key) → the fact row to write
    facts: dict[tuple[str, uuid.UUID, str], dict[str, Any]] = {}
    contested: set[tuple[str, uuid.UUID, str]] = set()
    matched = unmatched = ambiguous = mismatched = 0
    for key, row in people.items():
        found = matches.get(key, [])
        masked = mask_id_number(row.id_number)
        if not found:
            unmatched += 1
            report.add("unmatched", {"row": row.row, "id_number": masked})
            continue
        if len(found) > 1:
            ambiguous += 1
            report.add("ambiguous", {"row": row.row, "id_number": masked, "members": len(found)})
            continue
        matched += 1
        member = found[0]
        differences = []
        for code, value in row.values.items():
            spec = specs[code]
            subject = str(member.id) if spec.subject is Subject.MEMBER else ""
            fact_key = (code, member.household_id, subject)
            stored = _value_json(value)
            earlier = facts.get(fact_key)
            if earlier is not None:
                # Two members of one household giving a household fact: they must agree.
                if earlier["value"] != stored:
                    contested.add(fact_key)
                    report.add(
                        "conflicting",
                        {
                            "row": row.row,
                            "id_number": masked,
                            "fact": code,
                            "first_row": earlier["source_row"],
                        },
                    )
                continue
            facts[fact_key] = {
                "id": uuid.uuid4(),
                "department": source.department,
                "fact": code,
                "household_id": member.household_id,
                "member_id": member.id if spec.subject is Subject.MEMBER else None,
                "subject_key": subject,
                "value": stored,
                "present": True,
                "as_of": row.as_of,
                "import_id": record.id,
                "source_row": row.row,
                "updated_at": now,
            }
            register = _register_value(spec, member)
            if register is not None and _disagrees(spec, value, register):
                differences.append({"fact": code, "register": register, "department": stored})
        if differences:
            mismatched += 1
            report.add(
                "mismatched",
                {
                    "row": row.row,
                    "id_number": masked,
                    "household_id": str(member.household_id),
                    "member_id": str(member.id),
                    "facts": differences,
                },
            )
    for fact_key in contested:
        del facts[fact_key]
    conflicting += len(contested)

    _write_facts(session, list(facts.values()))
    withdrawn: set[uuid.UUID] = set()
    withdrawn_count = 0
    if source.list_kind is ListKind.FULL:
        withdrawn_count, withdrawn = _withdraw(session, source, mapping, record, contested, now)
    record.matched, record.unmatched, record.ambiguous = matched, unmatched, ambiguous
    record.mismatched, record.duplicates, record.conflicting = mismatched, duplicates, conflicting
    record.facts_written, record.facts_withdrawn = len(facts), withdrawn_count
    record.report = {kind: items for kind, items in report.rows.items()}
    return {key[1] for key in facts} | withdrawn


def _find_members(session: Session, hashes: list[str]) -> dict[str, list[Row[Any]]]:
    """Live members (of live, unmerged households) by identity hash, with the register values
    the facts are compared with. One query per chunk of hashes."""
    found: dict[str, list[Row[Any]]] = defaultdict(list)
    columns = (
        Member.id,
        Member.household_id,
        Member.id_number_hash,
        Member.in_school,
        Member.insured,
        Member.employment,
        Member.disability,
        Household.receives_minimum_allowance,
        Household.receives_extreme_poverty_support,
        Household.housing_ok,
    )
    for start in range(0, len(hashes), _LOOKUP_CHUNK):
        chunk = hashes[start : start + _LOOKUP_CHUNK]
        statement = (
            select(*columns)
            .join(Household, Household.id == Member.household_id)
            .where(
                Member.id_number_hash.in_(chunk),
                Member.deleted.is_(False),
                Household.deleted.is_(False),
                Household.merged_into_id.is_(None),
            )
        )
        # Core, not ORM, execution: plain rows without the ORM's per-row bookkeeping.
        for row in session.connection().execute(statement):
            found[row.id_number_hash].append(row)
    return found


def _register_value(spec: FactSpec, member: Row[Any]) -> Any:
    if spec.register_field is None:
        return None
    name = spec.register_field.split(".", 1)[1]
    value = getattr(member, name)
    return value.value if hasattr(value, "value") else value


def _disagrees(spec: FactSpec, department: bool | Decimal | str, register: Any) -> bool:
    """Whether the register says otherwise than the department (unknown is not otherwise)."""
    field = spec.register_field
    if field == "household.housing_ok":  # 危房 yes ⇔ housing not ok
        return bool(department) == bool(register)
    if field == "member.employment":
        if register in _EMPLOYED:
            return department is False
        if register == "unemployed":
            return department is True
        return False
    return bool(department != register)


def _write_facts(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = upsert_insert(session, FACTS_TABLE)
    statement = insert.on_conflict_do_update(
        index_elements=["department", "fact", "household_id", "subject_key"],
        set_={
            name: getattr(insert.excluded, name)
            for name in (
                "member_id",
                "value",
                "present",
                "as_of",
                "import_id",
                "source_row",
                "updated_at",
            )
        },
    )
    # Core executemany on the session's connection (same transaction): the ORM's bulk path
    # cost more than the database did.
    connection = session.connection()
    for start in range(0, len(rows), _WRITE_CHUNK):
        connection.execute(statement, rows[start : start + _WRITE_CHUNK])


def _withdraw(
    session: Session,
    source: DepartmentSource,
    mapping: ColumnMapping,
    record: DepartmentImport,
    contested: Iterable[tuple[str, uuid.UUID, str]],
    now: datetime,
) -> tuple[int, set[uuid.UUID]]:
    """A full list withdraws the facts this source's earlier imports wrote and this one did not
    (except those it could not decide: conflicting rows say nothing either way)."""
    earlier_imports = select(DepartmentImport.id).where(DepartmentImport.source_id == source.id)
    codes = [column.spec.code for column in mapping.facts]
    candidates = session.execute(
        select(
            DepartmentFact.id,
            DepartmentFact.fact,
            DepartmentFact.household_id,
            DepartmentFact.subject_key,
        ).where(
            DepartmentFact.department == source.department,
            DepartmentFact.fact.in_(codes),
            DepartmentFact.present.is_(True),
            DepartmentFact.import_id != record.id,
            DepartmentFact.import_id.in_(earlier_imports),
        )
    ).all()
    keep = set(contested)
    ids = [c.id for c in candidates if (c.fact, c.household_id, c.subject_key) not in keep]
    for start in range(0, len(ids), _WRITE_CHUNK):
        session.execute(
            update(DepartmentFact)
            .where(and_(DepartmentFact.id.in_(ids[start : start + _WRITE_CHUNK])))
            .values(present=False, import_id=record.id, source_row=None, updated_at=now)
        )
    chosen = set(ids)
    households = {c.household_id for c in candidates if c.id in chosen}
    return len(ids), households


def import_summary(record: DepartmentImport) -> dict[str, Any]:
    """The counts of an import, as the command line prints them."""
    return {
        name: getattr(record, name)
        for name in (
            "rows",
            "matched",
            "unmatched",
            "ambiguous",
            "mismatched",
            "duplicates",
            "conflicting",
            "facts_written",
            "facts_withdrawn",
        )
    }
