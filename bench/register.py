"""A realistic county register for the sync benchmarks: 50,000 households (or 500,000) of four
members each, 500 households per village, with demo-like Chinese names, categories and incomes.

Households are generated in Python and written set-based (executemany on SQLite, COPY on
PostgreSQL) with exactly the columns `load_households` fills — revision 1, per-field versions
(clock, revision, origin), one change-log row per entity under the load's txid — and every build
first checks that claim on a sample against `load_households` itself. A generated register can be
kept (`--reuse`: a SQLite file under /tmp, a PostgreSQL template database) so reruns are fast.
Never imported by the server or the tests.

    python bench/register.py [--size 50k|500k] [--db sqlite|postgresql|both] [--reuse]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, cast

import psycopg
from sqlalchemy import JSON, Date, Numeric, Table, Uuid, create_engine, text
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from forms.register import (
    ENTITIES,
    Category,
    Disability,
    EducationLevel,
    Employment,
    Health,
    LaborCapacity,
    MonitoringStatus,
    MonitoringType,
    Relation,
    RiskCause,
    Sex,
)
from server import json_codec, migrate
from server.auth.actor import system_actor
from server.auth.passwords import PasswordHasher
from server.changes.models import Change
from server.config import Settings
from server.db import Database, UtcDateTime
from server.demo import names
from server.demo.identity import identity_number
from server.forms.library import install_bundled_forms
from server.households.fields import column_values
from server.households.loading import NewHousehold, load_households
from server.households.models import Household, Member
from server.households.versions import FieldVersion, encode_versions
from server.regions.service import add_region
from server.sensitive import SensitiveCodec
from server.sync.feed import transaction_marker
from server.users.models import Role
from server.users.service import create_user

DbKind = Literal["sqlite", "postgresql"]

# Bump when the generator or the row layout changes: saved registers of another version are rebuilt.
GENERATOR_VERSION = 3
SEED = 20261125
REFERENCE_DATE = date(2025, 7, 1)  # ages and incomes refer to this day
MEMBERS_PER_HOUSEHOLD = 4
LOAD_CLOCK = "1764000000000-00000-server"  # 2025-11-24, before any benchmark push

PROVINCE = "990000000000"
CITY = "990100000000"
COUNTY = "990102000000"

PASSWORD = "bench-password-2026"
COUNTY_COLLECTOR = "bench_county"  # granted the county: pushes anywhere
VILLAGE_COLLECTOR = "bench_village"  # granted the first village: pulls one village

SQLITE_DIR = Path("/tmp/fieldsync-bench")
POSTGRES_ADMIN_URL = os.environ.get(
    "FIELDSYNC_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
WORK_DATABASE = "fieldsync_bench"
# Every name a benchmark works under (its own databases and saved registers start with it).
BENCH_NAMES = (
    WORK_DATABASE,
    "fieldsync_bench_tablets",
    "fieldsync_bench_exports",
    "fieldsync_bench_warnings",
    "fieldsync_bench_console_api",
    "fieldsync_bench_monitoring",
)

HOUSEHOLD_TABLE = cast(Table, Household.__table__)
MEMBER_TABLE = cast(Table, Member.__table__)
CHANGE_TABLE = cast(Table, Change.__table__)
CHANGE_COLUMNS = (
    "entity_type",
    "entity_id",
    "fields",
    "clock",
    "rev",
    "village_code",
    "submission_id",
    "device_id",
    "user_id",
    "txid",
    "changed_at",
)


@dataclass(frozen=True)
class RegisterSize:
    name: str
    households: int
    townships: int
    villages_per_township: int

    @property
    def villages(self) -> int:
        return self.townships * self.villages_per_township

    @property
    def per_village(self) -> int:
        return self.households // self.villages


SIZES = {
    # bench/tablets.py: 16 villages of 250, so that hundreds of tablets share them.
    "4k": RegisterSize("4k", 4_000, 4, 4),
    "50k": RegisterSize("50k", 50_000, 10, 10),
    "500k": RegisterSize("500k", 500_000, 20, 50),
}


def township_code(t: int) -> str:
    return f"{COUNTY[:6]}{t:03d}000"


def village_code(t: int, v: int) -> str:
    return f"{COUNTY[:6]}{t:03d}{v:03d}"


def village_codes(size: RegisterSize) -> list[str]:
    return [
        village_code(t, v)
        for t in range(1, size.townships + 1)
        for v in range(1, size.villages_per_township + 1)
    ]


FIRST_VILLAGE = village_code(1, 1)


# --- the machine -------------------------------------------------------------------------------


def machine_lines() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    load = ""
    with contextlib.suppress(OSError, IndexError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return [
        f"machine : {cpu}, {os.cpu_count()} cores{memory}; load average {load or 'unknown'}",
        f"python  : {platform.python_version()} ({platform.platform()})",
        f"sqlite  : {sqlite3.sqlite_version}",
        f"date    : {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    ]


def postgres_version() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar_one())
        engine.dispose()
        return version
    except Exception:
        return None


def print_machine(kinds: Sequence[DbKind]) -> None:
    for line in machine_lines():
        print(line)
    if "postgresql" in kinds:
        print(
            f"postgres: {postgres_version() or 'not reachable'} ({_safe_url(POSTGRES_ADMIN_URL)})"
        )


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# --- generating households ---------------------------------------------------------------------


class CountyGenerator:
    """Deterministic households of four. Every village has its own seed, so villages can be
    generated in any order or in parallel and still give the same register, ids included;
    identity numbers and phones embed the village's number, so they are unique county-wide."""

    def __init__(self, seed: int = SEED) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.phones: set[str] = set()
        self.id_numbers: set[str] = set()
        self.village_number = 0

    def village(self, size: RegisterSize, index: int) -> list[NewHousehold]:
        """The households of village `index` (0-based, township by township)."""
        t, v = divmod(index, size.villages_per_township)
        self.rng.seed(f"{self.seed}:township:{t + 1}")
        township_name = f"{self.place_name()}镇"
        helpers = [self.name(self.surname(), self.sex(), 45) for _ in range(8)]
        self.rng.seed(f"{self.seed}:village:{t + 1}:{v + 1}")
        self.phones.clear()
        self.id_numbers.clear()
        self.village_number = index
        code = village_code(t + 1, v + 1)
        place = f"{township_name}{self.place_name()}村"
        return [
            self.household(code, place, number, helpers)
            for number in range(1, size.per_village + 1)
        ]

    def households(self, size: RegisterSize) -> Iterator[list[NewHousehold]]:
        """The register, one village (a list of households) at a time."""
        for index in range(size.villages):
            yield self.village(size, index)

    def household(
        self, village: str, place: str, number: int, helpers: Sequence[str]
    ) -> NewHousehold:
        rng = self.rng
        draw = rng.random()
        category = (
            Category.LIFTED
            if draw < 0.45
            else Category.MONITORED
            if draw < 0.55
            else Category.ORDINARY
        )
        monitored = category is Category.MONITORED
        people = self.family()
        members = [(self.uuid(), self.member_fields(p, monitored)) for p in people]
        per_capita = self.per_capita_income(category)
        rigid = round(rng.uniform(0, 3000) / 100) * 100
        if any(fields["health"] == Health.SERIOUS.value for _, fields in members):
            rigid += round(rng.uniform(15000, 60000) / 100) * 100
        fields: dict[str, Any] = {
            "household_no": f"{village}{number:04d}",
            "village_code": village,
            "address": f"{names.COUNTY_NAME}{place}{rng.choice(names.WORK_GROUPS)}{number}号",
            "head_member_id": str(members[0][0]),
            "category": category.value,
            "monitoring_status": MonitoringStatus.NOT_MONITORED.value,
            "food_clothing_ok": rng.random() < (0.97 if monitored else 0.997),
            "education_ok": all(f["in_school"] for _, f in members if 6 <= f["_age"] <= 15),
            "medical_ok": all(f["insured"] for _, f in members),
            "housing_ok": rng.random() < (0.88 if monitored else 0.985),
            "water_ok": rng.random() < (0.92 if monitored else 0.99),
            "relocated": category is not Category.ORDINARY and rng.random() < 0.1,
            "receives_minimum_allowance": rng.random() < (0.35 if monitored else 0.03),
            "receives_extreme_poverty_support": False,
            "per_capita_income": per_capita,
            "annual_income": per_capita * MEMBERS_PER_HOUSEHOLD,
            "rigid_expenditure": rigid,
        }
        if category is not Category.ORDINARY:
            fields["helper"] = rng.choice(helpers)
        if monitored:
            fields["monitoring_type"] = rng.choice(list(MonitoringType)).value
            fields["monitoring_status"] = rng.choice(
                [MonitoringStatus.MONITORED, MonitoringStatus.RISK_ELIMINATED]
            ).value
            causes = {rng.choice(list(RiskCause)).value for _ in range(rng.randint(1, 3))}
            fields["risk_causes"] = sorted(causes)
        for _, member in members:
            del member["_age"]
        return NewHousehold(id=self.uuid(), fields=fields, members=members)

    def family(self) -> list[tuple[Relation, Sex, int, str]]:
        rng = self.rng
        head_age = rng.randint(28, 78)
        head_sex = Sex.MALE if rng.random() < 0.85 else Sex.FEMALE
        surname = self.surname()
        other = Sex.FEMALE if head_sex is Sex.MALE else Sex.MALE
        people = [
            (Relation.HEAD, head_sex, head_age, surname),
            (Relation.SPOUSE, other, max(20, head_age + rng.randint(-4, 4)), self.surname()),
        ]
        if head_age < 50:
            people.append((Relation.CHILD, self.sex(), rng.randint(0, head_age - 22), surname))
            people.append((Relation.PARENT, self.sex(), min(95, head_age + 26), self.surname()))
        else:
            child_age = rng.randint(22, head_age - 22)
            people.append((Relation.CHILD, self.sex(), child_age, surname))
            people.append(
                (Relation.GRANDCHILD, self.sex(), rng.randint(0, min(child_age - 20, 16)), surname)
            )
        return people

    def member_fields(
        self, person: tuple[Relation, Sex, int, str], monitored: bool
    ) -> dict[str, Any]:
        rng = self.rng
        relation, sex, age, surname = person
        latest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - age).toordinal()
        birth = date.fromordinal(rng.randint(latest - 364, latest))
        in_school = 6 <= age <= 18 and rng.random() < 0.97
        education = (
            EducationLevel.PRESCHOOL
            if age < 6
            else EducationLevel.PRIMARY
            if age <= 11
            else EducationLevel.JUNIOR
            if age <= 15
            else rng.choice(list(EducationLevel)[1:4])
        )
        draw = rng.random()
        boost = 0.05 if monitored else 0.0
        if draw < 0.025 + boost:
            health, disability = Health.DISABLED, rng.choice(list(Disability)[1:])
        elif draw < 0.035 + 2 * boost:
            health, disability = Health.SERIOUS, Disability.NONE
        elif draw < (0.3 if age >= 60 else 0.08) + 3 * boost:
            health, disability = Health.CHRONIC, Disability.NONE
        else:
            health, disability = Health.HEALTHY, Disability.NONE
        if age < 16 or in_school:
            labor, employment = LaborCapacity.NONE, Employment.STUDENT if in_school else None
        elif age >= 75 or health is Health.SERIOUS:
            labor, employment = LaborCapacity.LOST, Employment.NOT_APPLICABLE
        else:
            labor = LaborCapacity.WEAK if age >= 60 else LaborCapacity.ORDINARY
            employment = rng.choice(
                [
                    Employment.OUT_OF_PROVINCE,
                    Employment.IN_PROVINCE,
                    Employment.IN_COUNTY,
                    Employment.FARMING,
                    Employment.FARMING,
                    Employment.PUBLIC_WELFARE_JOB,
                    Employment.UNEMPLOYED,
                ]
            )
        fields: dict[str, Any] = {
            "name": self.name(surname, sex, age),
            "id_number": self.identity_number(birth, sex),
            "relation": relation.value,
            "sex": sex.value,
            "birth_date": birth.isoformat(),
            "in_school": in_school,
            "education_level": education.value,
            "health": health.value,
            "disability": disability.value,
            "labor_capacity": labor.value,
            "insured": rng.random() < (0.95 if monitored else 0.99),
            "employment": (employment or Employment.NOT_APPLICABLE).value,
            "_age": age,  # dropped once the household is built
        }
        if age >= 18 and rng.random() < 0.85:
            fields["phone"] = self.phone()
        return fields

    def per_capita_income(self, category: Category) -> int:
        rng = self.rng
        if category is Category.MONITORED:
            income = rng.uniform(3000, 9000)
        elif category is Category.LIFTED:
            income = rng.triangular(6500, 22000, 10500)
        else:
            income = rng.triangular(7000, 30000, 14000)
        return round(income / 10) * 10

    def place_name(self) -> str:
        pool = names.MALE_CHARS_OLDER + names.FEMALE_CHARS_OLDER
        return "".join(self.rng.sample(pool, 2))

    def surname(self) -> str:
        return self.rng.choices(names.SURNAMES, names.SURNAME_WEIGHTS)[0]

    def sex(self) -> Sex:
        return Sex.MALE if self.rng.random() < 0.51 else Sex.FEMALE

    def name(self, surname: str, sex: Sex, age: int) -> str:
        if sex is Sex.MALE:
            pool = names.MALE_CHARS_OLDER if age >= 45 else names.MALE_CHARS_YOUNGER
        else:
            pool = names.FEMALE_CHARS_OLDER if age >= 45 else names.FEMALE_CHARS_YOUNGER
        return surname + "".join(self.rng.sample(pool, 2))

    def identity_number(self, birth: date, sex: Sex) -> str:
        # The six-digit region part names the village (99xxxx: no real region starts with 99).
        region = f"99{self.village_number:04d}"
        while True:
            sequence = self.rng.randrange(500) * 2 + (1 if sex is Sex.MALE else 0)
            number = identity_number(region, birth, sequence)
            if number not in self.id_numbers:
                self.id_numbers.add(number)
                return number

    def phone(self) -> str:
        while True:
            prefix = self.rng.choice(names.PHONE_PREFIXES)
            number = f"{prefix}{self.village_number:04d}{self.rng.randrange(10**4):04d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


