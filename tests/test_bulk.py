"""Driver-level bulk reads and writes store and return exactly what the ORM does, on both
databases: conversions per column, membership conditions, COPY/executemany inserts, updates of
chosen columns, and inserts that skip rows already there."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import pytest
from sqlalchemy import Table, select

from forms.register import Category
from server.bulk import COPY_FROM_ROWS, codec_for, insert_rows, select_in, update_rows
from server.changes.models import Change
from server.households.models import Household
from server.runtime import Runtime
from tests.conftest import VILLAGE_A1, VILLAGE_A2, VILLAGE_B1

CHANGES = cast(Table, Change.__table__)
HOUSEHOLDS = cast(Table, Household.__table__)


def _change(entity_id: uuid.UUID, rev: int) -> dict[str, object]:
    return {
        "entity_type": "household",
        "entity_id": entity_id,
        "fields": {"annual_income": 5800.5, "name": "王秀英", "risk_causes": ["illness"]},
        "clock": f"1764000000000-{rev:05d}-server",
        "rev": rev,
        "village_code": VILLAGE_A1,
        "submission_id": uuid.uuid4(),
        "device_id": None,
        "user_id": 7,
        "txid": 42,
        "changed_at": datetime(2026, 11, 30, 8, 15, 0, 123456, tzinfo=UTC),
    }


# A few rows go as an executemany, many as COPY on PostgreSQL: both read back the same.
@pytest.mark.parametrize("count", [6, COPY_FROM_ROWS + 10])
def test_inserted_rows_read_back_through_the_orm_and_through_select_in(rt: Runtime, count: int):
    ids = [uuid.uuid4() for _ in range(3)]
    changes = [_change(ids[i % 3], rev) for i, rev in enumerate(range(1, count + 1))]
    columns = tuple(changes[0])
    with rt.db.unit_of_work() as session:
        connection = session.connection()
        codec = codec_for(CHANGES, connection.dialect)
        rows = [codec.written(columns, tuple(c.values())) for c in changes]
        insert_rows(connection, codec, columns, rows)
    with rt.db.unit_of_work(write=False) as session:
        stored = session.scalars(select(Change).order_by(Change.rev)).all()
        assert [{c: getattr(row, c) for c in columns} for row in stored] == changes
        connection = session.connection()
        raw = select_in(
            connection, codec, ("entity_id", "rev", "fields", "changed_at"), [("rev", [2, 5])]
        )
        read = [
            tuple(
                codec.reader(c)(v)
                for c, v in zip(("entity_id", "rev", "fields", "changed_at"), row, strict=True)
            )
            for row in raw
        ]
    assert sorted(read, key=lambda r: r[1]) == [
        (c["entity_id"], c["rev"], c["fields"], c["changed_at"])
        for c in changes
        if c["rev"] in (2, 5)
    ]


def test_select_in_joins_its_conditions_with_or_and_ignores_empty_ones(
    rt: Runtime, village_households
):
    a1 = village_households[VILLAGE_A1]["household"]
    b1 = village_households[VILLAGE_B1]["household"]
    with rt.db.unit_of_work(write=False) as session:
        connection = session.connection()
        codec = codec_for(HOUSEHOLDS, connection.dialect)
        rows = select_in(
            connection,
            codec,
            ("id", "village_code"),
            [("id", [a1]), ("village_code", [VILLAGE_B1]), ("household_no", [])],
        )
        found = {codec.reader("id")(raw_id): village for raw_id, village in rows}
        nothing = select_in(connection, codec, ("id",), [("id", []), ("village_code", [])])
    assert found == {a1: VILLAGE_A1, b1: VILLAGE_B1}
    assert nothing == []


def test_update_rows_sets_only_the_named_columns(rt: Runtime, village_households):
    a1 = village_households[VILLAGE_A1]["household"]
    a2 = village_households[VILLAGE_A2]["household"]
    columns = ("per_capita_income", "category", "extra", "rev")
    with rt.db.unit_of_work() as session:
        connection = session.connection()
        codec = codec_for(HOUSEHOLDS, connection.dialect)
        rows = [
            codec.written(
                (*columns, "id"), (Decimal("7200.25"), Category.MONITORED, {"x": 1}, 5, a1)
            ),
            codec.written((*columns, "id"), (None, Category.ORDINARY, {}, 6, a2)),
        ]
        update_rows(connection, codec, columns, "id", rows)
    with rt.db.unit_of_work(write=False) as session:
        first, second = (session.get(Household, hid) for hid in (a1, a2))
        assert first is not None and second is not None
        assert (first.per_capita_income, first.category, first.extra, first.rev) == (
            Decimal("7200.25"),
            Category.MONITORED,
            {"x": 1},
            5,
        )
        assert (second.per_capita_income, second.category, second.rev) == (
            None,
            Category.ORDINARY,
            6,
        )
        # Columns not named keep what the load stored.
        assert first.village_code == VILLAGE_A1 and first.household_no == VILLAGE_A1[-3:]


def test_insert_skipping_existing_rows_keeps_the_first_version(rt: Runtime):
    entity = uuid.uuid4()
    first = _change(entity, 1)
    columns = ("seq", *first)
    with rt.db.unit_of_work() as session:
        connection = session.connection()
        codec = codec_for(CHANGES, connection.dialect)
        insert_rows(connection, codec, columns, [codec.written(columns, (1, *first.values()))])
        again = {**_change(entity, 2), "village_code": VILLAGE_B1}
        insert_rows(
            connection,
            codec,
            columns,
            [
                codec.written(columns, (1, *again.values())),
                codec.written(columns, (2, *again.values())),
            ],
            skip_existing=True,
        )
    with rt.db.unit_of_work(write=False) as session:
        stored = session.scalars(select(Change).order_by(Change.seq)).all()
    assert [(c.seq, c.rev, c.village_code) for c in stored] == [
        (1, 1, VILLAGE_A1),
        (2, 2, VILLAGE_B1),
    ]
