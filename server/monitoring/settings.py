"""Configured values of the monitoring workflow, per region, with declared defaults.

Each setting is declared once in `SETTINGS` (name, default, bounds, meaning). A value set on a
region applies to it and to every region below it unless a nearer region sets its own; "*" is the
installation-wide value. Setting a value is audited. Services read settings through `effective`;
nothing else knows the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.errors import ValidationFailed
from server.monitoring.models import MonitoringSetting
from server.regions.codes import PREFIX_LENGTH, RegionLevel, is_valid_code, parent_code_of
from server.users.models import Role

EVERYWHERE = "*"
CODE_LENGTH = PREFIX_LENGTH[RegionLevel.VILLAGE]


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: int
    minimum: int
    maximum: int
    zh: str
    en: str


# Follow-up visits (server/monitoring/followups.py): the longest gap between two visits of a
# monitored household, per monitoring type, and how many days ahead a visit is listed as due.
FOLLOWUP_SETTINGS = (
    SettingSpec(
        "followup_days.unstable_lifted",
        30,
        1,
        365,
        "脱贫不稳定户回访周期（天）",
        "Days between follow-up visits: unstable lifted households",
    ),
    SettingSpec(
        "followup_days.marginal",
        30,
        1,
        365,
        "边缘易致贫户回访周期（天）",
        "Days between follow-up visits: marginal households",
    ),
    SettingSpec(
        "followup_days.sudden_difficulty",
        30,
        1,
        365,
        "突发严重困难户回访周期（天）",
        "Days between follow-up visits: households in sudden severe difficulty",
    ),
    SettingSpec(
        "followup_due_soon_days",
        7,
        0,
        90,
        "回访提前提醒天数",
        "Days before its deadline that a follow-up visit is listed as due",
    ),
)

# Whole-number settings (days, months). Features declare theirs here, in one place.
SETTINGS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec("notice_days", 5, 1, 60, "公示天数", "Public notice period, days"),
        SettingSpec(
            "notice_min_days", 5, 1, 60, "公示最短天数", "Shortest public notice period, days"
        ),
        SettingSpec(
            "exit_stable_income_months",
            6,
            1,
            36,
            "收入稳定超过监测标准月数",
            "Months income must stay above the monitoring line before an exit",
        ),
        *FOLLOWUP_SETTINGS,
    )
}


def ancestry(region_code: str) -> list[str]:
    """`region_code`, every region above it, then "*" — nearest first."""
    chain: list[str] = []
    code: str | None = region_code
    while code is not None:
        chain.append(code)
        code = parent_code_of(code)
    chain.append(EVERYWHERE)
    return chain


def effective(session: Session, region_code: str, name: str) -> int:
    """The value of setting `name` that applies in `region_code`."""
    return effective_grid(session, [region_code], [name])[name][region_code]


def effective_in_query(village_code: Any, names: Iterable[str]) -> list[Any]:
    """`effective` as columns of another query, for the village named by `village_code` (a
    column of it): one scalar subquery per setting, labelled with its name, giving the value set
    nearest to the village or NULL (`or_default` turns that into the declared default). Lets the
    statement that reads a village's row (e.g. a case it locks) read its settings without a round
    trip of their own."""
    # The village and every region above it, then "*": all are 12-digit codes but "*", and of
    # one village's chain the nearer region has the greater code ("*" sorts before digits).
    levels = sorted({n for n in PREFIX_LENGTH.values() if n < CODE_LENGTH}, reverse=True)
    links = [
        village_code,
        *(func.substr(village_code, 1, n).concat("0" * (CODE_LENGTH - n)) for n in levels),
        literal(EVERYWHERE),
    ]
    return [
        select(MonitoringSetting.value)
        .where(MonitoringSetting.name == name, MonitoringSetting.region_code.in_(links))
        .order_by(MonitoringSetting.region_code.desc())
        .limit(1)
        .scalar_subquery()
        .label(name)
        for name in names
    ]


def or_default(name: str, value: Any) -> int:
    """A value `effective_in_query` read for setting `name`, or its default where none is set."""
    return SETTINGS[name].default if value is None else int(value)


def effective_grid(
    session: Session, region_codes: Iterable[str], names: Iterable[str]
) -> dict[str, dict[str, int]]:
    """`effective` for many regions and settings at once, in one query:
    `{name: {region: value}}`."""
    codes, wanted_names = set(region_codes), list(dict.fromkeys(names))
    chains = {code: ancestry(code) for code in codes}
    links = {link for chain in chains.values() for link in chain}
    found: dict[str, dict[str, Any]] = {name: {} for name in wanted_names}
    if codes and wanted_names:
        rows = session.execute(
            select(
                MonitoringSetting.name, MonitoringSetting.region_code, MonitoringSetting.value
            ).where(
                MonitoringSetting.name.in_(wanted_names),
                MonitoringSetting.region_code.in_(links),
            )
        )
        for name, code, value in rows:
            found[name][code] = value
    return {
        name: {
            code: next(
                (int(found[name][link]) for link in chain if link in found[name]),
                SETTINGS[name].default,
            )
            for code, chain in chains.items()
        }
        for name in wanted_names
    }


def set_value(session: Session, actor: Actor, region_code: str, name: str, value: int) -> None:
    """Set `name` for `region_code` ("*" for everywhere: admins only); audited.

    422 for an unknown name, a region code that is not one, or a value outside its bounds."""
    spec = SETTINGS.get(name)
    problems: list[dict[str, Any]] = []
    if spec is None:
        problems.append(
            {"path": "name", "code": "unknown_setting", "message": f"no setting {name!r}"}
        )
    elif isinstance(value, bool) or not isinstance(value, int):
        problems.append({"path": "value", "code": "invalid", "message": "a whole number"})
    elif not spec.minimum <= value <= spec.maximum:
        problems.append(
            {
                "path": "value",
                "code": "out_of_range",
                "message": f"{name} must be {spec.minimum} to {spec.maximum}",
            }
        )
    if region_code != EVERYWHERE and not is_valid_code(region_code):
        problems.append(
            {"path": "region", "code": "invalid", "message": "a 12-digit division code or *"}
        )
    if problems:
        raise ValidationFailed("the setting cannot be saved", problems)
    if region_code == EVERYWHERE:
        actor.ensure_role(Role.ADMIN)
    else:
        actor.ensure_covers(region_code, "this region")
    row = session.get(MonitoringSetting, (region_code, name))
    before = None if row is None else row.value
    if row is None:
        row = MonitoringSetting(region_code=region_code, name=name)
        session.add(row)
    row.value = value
    row.updated_by_id = actor.user_id
    audit.record(
        session,
        "set_monitoring_setting",
        user_id=actor.user_id,
        object_type="monitoring_setting",
        object_id=name,
        region_code=None if region_code == EVERYWHERE else region_code,
        address=actor.address,
        details={"region": region_code, "name": name, "before": before, "after": value},
    )
    session.flush()


@dataclass(frozen=True)
class SettingValue:
    spec: SettingSpec
    value: int
    set_on: str | None  # the region (or "*") whose value applies; None: the declared default


def describe(session: Session, region_code: str) -> list[SettingValue]:
    """Every setting as it applies in `region_code` ("*": installation-wide), and where from."""
    chain = ancestry(region_code) if region_code != EVERYWHERE else [EVERYWHERE]
    rows = session.execute(
        select(
            MonitoringSetting.name, MonitoringSetting.region_code, MonitoringSetting.value
        ).where(MonitoringSetting.region_code.in_(chain))
    )
    found: dict[tuple[str, str], Any] = {(name, code): value for name, code, value in rows}
    described = []
    for name, spec in SETTINGS.items():
        origin = next((code for code in chain if (name, code) in found), None)
        value = spec.default if origin is None else int(found[(name, origin)])
        described.append(SettingValue(spec, value, origin))
    return described


def set_values(session: Session, actor: Actor, region_code: str, values: dict[str, int]) -> None:
    """`set_value` for each of `values`, all or nothing (the caller's unit of work)."""
    for name, value in sorted(values.items()):
        set_value(session, actor, region_code, name, value)
