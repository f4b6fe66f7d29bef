"""Households and members keep their per-field versions in one `versions` column instead of four
maps (`clocks`, `field_revs`, `origins`, `sources`): each distinct write (stamp, revision, writer,
submission) is stored once and fields point at it. A visit sets a dozen fields with one write, so
a row's bookkeeping shrinks from ~3.5 kB to ~0.6 kB, and every push rewrites less of it.

Rows are converted in chunks, both ways. A field missing from `field_revs` had the row's `rev`
(what the merge assumed); downgrading writes every field's revision explicitly.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 08:00:00.000000
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = ("households", "members")
OLD_COLUMNS = ("clocks", "field_revs", "origins", "sources")
CHUNK = 2000


def _rows(table: str, columns: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """The rows of `table` in chunks by id: id, rev and the given columns decoded."""
    connection = op.get_bind()
    t = sa.table(
        table,
        sa.column("id"),
        sa.column("rev", sa.Integer()),
        *(sa.column(c, JSON) for c in columns),
    )
    last = None
    while True:
        query = sa.select(t).order_by(t.c.id).limit(CHUNK)
        if last is not None:
            query = query.where(t.c.id > last)
        chunk = [dict(row) for row in connection.execute(query).mappings()]
        if not chunk:
            return
        last = chunk[-1]["id"]
        yield chunk


def _write(table: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    t = sa.table(table, sa.column("id"), *(sa.column(c, JSON) for c in columns))
    statement = (
        sa.update(t)
        .where(t.c.id == sa.bindparam("_id"))
        .values({c: sa.bindparam(c, type_=JSON) for c in columns})
    )
    op.get_bind().execute(statement, [{"_id": r["id"], **{c: r[c] for c in columns}} for r in rows])


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("versions", JSON, nullable=True))
        for chunk in _rows(table, OLD_COLUMNS):
            for row in chunk:
                row["versions"] = _versions(row)
            _write(table, chunk, ("versions",))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("versions", existing_type=JSON, nullable=False)
            for column in OLD_COLUMNS:
                batch.drop_column(column)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in OLD_COLUMNS:
                batch.add_column(sa.Column(column, JSON, nullable=True))
        for chunk in _rows(table, ("versions",)):
            for row in chunk:
                row.update(_maps(row["versions"]))
            _write(table, chunk, OLD_COLUMNS)
        with op.batch_alter_table(table) as batch:
            for column in OLD_COLUMNS:
                batch.alter_column(column, existing_type=JSON, nullable=False)
            batch.drop_column("versions")


def _versions(row: dict[str, Any]) -> dict[str, Any]:
    clocks = _loaded(row["clocks"])
    revs, origins, sources = (_loaded(row[c]) for c in ("field_revs", "origins", "sources"))
    writes: list[list[Any]] = []
    positions: dict[tuple[Any, ...], int] = {}
    fields: dict[str, int] = {}
    # A field is stored when it has a clock; the others had no state of their own.
    for name, clock in clocks.items():
        write = (clock, revs.get(name, row["rev"]), origins.get(name), sources.get(name))
        if write not in positions:
            positions[write] = len(writes)
            writes.append(list(write))
        fields[name] = positions[write]
    return {"writes": writes, "fields": fields}


def _maps(versions: Any) -> dict[str, dict[str, Any]]:
    document = _loaded(versions)
    writes = document.get("writes", [])
    maps: dict[str, dict[str, Any]] = {c: {} for c in OLD_COLUMNS}
    for name, index in document.get("fields", {}).items():
        clock, rev, origin, source = writes[index]
        maps["clocks"][name] = clock
        maps["field_revs"][name] = rev
        maps["origins"][name] = origin
        maps["sources"][name] = source
    return maps


def _loaded(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)