# --- rows: what load_households would write, computed directly --------------------------------

# How the row builder converts each canonical field (the sample check holds it to the server).
_SENSITIVE = frozenset({"id_number", "phone"})
_PLAIN_TEXT = frozenset({"name", "address", "household_no", "village_code", "helper"})
_ID_TEXT = frozenset({"head_member_id", "household_id"})
HOUSEHOLD_COLUMNS = tuple(HOUSEHOLD_TABLE.columns.keys())
MEMBER_COLUMNS = tuple(MEMBER_TABLE.columns.keys())

Encoder = Callable[[Any], Any]
Rows = list[tuple[Any, ...]]
EncodedRows = tuple[Rows, Rows, Rows]


def _same(value: Any) -> Any:
    return value


def _json(value: Any) -> str:
    return json_codec.dumps(value)  # the engines' JSON serializer


def _code(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _sqlite_uuid(value: Any) -> Any:
    return None if value is None else value.hex


def _sqlite_datetime(value: Any) -> Any:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_decimal(value: Any) -> Any:
    return None if value is None else float(value)


def _sqlite_date(value: Any) -> Any:
    return None if value is None else value.isoformat()


def column_encoders(table: Table, kind: DbKind) -> list[Encoder]:
    """Per column, how SQLAlchemy hands a Python value to the driver (checked on a sample)."""
    encoders: list[Encoder] = []
    for column in table.columns:
        column_type = column.type
        if isinstance(column_type, JSON):
            encoders.append(_json)
        elif isinstance(column_type, SAEnum):
            encoders.append(_code)
        elif kind == "postgresql":
            encoders.append(_same)
        elif isinstance(column_type, Uuid):
            encoders.append(_sqlite_uuid)
        elif isinstance(column_type, UtcDateTime):
            encoders.append(_sqlite_datetime)
        elif isinstance(column_type, Numeric):
            encoders.append(_sqlite_decimal)
        elif isinstance(column_type, Date):
            encoders.append(_sqlite_date)
        else:
            encoders.append(_same)
    return encoders


class RowBuilder:
    """Register and change-log rows for new households as `load_households` leaves them,
    encoded as the driver receives them (tuples in table column order)."""

    def __init__(self, kind: DbKind, codec: SensitiveCodec, clock: str, now: datetime) -> None:
        self.kind = kind
        self.codec = codec
        self.clock = clock
        self.encoders = {
            "household": dict(
                zip(HOUSEHOLD_COLUMNS, column_encoders(HOUSEHOLD_TABLE, kind), strict=True)
            ),
            "member": dict(zip(MEMBER_COLUMNS, column_encoders(MEMBER_TABLE, kind), strict=True)),
        }
        self.encode_id = self.encoders["household"]["id"]
        # What every new row holds before its fields are set (Python-side model defaults).
        self.templates: dict[str, dict[str, Any]] = {}
        for entity, columns in (("household", HOUSEHOLD_COLUMNS), ("member", MEMBER_COLUMNS)):
            defaults: dict[str, Any] = dict.fromkeys(columns)
            defaults.update(rev=1, deleted=False, extra={}, created_at=now, updated_at=now)
            if entity == "household":
                defaults.update(
                    monitoring_status=MonitoringStatus.NOT_MONITORED,
                    risk_causes=[],
                    review_flags=[],
                    member_count=0,
                )
            self.templates[entity] = self._encoded(entity, defaults)
        self.households: list[tuple[Any, ...]] = []
        self.members: list[tuple[Any, ...]] = []
        self.changes: list[tuple[Any, ...]] = []
        self._fields_of: dict[tuple[str, str, Any], tuple[dict[str, Any], str]] = {}
        self._stamps_of: dict[tuple[str, ...], dict[str, Any]] = {}

    def add(self, new: NewHousehold) -> None:
        village = str(new.fields["village_code"])
        counted = self._encoded("household", {"member_count": len(new.members)})
        self.households.append(self._row("household", new.id, new.fields, village, counted))
        for member_id, fields in new.members:
            values = {**fields, "household_id": str(new.id)}
            self.members.append(self._row("member", member_id, values, village))

    def take(self) -> EncodedRows:
        """The rows built so far (households, members, change-log staging rows)."""
        batch = (self.households, self.members, self.changes)
        self.households, self.members, self.changes = [], [], []
        return batch

    def _encoded(self, entity: str, columns: dict[str, Any]) -> dict[str, Any]:
        encoders = self.encoders[entity]
        return {name: encoders[name](value) for name, value in columns.items()}

    def _field(self, entity: str, name: str, value: Any) -> tuple[dict[str, Any], str]:
        """The encoded columns that store field `name` = `value`, and the JSON text the change
        log records for it. The conversion is the server's own (`column_values`); values that
        recur (enumerations, booleans, dates, amounts, selections) are converted once."""
        if name in _SENSITIVE:
            # Protected afresh each time (a new nonce per ciphertext, as the server does); the
            # log never holds the clear value: its masked form stands in.
            columns = self._encoded(
                entity, column_values(entity, name, value, self.codec, extra={})
            )
            return columns, _json(columns[f"{name}_masked"])
        if name in _PLAIN_TEXT:
            return {name: value}, _json(value)
        if name in _ID_TEXT:
            return {name: self.encode_id(uuid.UUID(value))}, _json(value)
        key = (entity, name, tuple(value) if isinstance(value, list) else value)
        cached = self._fields_of.get(key)
        if cached is None:
            columns = column_values(entity, name, value, self.codec, extra={})
            cached = self._fields_of[key] = (self._encoded(entity, columns), _json(value))
        return cached

    def _stamps(self, entity: str, names: tuple[str, ...]) -> dict[str, Any]:
        # Field versions depend only on which fields are set.
        stamps = self._stamps_of.get(names)
        if stamps is None:
            version = FieldVersion(self.clock, 1, "system", None)
            stamps = self._stamps_of[names] = self._encoded(
                entity, {"versions": encode_versions(dict.fromkeys(names, version))}
            )
        return stamps

    def _row(
        self,
        entity: str,
        entity_id: uuid.UUID,
        values: dict[str, Any],
        village: str,
        bookkeeping: dict[str, Any] | None = None,
    ) -> tuple[Any, ...]:
        """The encoded row of one new entity (`bookkeeping`: encoded columns that are not
        fields, e.g. a household's member count), and its change-log staging row."""
        names = tuple(values)
        if names not in self._stamps_of and any(n not in ENTITIES[entity].fields for n in names):
            raise ValueError("the benchmark register only sets canonical fields")
        row = dict(self.templates[entity])
        encoded_id = row["id"] = self.encode_id(entity_id)
        row.update(self._stamps(entity, names))
        row.update(bookkeeping or {})
        logged: list[str] = []
        for name, value in values.items():
            columns, text = self._field(entity, name, value)
            row.update(columns)
            logged.append(f"{_json(name)}:{text}")
        # The change log's `fields` as the engines' serializer writes it, from the cached value
        # texts (compact: no spaces after separators).
        self.changes.append((entity, encoded_id, "{" + ",".join(logged) + "}", village))
        return tuple(row.values())


# --- writing rows set-based, per database ------------------------------------------------------


def write_rows(
    kind: DbKind, dbapi: Any, rows: EncodedRows, *, clock: str, txid: int, now: datetime
) -> tuple[int, int, int]:
    """Insert encoded rows in the current transaction of a DBAPI connection (executemany on
    SQLite, COPY on PostgreSQL): households, members, then their change-log rows (one per entity,
    in the order `load_households` writes them) stamped `clock`, `txid` and `now`. Returns the
    rows per table."""
    households, members, logged = rows
    changed_at = column_encoders(CHANGE_TABLE, kind)[-1](now)
    changes = [
        (entity, entity_id, fields, clock, 1, village, None, None, None, txid, changed_at)
        for entity, entity_id, fields, village in logged
    ]
    for table, columns, table_rows in (
        ("households", HOUSEHOLD_COLUMNS, households),
        ("members", MEMBER_COLUMNS, members),
        ("changes", CHANGE_COLUMNS, changes),
    ):
        if not table_rows:
            continue
        names = ", ".join(columns)
        if kind == "sqlite":
            marks = ", ".join("?" for _ in columns)
            dbapi.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", table_rows)
            continue
        with dbapi.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in table_rows:
                copy.write_row(row)
    return len(households), len(members), len(changes)


# --- databases: reference data, the checked bulk load, saving and reusing ----------------------


def bench_settings(url: str) -> Settings:
    """Settings for a benchmark app: the register at `url`, cheap password hashing (logins are
    not what is measured), quiet logs."""
    instance = SQLITE_DIR / "instance"
    return Settings(
        database_url=url,
        instance_dir=instance,
        attachment_dir=instance / "attachments",
        log_level="WARNING",
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
    )


def _seed_reference_data(db: Database, settings: Settings, size: RegisterSize) -> None:
    """Regions through the regions service, the bundled forms, the two benchmark collectors."""
    passwords = PasswordHasher(
        time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
    )
    with db.unit_of_work() as session:
        add_region(session, PROVINCE, names.PROVINCE_NAME)
        add_region(session, CITY, names.CITY_NAME)
        add_region(session, COUNTY, names.COUNTY_NAME)
        for t in range(1, size.townships + 1):
            add_region(session, township_code(t), f"第{t}镇")
            for v in range(1, size.villages_per_township + 1):
                add_region(session, village_code(t, v), f"第{t}镇第{v}村")
        install_bundled_forms(session, system_actor())
        for username, region in ((COUNTY_COLLECTOR, COUNTY), (VILLAGE_COLLECTOR, FIRST_VILLAGE)):
            create_user(
                session,
                passwords,
                username=username,
                password=PASSWORD,
                role=Role.COLLECTOR,
                regions=[region],
            )


def _dbapi(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _raw_rows(connection: Connection, table: str, order: str) -> list[dict[str, Any]]:
    result = connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")
    return [dict(row) for row in result.mappings()]


def _snapshot(
    session: Session, codec: SensitiveCodec, txid: int
) -> dict[str, list[dict[str, Any]]]:
    """Every register and change-log row as stored, minus what differs by nature between two
    loads: timestamps, sequence numbers, the writing transaction's id (which must be `txid`);
    ciphertexts are compared by their plaintext."""
    connection = session.connection()
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for table in ("households", "members", "changes"):
        rows = _raw_rows(connection, table, "seq" if table == "changes" else "id")
        for row in rows:
            for name in ("created_at", "updated_at", "changed_at"):
                if name in row:
                    assert row.pop(name) is not None, f"{table}.{name} is empty"
            row.pop("seq", None)
            if "txid" in row:
                assert row.pop("txid") == txid, "change rows must carry their transaction's id"
            for kind in ("id_number", "phone"):
                cipher = row.get(f"{kind}_cipher")
                if cipher:
                    row[f"{kind}_cipher"] = codec.reveal(kind, cipher)
        snapshot[table] = rows
    return snapshot


def check_bulk_rows_match_load_households(db: Database, codec: SensitiveCodec) -> int:
    """Load a sample through `load_households`, then through the bulk writer, each in a
    transaction rolled back, and require the same stored rows. Returns the rows compared."""
    sample = list(next(CountyGenerator(seed=7).households(SIZES["50k"])))[:60]
    covered = {n for h in sample for n in h.fields} | {
        n for h in sample for _, m in h.members for n in m
    }
    assert {"helper", "monitoring_type", "risk_causes", "phone"} <= covered, "sample too narrow"
    now = datetime.now(UTC)
    with db.sessionmaker() as session:
        txid = transaction_marker(session)
        load_households(session, codec, sample, clock=LOAD_CLOCK)
        expected = _snapshot(session, codec, txid)
        session.rollback()
    with db.sessionmaker() as session:
        kind = cast(DbKind, db.kind)
        txid = transaction_marker(session)
        builder = RowBuilder(kind, codec, LOAD_CLOCK, now)
        for household in sample:
            builder.add(household)
        write_rows(kind, _dbapi(session), builder.take(), clock=LOAD_CLOCK, txid=txid, now=now)
        actual = _snapshot(session, codec, txid)
        session.rollback()
    compared = 0
    for table, rows in expected.items():
        assert len(rows) == len(actual[table]) > 0, f"{table}: row counts differ"
        for want, got in zip(rows, actual[table], strict=True):
            assert want.keys() == got.keys(), f"{table}: columns differ"
            different = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
            assert not different, f"{table}: bulk rows differ from load_households: {different}"
            compared += 1
    return compared


@dataclass
class LoadReport:
    households: int
    members: int
    changes: int
    seconds: float
    checked_rows: int
    writing_seconds: float  # inserting the rows
    indexing_seconds: float  # creating the secondary indexes again


def _generate_into(kind: DbKind, url: str, size: RegisterSize) -> LoadReport:
    """Schema, reference data, the sample check, then the whole register in one transaction."""
    started = time.perf_counter()
    migrate.upgrade(url)
    settings = bench_settings(url)
    codec = SensitiveCodec(settings.data_key_bytes)
    db = Database(url)
    try:
        _seed_reference_data(db, settings, size)
        checked = check_bulk_rows_match_load_households(db, codec)
    finally:
        db.dispose()
    counts = [0, 0, 0]
    writing = 0.0
    now = datetime.now(UTC)
    # Worker processes generate and encode villages; this one writes them as they come.
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(os.cpu_count() or 1, 4))
    with (
        context.Pool(
            workers, _start_worker, (kind, settings.data_key_bytes, now, size.name)
        ) as pool,
        _bulk_connection(kind, url) as (dbapi, txid),
        _indexes_rebuilt_after(kind, dbapi) as timings,
    ):
        for rows in pool.imap(_encoded_village, range(size.villages), chunksize=1):
            started_writing = time.perf_counter()
            written = write_rows(kind, dbapi, rows, clock=LOAD_CLOCK, txid=txid, now=now)
            writing += time.perf_counter() - started_writing
            counts = [a + b for a, b in zip(counts, written, strict=True)]
    _analyze(kind, url)
    return LoadReport(
        households=counts[0],
        members=counts[1],
        changes=counts[2],
        seconds=time.perf_counter() - started,
        checked_rows=checked,
        writing_seconds=writing,
        indexing_seconds=timings["indexing"],
    )


_worker: tuple[CountyGenerator, RowBuilder, RegisterSize] | None = None


def _start_worker(kind: DbKind, data_key: bytes, now: datetime, size_name: str) -> None:
    global _worker
    builder = RowBuilder(kind, SensitiveCodec(data_key), LOAD_CLOCK, now)
    _worker = (CountyGenerator(), builder, SIZES[size_name])


def _encoded_village(index: int) -> EncodedRows:
    assert _worker is not None
    generator, builder, size = _worker
    for household in generator.village(size, index):
        builder.add(household)
    return builder.take()


@contextlib.contextmanager
def _bulk_connection(kind: DbKind, url: str) -> Iterator[tuple[Any, int]]:
    """A DBAPI connection in one transaction, and that transaction's txid (as
    `transaction_marker` gives it); committed at the end."""
    if kind == "sqlite":
        path = make_url(url).database
        assert path
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            # A bulk load needs no crash safety: rebuilt from scratch if interrupted.
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-262144")
            conn.execute("BEGIN IMMEDIATE")
            txid = int(conn.execute("SELECT coalesce(max(txid), 0) + 1 FROM changes").fetchone()[0])
            yield conn, txid
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        return
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as pg:
        row = pg.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
        assert row is not None
        yield pg, int(row[0])
        pg.commit()


@contextlib.contextmanager
def _indexes_rebuilt_after(kind: DbKind, dbapi: Any) -> Iterator[dict[str, float]]:
    """Drop the secondary indexes of the register and change log, and create them again, with
    their own DDL, once the rows are in: one sort per index instead of millions of random
    inserts (the change log's entity index is keyed by random UUIDs)."""
    tables = ("households", "members", "changes")
    if kind == "sqlite":
        found = dbapi.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN {tables}"
        ).fetchall()
    else:
        found = dbapi.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes AS i WHERE i.schemaname = 'public' "
            f"AND i.tablename IN {tables} AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c "
            "WHERE c.conname = i.indexname)"
        ).fetchall()
    for name, _ in found:
        dbapi.execute(f'DROP INDEX "{name}"')
    timings: dict[str, float] = {}
    yield timings
    started = time.perf_counter()
    for _, ddl in found:
        dbapi.execute(ddl)
    timings["indexing"] = time.perf_counter() - started


