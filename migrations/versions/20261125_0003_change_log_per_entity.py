"""The change log gets one row per entity per write instead of one per field: `fields` maps each
field the write changed to its new value (replacing `field` and `value`). A visit wrote ~25 log
rows before and writes 5 now; pull only ever needed to know which entities changed. The index by
village is dropped: pull reads the log by `(txid, seq)`.

Existing rows keep their `seq`, each becoming a one-field map. Downgrading splits every row back
into one row per field (the rows of a multi-field write get new `seq` numbers, so tablets must
pull from the start afterwards).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# Every column but the ones this revision replaces, in table order.
KEPT = (
    "entity_type, entity_id, clock, rev, village_code, submission_id, device_id, user_id, "
    "txid, changed_at"
)


# json_each gives SQL values; the JSON column stores JSON text (numbers as numbers).
_SQLITE_JSON_TEXT = (
    "CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' "
    "WHEN 'text' THEN json_quote(j.value) ELSE j.value END"
)


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("fields", JSON, nullable=True))
    if _is_sqlite():
        op.execute("UPDATE changes SET fields = json_object(field, json(value))")
    else:
        op.execute("UPDATE changes SET fields = jsonb_build_object(field, value)")
    op.drop_index("ix_changes_village_seq", table_name="changes")
    with op.batch_alter_table("changes") as batch:
        batch.alter_column("fields", existing_type=JSON, nullable=False)
        batch.drop_column("field")
        batch.drop_column("value")


def downgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("field", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("value", JSON, nullable=True))
        batch.alter_column("fields", existing_type=JSON, nullable=True)
    if _is_sqlite():
        split = (
            f"INSERT INTO changes ({KEPT}, field, value) "
            f"SELECT {_prefixed('c')}, j.key, {_SQLITE_JSON_TEXT} "
            "FROM changes AS c, json_each(c.fields) AS j "
            "WHERE c.field IS NULL ORDER BY c.seq, j.id"
        )
    else:
        split = (
            f"INSERT INTO changes ({KEPT}, field, value) "
            f"SELECT {_prefixed('c')}, j.key, j.value FROM changes AS c "
            "CROSS JOIN LATERAL jsonb_each(c.fields) AS j WHERE c.field IS NULL "
            "ORDER BY c.seq, j.key"
        )
    op.execute(split)
    op.execute("DELETE FROM changes WHERE field IS NULL")
    with op.batch_alter_table("changes") as batch:
        batch.alter_column("field", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("fields")
    op.create_index("ix_changes_village_seq", "changes", ["village_code", "seq"], unique=False)


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name.strip()}" for name in KEPT.split(","))
