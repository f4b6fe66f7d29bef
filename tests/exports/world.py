"""A small register for export tests: the sync helpers' households A (village A1, three members)
and B (village B1), one household each in A1, A2 and B1 from the shared fixture, visits pushed by
a tablet of township A, and users of each scope."""

from __future__ import annotations

import copy
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from forms.bundled import load_sample_answers
from tests.conftest import bearer
from tests.sync.helpers import HOUSEHOLD_A, Tablet

REGISTER_SAMPLE = load_sample_answers("household_register")


def register_answers(village: str, **answers: Any) -> dict[str, Any]:
    """The bundled household-register sample for household A, in `village`."""
    data = copy.deepcopy(REGISTER_SAMPLE)
    data["household_id"] = str(HOUSEHOLD_A)
    data["village_code"] = village
    data.update(answers)
    return data


def push_register(tablet: Tablet, village: str, **answers: Any) -> dict[str, Any]:
    response = tablet.push(
        [tablet.submission(register_answers(village, **answers), form_id="household_register")]
    )
    assert response.status_code == 200, response.get_json()
    result: dict[str, Any] = response.get_json()
    assert all(r["status"] == "accepted" for r in result["results"]), result
    return result


@dataclass
class Export:
    status: int
    headers: Any
    body: bytes
    json: Any


def export(client: FlaskClient, token: str, dataset: str, query: str = "") -> Export:
    response = client.get(f"/api/v1/exports/{dataset}?{query}", headers=bearer(token))
    body = response.get_data()
    parsed = response.get_json(silent=True) if response.mimetype == "application/json" else None
    return Export(response.status_code, response.headers, body, parsed)


def csv_rows(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def jsonl_rows(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines() if line]


def xlsx_rows(body: bytes, sheet: str) -> tuple[list[Any], list[list[Any]]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(body), read_only=True)
    values = [list(row) for row in book[sheet].iter_rows(values_only=True)]
    return values[0], values[1:]