def _analyze(kind: DbKind, url: str) -> None:
    # PostgreSQL's autovacuum would gather statistics after such a load; do it now so the first
    # benchmark does not run on an unanalysed table. SQLite has no such daemon and is left as is.
    if kind == "postgresql":
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()


def _meta(size: RegisterSize, extra: str | None = None) -> str:
    found: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "schema": migrate.head_revision(),
        "households": size.households,
        "villages": size.villages,
    }
    if extra is not None:
        found["extra"] = extra
    return json.dumps(found, sort_keys=True)


@dataclass(frozen=True)
class Extra:
    """Rows a benchmark adds to a freshly generated register before it is saved (e.g. department
    facts): `label` names them in the saved register's description, so a register saved without
    them (or with another version of them) is not reused."""

    label: str
    add: Callable[[DbKind, str], None]  # (kind, url of the new register)


class _Postgres:
    """Creating, copying and dropping benchmark databases on the PostgreSQL server."""

    def __init__(self) -> None:
        self.admin = make_url(POSTGRES_ADMIN_URL)
        self.engine = create_engine(self.admin, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        return self.admin.set(database=name).render_as_string(hide_password=False)

    def execute(self, statement: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(text(statement))

    def comment(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = :name"
                ),
                {"name": name},
            ).scalar()
        return None if value is None else str(value)

    def exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).scalar()
            )

    def drop(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self, name: str, template: str | None = None) -> None:
        self.drop(name)
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{suffix}')

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass
class Register:
    """A working copy of a generated register, ready for an app: `url`, its `settings`."""

    kind: DbKind
    size: RegisterSize
    url: str
    settings: Settings
    report: LoadReport | None  # None when a saved register was reused


