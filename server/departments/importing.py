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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Dialect, Row, Table, and_, select, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
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
# A fact to write: (member id or None, JSON value, the file row it came from).
_Fact = tuple[uuid.UUID | None, Any, FileRow]
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
    facts: dict[tuple[str, uuid.UUID, str], _Fact] = {}
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
                if earlier[1] != stored:
                    contested.add(fact_key)
                    report.add(
                        "conflicting",
                        {
                            "row": row.row,
                            "id_number": masked,
                            "fact": code,
                            "first_row": earlier[2].row,
                        },
                    )
                continue
            facts[fact_key] = (member.id if spec.subject is Subject.MEMBER else None, stored, row)
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

    _write_facts(session, source.department, facts, record.id, now)
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


_FACT_COLUMNS = (
    "id",
    "department",
    "fact",
    "household_id",
    "member_id",
    "subject_key",
    "value",
    "present",
    "as_of",
    "import_id",
    "source_row",
    "updated_at",
)
# What a fact already written by an earlier import takes from this one.
_UPDATED_COLUMNS = (
    "member_id",
    "value",
    "present",
    "as_of",
    "import_id",
    "source_row",
    "updated_at",
)
_UPSERT_CONFLICT = (
    "ON CONFLICT (department, fact, household_id, subject_key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _UPDATED_COLUMNS)
)


def _bind_processor(dialect: Dialect, name: str) -> Callable[[Any], Any]:
    """The column's own conversion of a Python value into what the driver is given (the same
    SQLAlchemy applies itself: UUID as hex text on SQLite, JSON through the engine's serializer,
    UTC timestamps)."""
    column_type = FACTS_TABLE.c[name].type
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


def _fact_rows(
    dialect: Dialect,
    department: str,
    facts: dict[tuple[str, uuid.UUID, str], _Fact],
    import_id: uuid.UUID,
    now: datetime,
    *,
    with_ids: bool,
) -> list[tuple[Any, ...]]:
    """The facts as driver-ready tuples in `_FACT_COLUMNS` order. Each column's conversion runs
    once per distinct value (a household or member appears in several facts, the values are few),
    not once per parameter as SQLAlchemy's executemany would."""
    as_uuid = _bind_processor(dialect, "id")
    as_json = _bind_processor(dialect, "value")
    as_date = _bind_processor(dialect, "as_of")
    as_bool = _bind_processor(dialect, "present")
    constant = (
        _bind_processor(dialect, "department")(department),
        as_bool(True),
        _bind_processor(dialect, "import_id")(import_id),
        _bind_processor(dialect, "updated_at")(now),
    )
    department_value, present, import_value, updated = constant
    uuids: dict[uuid.UUID | None, Any] = {None: None}
    values: dict[tuple[type, Any], Any] = {}
    dates: dict[date | None, Any] = {None: None}
    rows: list[tuple[Any, ...]] = []
    new_id = (lambda: as_uuid(uuid.uuid4())) if with_ids else (lambda: None)
    for (code, household_id, subject), (member_id, value, row) in facts.items():
        household = uuids.get(household_id)
        if household is None:
            household = uuids[household_id] = as_uuid(household_id)
        member = uuids.get(member_id)
        if member is None and member_id is not None:
            member = uuids[member_id] = as_uuid(member_id)
        value_key = (value.__class__, value)
        stored = values.get(value_key)
        if stored is None:
            stored = values[value_key] = as_json(value)
        as_of = dates.get(row.as_of)
        if as_of is None and row.as_of is not None:
            as_of = dates[row.as_of] = as_date(row.as_of)
        rows.append(
            (
                new_id(),
                department_value,
                code,
                household,
                member,
                subject,
                stored,
                present,
                as_of,
                import_value,
                row.row,
                updated,
            )
        )
    return rows


def _write_facts(
    session: Session,
    department: str,
    facts: dict[tuple[str, uuid.UUID, str], _Fact],
    import_id: uuid.UUID,
    now: datetime,
) -> None:
    """Upsert the facts set-based in the session's transaction: PostgreSQL copies them into a
    temporary table (`COPY`) and upserts from it in one statement; SQLite runs the driver's own
    executemany of one prepared upsert. Both bypass SQLAlchemy's per-parameter processing, which
    cost more than the database did; the values are converted as SQLAlchemy would (above)."""
    if not facts:
        return
    connection = session.connection()
    columns = ", ".join(_FACT_COLUMNS)
    if connection.dialect.name == "postgresql":
        # The new facts' ids come from the server (gen_random_uuid, PostgreSQL 13+): a uuid4 per
        # row in Python was a tenth of the write. The staging table has no id column.
        rows = _fact_rows(connection.dialect, department, facts, import_id, now, with_ids=False)
        copied = ", ".join(_FACT_COLUMNS[1:])
        staging = f"department_facts_staging_{uuid.uuid4().hex}"
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS "
                f"SELECT {copied} FROM department_facts WITH NO DATA"
            )
            with cursor.copy(f"COPY {staging} ({copied}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row[1:])
            cursor.execute(
                f"INSERT INTO department_facts ({columns}) "
                f"SELECT gen_random_uuid(), {copied} FROM {staging} " + _UPSERT_CONFLICT
            )
            cursor.execute(f"DROP TABLE {staging}")
        return
    rows = _fact_rows(connection.dialect, department, facts, import_id, now, with_ids=True)
    placeholders = ", ".join("?" for _ in _FACT_COLUMNS)
    connection.exec_driver_sql(
        f"INSERT INTO department_facts ({columns}) VALUES ({placeholders}) " + _UPSERT_CONFLICT,
        rows,
    )


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
