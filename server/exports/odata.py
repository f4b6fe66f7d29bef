"""The BI feed as an OData v4 subset, so that Excel's and Power BI's "OData feed" connect: a
service document listing the datasets, `$metadata` (CSDL XML: one entity type per dataset, its
key and its columns' types) and each dataset as an entity set with `$top`, `$skip`,
`$select`, `$filter` on the dataset's filters (`eq`, and `ge` for `changed_since`, joined by
`and`) and server-driven paging (`@odata.nextLink` with `$skiptoken`). Read-only and always
masked; no `$orderby`, `$expand`, `$count` or `$search`. Pure: no Flask, no database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from xml.etree import ElementTree

from server.errors import ValidationFailed
from server.exports.columns import Column
from server.exports.formats import dumps
from server.exports.registry import Dataset
from sync_protocol.errors import ItemErrorCode

NAMESPACE = "fieldsync"
EDM_TYPES = {
    "text": "Edm.String",
    "integer": "Edm.Int64",
    "decimal": "Edm.Decimal",
    "boolean": "Edm.Boolean",
    "date": "Edm.Date",
    "datetime": "Edm.DateTimeOffset",
    "choice": "Edm.String",
    "choices": "Edm.String",  # codes joined by `;`, as in CSV
    "json": "Edm.String",  # the JSON text, as in CSV
}
# The filters `$filter` may name, and the operator each takes. The form filters are left out:
# they change a dataset's columns, which `$metadata` declares once.
OPERATORS = {
    "region": "eq",
    "monitoring_type": "eq",
    "monitoring_status": "eq",
    "status": "eq",
    "year": "eq",
    "changed_since": "ge",
}
MAX_FILTER_LENGTH = 1000
_CLAUSE = re.compile(
    r"\s*(?P<name>[a-z_]+)\s+(?P<op>eq|ge)\s+"
    r"(?P<value>'(?:[^']|'')*'|[0-9]{1,18}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9:]+))\s*"
)


def feed_datasets(datasets: Iterable[Dataset]) -> list[Dataset]:
    """The datasets an OData client can read: paged by a key, and needing no filter."""
    return [d for d in datasets if d.key_expr is not None and not d.required]


def _problem(path: str, message: str) -> dict[str, str]:
    return {"path": path, "code": ItemErrorCode.INVALID_VALUE.value, "message": message}


def parse_filter(text: str, dataset: Dataset) -> dict[str, str]:
    """The filters of a `$filter` as query-string values (for `FilterQuerySchema` to check), or a
    422 naming `$filter`."""
    found: dict[str, str] = {}
    if len(text) > MAX_FILTER_LENGTH:
        raise ValidationFailed("$filter is invalid", [_problem("$filter", "too long")])
    for clause in re.split(r"\s+and\s+", text.strip()):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise ValidationFailed(
                "$filter is invalid",
                [_problem("$filter", "expected `name eq 'value'` clauses joined by `and`")],
            )
        name, op, value = match["name"], match["op"], match["value"]
        if name not in OPERATORS or name not in dataset.filters:
            raise ValidationFailed(
                "$filter is invalid",
                [_problem("$filter", f"dataset {dataset.name} cannot be filtered by {name}")],
            )
        if op != OPERATORS[name] or name in found:
            raise ValidationFailed(
                "$filter is invalid",
                [_problem("$filter", f"{name} takes `{OPERATORS[name]}`, once")],
            )
        if value.startswith("'"):
            value = value[1:-1].replace("''", "'")
        found[name] = value
    return found


def select_columns(text: str | None, columns: tuple[Column, ...]) -> tuple[Column, ...]:
    """The columns a `$select` names (all without one), in the dataset's order; 422 for a name
    the dataset lacks."""
    if text is None or text.strip() in ("", "*"):
        return columns
    names = {n.strip() for n in text.split(",")}
    unknown = sorted(names - {c.name for c in columns})
    if unknown:
        raise ValidationFailed(
            "$select is invalid",
            [_problem("$select", f"no column {', '.join(unknown)[:200]}")],
        )
    return tuple(c for c in columns if c.name in names)


def entity(
    columns: tuple[Column, ...], row: list[Any], chosen: tuple[Column, ...]
) -> dict[str, Any]:
    """One row as an OData entity with the `chosen` columns (choice lists and JSON documents as
    the texts CSV has)."""
    keep = {c.name for c in chosen}
    out: dict[str, Any] = {}
    for column, value in zip(columns, row, strict=True):
        if column.name not in keep:
            continue
        if value is not None and column.kind == "choices":
            value = ";".join(str(v) for v in value)
        elif value is not None and column.kind == "json":
            value = dumps(value)
        out[column.name] = value
    return out


def metadata_xml(datasets: Iterable[Dataset]) -> bytes:
    """The CSDL document: one entity type and entity set per dataset."""
    edmx = "http://docs.oasis-open.org/odata/ns/edmx"
    edm = "http://docs.oasis-open.org/odata/ns/edm"
    root = ElementTree.Element("edmx:Edmx", {"xmlns:edmx": edmx, "Version": "4.0"})
    services = ElementTree.SubElement(root, "edmx:DataServices")
    schema = ElementTree.SubElement(services, "Schema", {"xmlns": edm, "Namespace": NAMESPACE})
    container = ElementTree.Element("EntityContainer", {"Name": "exports"})
    for dataset in datasets:
        entity_type = ElementTree.SubElement(schema, "EntityType", {"Name": dataset.name})
        key = ElementTree.SubElement(entity_type, "Key")
        ElementTree.SubElement(key, "PropertyRef", {"Name": dataset.key})
        for column in dataset.columns:
            attributes = {"Name": column.name, "Type": EDM_TYPES[column.kind]}
            if column.name == dataset.key:
                attributes["Nullable"] = "false"
            ElementTree.SubElement(entity_type, "Property", attributes)
        ElementTree.SubElement(
            container,
            "EntitySet",
            {"Name": dataset.name, "EntityType": f"{NAMESPACE}.{dataset.name}"},
        )
    schema.append(container)
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
