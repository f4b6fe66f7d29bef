"""Resident identity numbers (GB 11643): 6-digit region, 8-digit birth date, 3-digit sequence (odd
for men, even for women) and an ISO 7064 MOD 11-2 check character. Pure functions; the demo uses
them to make numbers that are well formed yet, starting with 99, belong to nobody.
"""

from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


def check_character(first17: str) -> str:
    """The MOD 11-2 check character (`0`–`9` or `X`) of the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("an identity number's body is 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def has_valid_check_character(number: str) -> bool:
    """Whether an 18-character identity number ends with the right check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return check_character(number[:17]) == number[17].upper()


def identity_number(region: str, birth: date, sequence: int) -> str:
    """The identity number for a 6-digit region, a birth date and a sequence 0–999."""
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)
