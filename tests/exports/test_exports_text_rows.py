"""The CSV path where the database writes the cells as text (`server.exports.textrows`) gives
byte for byte the CSV of the general path (typed values turned into text in Python), for every
dataset, in every label language, masked and revealed, on both databases — including times with
and without microseconds and empty values."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from server.auth.actor import system_actor
from server.exports import formats, service
from server.exports.registry import ExportFilters, all_datasets
from server.households.models import Household, Member
from tests.conftest import VILLAGE_A1
from tests.exports.test_exports_api import world  # noqa: F401 (the fixture)
from tests.exports.world import push_register

FILTERS: dict[str, ExportFilters] = {}


def _csv(rt: Any, plan: service.ExportPlan, *, text: bool) -> bytes:
    if text:
        rows: Any = service.stream_csv_rows(rt.db, rt.codec, plan)
    else:
        rows = service.stream_rows(rt.db, rt.codec, plan)
    return b"".join(
        formats.write_csv(plan.columns, rows, labels=plan.options.labels, prepared=text)
    )


@pytest.mark.parametrize("labels", ["code", "zh", "en"])
@pytest.mark.parametrize("reveal", [False, True])
def test_text_rows_write_the_same_csv_as_the_general_path(world, rt, labels, reveal):  # noqa: F811
    push_register(world["tablet"], VILLAGE_A1)  # identity numbers, phones, health, disability
    with rt.db.unit_of_work() as session:
        # A time on a whole second (isoformat leaves the fraction out) and one whose fraction
        # ends in zeros (PostgreSQL's own text would drop them).
        session.execute(
            update(Member).values(updated_at=datetime(2026, 3, 1, 8, 30, 0, tzinfo=UTC))
        )
        session.execute(
            update(Household).values(updated_at=datetime(2026, 3, 1, 8, 30, 0, 10000, tzinfo=UTC))
        )
    checked = 0
    for name, dataset in sorted(all_datasets().items()):
        if dataset.required:
            continue
        options = service.ExportOptions(ExportFilters(), reveal=reveal, labels=labels)
        with rt.db.unit_of_work() as session:
            plan = service.plan_export(session, system_actor(), rt.settings, name, options)
        general = _csv(rt, plan, text=False)
        assert _csv(rt, plan, text=True) == general, name
        checked += general.count(b"\n") - 1
    assert checked > 10  # rows were compared, not only headers


def _sheet_xml(rt: Any, plan: service.ExportPlan, *, prepared: bool) -> tuple[bytes, bytes]:
    """The data sheet's XML and the styles part (number formats of dates and times) of the
    export's workbook."""
    if prepared:
        rows: Any = service.stream_xlsx_rows(rt.db, rt.codec, plan)
    else:
        rows = service.stream_rows(rt.db, rt.codec, plan)
    body = b"".join(
        formats.write_xlsx(
            plan.dataset.name,
            plan.columns,
            rows,
            labels=plan.options.labels,
            prepared=prepared,
        )
    )
    with zipfile.ZipFile(io.BytesIO(body)) as book:
        return book.read("xl/worksheets/sheet1.xml"), book.read("xl/styles.xml")


@pytest.mark.parametrize("labels", ["code", "zh"])
@pytest.mark.parametrize("reveal", [False, True])
def test_prepared_xlsx_rows_write_the_same_sheet_as_the_general_path(world, rt, labels, reveal):  # noqa: F811
    push_register(world["tablet"], VILLAGE_A1)
    with rt.db.unit_of_work() as session:
        session.execute(
            update(Member).values(updated_at=datetime(2026, 3, 1, 8, 30, 0, tzinfo=UTC))
        )
        session.execute(
            update(Household).values(updated_at=datetime(2026, 3, 1, 8, 30, 0, 10000, tzinfo=UTC))
        )
    checked = 0
    for name, dataset in sorted(all_datasets().items()):
        if dataset.required:
            continue
        options = service.ExportOptions(ExportFilters(), reveal=reveal, labels=labels)
        with rt.db.unit_of_work() as session:
            plan = service.plan_export(session, system_actor(), rt.settings, name, options)
        general = _sheet_xml(rt, plan, prepared=False)
        assert _sheet_xml(rt, plan, prepared=True) == general, name
        checked += general[0].count(b"<row ") - 1
    assert checked > 10  # rows were compared, not only headers
