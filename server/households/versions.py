"""Per-field versions of a register entity, as its `versions` column stores them.

Every field of a household or member remembers the write that set it: the write's HLC stamp, the
entity revision at which the field changed, the writer (a device id, `user:<id>` for server-side
edits, `system` for imports) and the submission it came from. One write sets many fields at once
(a visit sets a dozen with one stamp), so the column stores each distinct write once and maps
field names to it:

    {"writes": [["1764000000000-00003-<device>", 4, "<device>", "<instance id>"], ...],
     "fields": {"annual_income": 0, "per_capita_income": 0, "village_code": 1, ...}}

A write nothing refers to any more is dropped when the column is written again. Pure functions
over plain data; the merge state built from them lives in `server/sync/apply.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class FieldVersion(NamedTuple):
    """The write that set one field: stamp, the entity revision it changed at, writer, source."""

    clock: str
    rev: int
    origin: str | None
    source: str | None


# One write as stored: [clock, rev, origin, source].
StoredWrite = list[Any]


def empty_versions() -> dict[str, Any]:
    return {"writes": [], "fields": {}}


def decode_versions(document: Mapping[str, Any] | None) -> dict[str, FieldVersion]:
    """Every field's version, by field name (`{}` for None or an empty document)."""
    if not document:
        return {}
    writes = [FieldVersion(*write) for write in document["writes"]]
    return {name: writes[index] for name, index in document["fields"].items()}


def encode_versions(versions: Mapping[str, FieldVersion]) -> dict[str, Any]:
    """The stored document of `versions`, each distinct write once, in order of first use."""
    writes: list[StoredWrite] = []
    positions: dict[FieldVersion, int] = {}
    fields: dict[str, int] = {}
    for name, version in versions.items():
        index = positions.get(version)
        if index is None:
            index = positions[version] = len(writes)
            writes.append(list(version))
        fields[name] = index
    return {"writes": writes, "fields": fields}


def compacted(fields: Mapping[str, int], writes: list[StoredWrite]) -> dict[str, Any]:
    """The document for `fields` (name → index into `writes`) keeping only the writes some field
    still refers to, renumbered in order of first use. The fast path of `encode_versions` for a
    document that was decoded, had writes appended and fields repointed."""
    renumbered: dict[int, int] = {}
    kept: list[StoredWrite] = []
    out: dict[str, int] = {}
    for name, index in fields.items():
        position = renumbered.get(index)
        if position is None:
            position = renumbered[index] = len(kept)
            kept.append(writes[index])
        out[name] = position
    return {"writes": kept, "fields": out}


def stored_clocks(document: Mapping[str, Any] | None) -> dict[str, str]:
    """Each field's clock text, by name: what a pulled entity's `clocks` shows."""
    if not document:
        return {}
    writes = document["writes"]
    return {name: writes[index][0] for name, index in document["fields"].items()}
