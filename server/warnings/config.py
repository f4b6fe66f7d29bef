"""The risk rules' configuration by year and province: declared settings with defaults and bounds,
how a (year, province) pair resolves to a `RuleConfig`, and the audited change that re-evaluates
the province's households.

Resolution: for each setting, the value set for the province for the latest year at or before the
year asked, else the installation-wide ("*") one likewise, else the default. A value therefore
takes effect from the year it names (and carries into later years until one of them sets its
own); it never changes an earlier year. Services read the configuration through `configs_for`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.errors import ValidationFailed
from server.regions.codes import RegionLevel, is_valid_code, level_of
from server.users.models import Role
from server.warnings.models import WarningSetting
from server.warnings.rules import RuleConfig

EVERY_PROVINCE = "*"
FIRST_YEAR, LAST_YEAR = 2021, 2100


@dataclass(frozen=True)
class ConfigSpec:
    name: str
    default: Decimal
    minimum: Decimal
    maximum: Decimal
    whole: bool  # a whole number (ages, months)
    zh: str
    en: str


SPECS: tuple[ConfigSpec, ...] = (
    ConfigSpec(
        "monitoring_line",
        Decimal(6000),
        Decimal(0),
        Decimal(100000),
        False,
        "监测标准（元/人·年）",
        "Monitoring income line, yuan per person a year",
    ),
    ConfigSpec(
        "near_line_margin",
        Decimal("0.2"),
        Decimal(0),
        Decimal(2),
        False,
        "接近监测标准的幅度（比例）",
        "Margin above the line that still raises a warning (a share of the line)",
    ),
    ConfigSpec(
        "school_age_min",
        Decimal(6),
        Decimal(3),
        Decimal(18),
        True,
        "义务教育起始年龄",
        "Compulsory-school age from",
    ),
    ConfigSpec(
        "school_age_max",
        Decimal(15),
        Decimal(6),
        Decimal(20),
        True,
        "义务教育截止年龄",
        "Compulsory-school age to",
    ),
    ConfigSpec(
        "income_drop",
        Decimal("0.3"),
        Decimal("0.01"),
        Decimal(1),
        False,
        "收入大幅缩减阈值（比例）",
        "Fall of per-capita income that counts as sharp (a share of the previous value)",
    ),
    ConfigSpec(
        "expenditure_spike",
        Decimal("0.5"),
        Decimal("0.01"),
        Decimal(100),
        False,
        "刚性支出骤增阈值（比例）",
        "Rise of rigid expenditure that counts as a spike (a share of the previous value)",
    ),
    ConfigSpec(
        "large_medical_cost",
        Decimal(10000),
        Decimal(0),
        Decimal(10000000),
        False,
        "大额医疗费用（元/年）",
        "Medical costs that count as large, yuan a year",
    ),
    ConfigSpec(
        "gradual_exit_months",
        Decimal(6),
        Decimal(0),
        Decimal(36),
        True,
        "低保渐退期（月）",
        "Gradual-exit period of the minimum living allowance, months",
    ),
)
BY_NAME: Mapping[str, ConfigSpec] = {spec.name: spec for spec in SPECS}
assert set(BY_NAME) == {f.name for f in fields(RuleConfig)} - {"year", "province_code"}


def province_of(village_code: str) -> str:
    """The province-level division above a region: its first two digits, zero-padded."""
    return village_code[:2] + "0" * 10


def _value(spec: ConfigSpec, value: Decimal) -> Any:
    return int(value) if spec.whole else value


def resolve(
    rows: Iterable[tuple[int, str, str, Decimal]], year: int, province: str
) -> tuple[RuleConfig, dict[str, tuple[int, str] | None]]:
    """The configuration of (`year`, `province`) from setting rows (year, province, name, value),
    and for each setting where its value comes from ((year, province) or None: the default)."""
    best: dict[str, tuple[tuple[int, int], Decimal, tuple[int, str]]] = {}
    for row_year, row_province, name, value in rows:
        if name not in BY_NAME or row_year > year or row_province not in (province, EVERY_PROVINCE):
            continue
        rank = (row_year, 1 if row_province == province else 0)
        if name not in best or rank > best[name][0]:
            best[name] = (rank, value, (row_year, row_province))
    values = {
        spec.name: _value(spec, best[spec.name][1] if spec.name in best else spec.default)
        for spec in SPECS
    }
    origins = {spec.name: best[spec.name][2] if spec.name in best else None for spec in SPECS}
    return RuleConfig(year=year, province_code=province, **values), origins


def configs_for(
    session: Session, pairs: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], RuleConfig]:
    """The configuration of each (year, province) pair, in one query (the table is small: a few
    settings per province and year)."""
    wanted = set(pairs)
    if not wanted:
        return {}
    provinces = {province for _, province in wanted} | {EVERY_PROVINCE}
    rows = [
        tuple(row)
        for row in session.execute(
            select(
                WarningSetting.year,
                WarningSetting.province_code,
                WarningSetting.name,
                WarningSetting.value,
            ).where(WarningSetting.province_code.in_(provinces))
        )
    ]
    return {pair: resolve(rows, *pair)[0] for pair in wanted}


@dataclass(frozen=True)
class ConfigValue:
    spec: ConfigSpec
    value: Any
    set_for: tuple[int, str] | None


def describe(session: Session, year: int, province: str) -> list[ConfigValue]:
    _check_scope(year, province)
    rows = [
        tuple(row)
        for row in session.execute(
            select(
                WarningSetting.year,
                WarningSetting.province_code,
                WarningSetting.name,
                WarningSetting.value,
            ).where(WarningSetting.province_code.in_({province, EVERY_PROVINCE}))
        )
    ]
    config, origins = resolve(rows, year, province)
    return [ConfigValue(spec, getattr(config, spec.name), origins[spec.name]) for spec in SPECS]


def _check_scope(year: int, province: str) -> None:
    problems: list[dict[str, Any]] = []
    if not FIRST_YEAR <= year <= LAST_YEAR:
        problems.append(
            {
                "path": "year",
                "code": "out_of_range",
                "message": f"a year from {FIRST_YEAR} to {LAST_YEAR}",
            }
        )
    if province != EVERY_PROVINCE and not (
        is_valid_code(province) and level_of(province) is RegionLevel.PROVINCE
    ):
        problems.append(
            {
                "path": "province",
                "code": "invalid_region",
                "message": "a 12-digit province-level code (e.g. 450000000000), or *",
            }
        )
    if problems:
        raise ValidationFailed("the configuration scope is not valid", problems)


def set_values(
    session: Session,
    actor: Actor,
    year: int,
    province: str,
    values: Mapping[str, Decimal | None],
    *,
    now: datetime,
) -> list[str]:
    """Set (or, with None, clear) settings for `year` and `province`. Admins only; every change is
    audited with its old and new value. Returns the names whose value changed (none for an empty
    `values`: nothing to do). Never commits."""
    actor.ensure_role(Role.ADMIN)
    _check_scope(year, province)
    problems: list[dict[str, Any]] = []
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None:
            problems.append(
                {"path": f"values.{name}", "code": "unknown", "message": "no such setting"}
            )
        elif value is not None and not spec.minimum <= value <= spec.maximum:
            problems.append(
                {
                    "path": f"values.{name}",
                    "code": "out_of_range",
                    "message": f"from {spec.minimum} to {spec.maximum}",
                }
            )
        elif value is not None and spec.whole and value != value.to_integral_value():
            problems.append(
                {"path": f"values.{name}", "code": "not_whole", "message": "a whole number"}
            )
    if problems:
        raise ValidationFailed("the configuration cannot be set", problems)
    current = {
        row.name: row
        for row in session.scalars(
            select(WarningSetting).where(
                WarningSetting.year == year,
                WarningSetting.province_code == province,
                WarningSetting.name.in_(list(values)),
            )
        )
    }
    changed: list[str] = []
    for name, value in values.items():
        row = current.get(name)
        old = None if row is None else row.value
        if old == value or (old is not None and value is not None and Decimal(old) == value):
            continue
        if value is None:
            session.execute(
                delete(WarningSetting).where(
                    WarningSetting.year == year,
                    WarningSetting.province_code == province,
                    WarningSetting.name == name,
                )
            )
        elif row is None:
            session.add(
                WarningSetting(
                    year=year,
                    province_code=province,
                    name=name,
                    value=value,
                    updated_by_id=actor.user_id,
                    updated_at=now,
                )
            )
        else:
            row.value = value
            row.updated_by_id = actor.user_id
            row.updated_at = now
        changed.append(name)
        audit.record(
            session,
            "set_warning_setting",
            user_id=actor.user_id,
            object_type="warning_setting",
            object_id=f"{year}/{province}/{name}",
            region_code=None if province == EVERY_PROVINCE else province,
            address=actor.address,
            details={
                "year": year,
                "province": province,
                "name": name,
                "old": None if old is None else str(old),
                "new": None if value is None else str(value),
            },
        )
    session.flush()
    return changed
