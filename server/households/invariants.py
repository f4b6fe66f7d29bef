"""What must hold for a household as a whole, which field-by-field merging can break: exactly one
head, and the household's head one of its members with relation `head`. A broken household is
kept as merged and flagged for review (`households.review_flags`), never "fixed" silently.

Pure: plain field values in, flags out. The sync workspace and register imports both use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

# The fields the flags read: a write that changes none of their values leaves the flags as they are.
INVARIANT_FIELDS = frozenset({"relation", "deleted", "household_id", "head_member_id"})


def household_flags(
    household: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The review flags of a household: `household` its fields, `members` the fields of every
    member that belongs to it, by member id (text). In a fixed order:
    `multiple_heads`, `no_head`, `head_not_member`, `head_relation_mismatch`."""
    if household.get("deleted"):
        return []
    present = {mid: fields for mid, fields in members.items() if not fields.get("deleted")}
    heads = [mid for mid, fields in present.items() if fields.get("relation") == "head"]
    flags = []
    if len(heads) > 1:
        flags.append("multiple_heads")
    if present and not heads:
        flags.append("no_head")
    head_id = household.get("head_member_id")
    if head_id:
        key = _canonical_id(head_id)
        head = present.get(key) if key is not None else None
        if head is None:
            flags.append("head_not_member")
        elif head.get("relation") != "head":
            flags.append("head_relation_mismatch")
    return flags


def _canonical_id(value: object) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None  # no member has it