@contextlib.contextmanager
def prepared_register(
    kind: DbKind,
    size_name: str,
    *,
    reuse: bool,
    name: str = WORK_DATABASE,
    extra: Extra | None = None,
) -> Iterator[Register]:
    """A register of `size_name` on `kind`, in a working database dropped afterwards.

    With `reuse`, a saved register of the same generator and schema is copied instead of built,
    and a newly built one is saved for next time (SQLite: a file under /tmp/fieldsync-bench;
    PostgreSQL: the database `<name>_<size>`). Without it, nothing is left behind. `name` (one of
    `BENCH_NAMES`) names the working database and the saved registers, so that benchmarks never
    touch each other's databases. `extra`: rows added to a newly generated register (and saved
    with it)."""
    assert name in BENCH_NAMES, f"{name!r} is not a benchmark's name"
    size = SIZES[size_name]
    meta = _meta(size, None if extra is None else extra.label)

    def generate(url: str) -> LoadReport:
        report = _generate_into(kind, url, size)
        if extra is not None:
            extra.add(kind, url)
            _analyze(kind, url)
        return report

    if kind == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        prefix = "" if name == WORK_DATABASE else f"{name}-"
        saved = SQLITE_DIR / f"{prefix}register-{size.name}.db"
        saved_meta = saved.with_suffix(".json")
        work = SQLITE_DIR / f"{prefix}work-{os.getpid()}-{size.name}.db"
        report: LoadReport | None = None
        try:
            if reuse and saved.exists() and saved_meta.exists() and saved_meta.read_text() == meta:
                shutil.copyfile(saved, work)
            else:
                _remove_sqlite(work)
                report = generate(f"sqlite:///{work}")
                if reuse:
                    _remove_sqlite(saved)
                    shutil.copyfile(work, saved)
                    saved_meta.write_text(meta)
            url = f"sqlite:///{work}"
            yield Register(kind, size, url, bench_settings(url), report)
        finally:
            _remove_sqlite(work)
        return
    server = _Postgres()
    saved_name = f"{name}_{size.name}"
    try:
        report = None
        if reuse:
            if not (server.exists(saved_name) and server.comment(saved_name) == meta):
                server.create(saved_name)
                report = generate(server.url(saved_name))
                escaped = meta.replace("'", "''")
                server.execute(f"COMMENT ON DATABASE \"{saved_name}\" IS '{escaped}'")
            server.create(name, template=saved_name)
        else:
            server.create(name)
            report = generate(server.url(name))
        url = server.url(name)
        yield Register(kind, size, url, bench_settings(url), report)
    finally:
        server.drop(name)
        server.dispose()


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", "-writers"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def drop_saved_registers() -> None:
    """Forget every saved register (SQLite files and PostgreSQL databases)."""
    shutil.rmtree(SQLITE_DIR, ignore_errors=True)
    if postgres_version() is not None:
        server = _Postgres()
        for name in BENCH_NAMES:
            for size in SIZES.values():
                server.drop(f"{name}_{size.name}")
            server.drop(name)
        server.dispose()


