"""Pure rules of 12-digit administrative division codes: 2 province + 2 city + 2 county +
3 township + 3 village digits. The level follows from the trailing zeros; a grant on a region covers
every code sharing its significant prefix. No database access here.
"""

from __future__ import annotations

import re

from forms.register import LabelledEnum

_CODE = re.compile(r"^\d{12}$")


class RegionLevel(LabelledEnum):
    PROVINCE = ("province", "省/自治区", "Province")
    CITY = ("city", "市/州", "City or prefecture")
    COUNTY = ("county", "县/区", "County or district")
    TOWNSHIP = ("township", "乡/镇/街道", "Township")
    VILLAGE = ("village", "村/社区", "Village or community")


# Number of significant leading digits at each level.
PREFIX_LENGTH: dict[RegionLevel, int] = {
    RegionLevel.PROVINCE: 2,
    RegionLevel.CITY: 4,
    RegionLevel.COUNTY: 6,
    RegionLevel.TOWNSHIP: 9,
    RegionLevel.VILLAGE: 12,
}


def is_valid_code(code: str) -> bool:
    return bool(_CODE.match(code)) and code[:2] != "00"


def level_of(code: str) -> RegionLevel:
    """The level of a valid 12-digit code, read from its trailing zeros."""
    if not is_valid_code(code):
        raise ValueError(f"not a 12-digit division code: {code!r}")
    for level in (RegionLevel.PROVINCE, RegionLevel.CITY, RegionLevel.COUNTY, RegionLevel.TOWNSHIP):
        if set(code[PREFIX_LENGTH[level] :]) == {"0"}:
            return level
    return RegionLevel.VILLAGE


def significant_prefix(code: str) -> str:
    return code[: PREFIX_LENGTH[level_of(code)]]


def parent_code_of(code: str) -> str | None:
    """The code of the region directly above, or None for a province."""
    level = level_of(code)
    order = list(PREFIX_LENGTH)
    index = order.index(level)
    if index == 0:
        return None
    keep = PREFIX_LENGTH[order[index - 1]]
    return code[:keep] + "0" * (12 - keep)


def covers(grant_code: str, code: str) -> bool:
    """Whether a grant on `grant_code` covers the region `code` (itself or anything below it)."""
    return code.startswith(significant_prefix(grant_code))


def code_range(grant_code: str) -> tuple[str, str]:
    """The inclusive range of 12-digit codes a grant covers, for index-friendly SQL filters."""
    prefix = significant_prefix(grant_code)
    pad = 12 - len(prefix)
    return prefix + "0" * pad, prefix + "9" * pad