def database_kinds(choice: str) -> list[DbKind]:
    """`sqlite`, `postgresql` or `both` (PostgreSQL only when a server answers)."""
    if choice == "sqlite":
        return ["sqlite"]
    if choice == "postgresql":
        if postgres_version() is None:
            raise SystemExit(f"no PostgreSQL server at {_safe_url(POSTGRES_ADMIN_URL)}")
        return ["postgresql"]
    if postgres_version() is None:
        print(f"NOTE: no PostgreSQL at {_safe_url(POSTGRES_ADMIN_URL)}; SQLite only")
        return ["sqlite"]
    return ["sqlite", "postgresql"]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgresql", "both"),
        default="both",
        help="database(s) to run on (default: both; PostgreSQL from FIELDSYNC_BENCH_POSTGRES_URL "
        "or postgres@127.0.0.1:5432, skipped when unreachable)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="copy a saved register instead of generating one, and save what is generated",
    )


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_common_arguments(parser)
    parser.add_argument("--size", choices=sorted(SIZES), default="50k")
    parser.add_argument(
        "--forget", action="store_true", help="delete every saved register and exit"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    if args.forget:
        drop_saved_registers()
        return
    kinds = database_kinds(args.db)
    print_machine(kinds)
    size = SIZES[args.size]
    print(
        f"register: {size.households:,} households x {MEMBERS_PER_HOUSEHOLD} members, "
        f"{size.villages} villages of {size.per_village}"
    )
    for kind in kinds:
        with prepared_register(kind, args.size, reuse=args.reuse) as register:
            report = register.report
            if report is None:
                print(f"{kind:<10} reused the saved register")
                continue
            rows = report.households + report.members + report.changes
            print(
                f"{kind:<10} generated {report.households:,} households, {report.members:,} "
                f"members, {report.changes:,} change rows in {report.seconds:.1f} s "
                f"({report.households / report.seconds:,.0f} households/s, "
                f"{rows / report.seconds:,.0f} rows/s; writing {report.writing_seconds:.1f} s, "
                f"indexes {report.indexing_seconds:.1f} s); bulk rows = load_households rows "
                f"on a sample of {report.checked_rows} rows"
            )


if __name__ == "__main__":
    main()
