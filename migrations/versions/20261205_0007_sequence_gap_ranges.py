"""Device sequence gaps become ranges (`first_seq`..`last_seq`) instead of one row per missing
number, so a `device_seq` far ahead costs one row instead of a row (and memory) per number;
sequence numbers and a device's `highest_seq` become 64-bit (the protocol allows up to 2**53 - 1);
`households.household_no` holds 64 characters (a bundled form allows 40; it held 32).

Existing gap rows are joined into ranges of consecutive numbers, keeping the earliest time each
was noticed. Going back expands each range again, at most 10,000 numbers per range (what a batch
recorded at most before), and cuts values that no longer fit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGING = "device_sequence_gaps_0007"
MAX_EXPANDED = 10_000


def _gap_table(seq_columns: list[sa.Column]) -> None:
    op.create_table(
        "device_sequence_gaps",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        *seq_columns,
        sa.Column("noticed_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_sequence_gaps_device_id_devices")
        ),
        sa.PrimaryKeyConstraint(
            "device_id", seq_columns[0].name, name=op.f("pk_device_sequence_gaps")
        ),
    )


def upgrade() -> None:
    # Ranges of consecutive numbers: within one, seq - its row number is constant.
    op.execute(
        f"CREATE TABLE {STAGING} AS "
        "SELECT device_id, MIN(seq) AS first_seq, MAX(seq) AS last_seq, "
        "MIN(noticed_at) AS noticed_at FROM ("
        "  SELECT device_id, seq, noticed_at,"
        "  seq - ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY seq) AS island"
        "  FROM device_sequence_gaps"
        ") AS numbered GROUP BY device_id, island"
    )
    op.drop_table("device_sequence_gaps")
    _gap_table(
        [
            sa.Column("first_seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("last_seq", sa.BigInteger(), nullable=False),
        ]
    )
    op.execute(
        "INSERT INTO device_sequence_gaps (device_id, first_seq, last_seq, noticed_at) "
        f"SELECT device_id, first_seq, last_seq, noticed_at FROM {STAGING}"
    )
    op.drop_table(STAGING)
    with op.batch_alter_table("devices") as batch:
        batch.alter_column(
            "highest_seq",
            existing_type=sa.Integer(),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column(
            "device_seq", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
        )
    with op.batch_alter_table("households") as batch:
        batch.alter_column(
            "household_no",
            existing_type=sa.String(length=32),
            type_=sa.String(length=64),
            existing_nullable=True,
        )


def downgrade() -> None:
    int32 = 2**31 - 1
    op.execute(f"UPDATE devices SET highest_seq = {int32} WHERE highest_seq > {int32}")
    op.execute(f"UPDATE submissions SET device_seq = NULL WHERE device_seq > {int32}")
    op.execute("UPDATE households SET household_no = SUBSTR(household_no, 1, 32)")
    with op.batch_alter_table("households") as batch:
        batch.alter_column(
            "household_no",
            existing_type=sa.String(length=64),
            type_=sa.String(length=32),
            existing_nullable=True,
        )
    with op.batch_alter_table("submissions") as batch:
        batch.alter_column(
            "device_seq", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
        )
    with op.batch_alter_table("devices") as batch:
        batch.alter_column(
            "highest_seq",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=False,
        )
    connection = op.get_bind()
    ranges = sa.table(
        "device_sequence_gaps",
        sa.column("device_id", sa.Uuid()),
        sa.column("first_seq", sa.BigInteger()),
        sa.column("last_seq", sa.BigInteger()),
        sa.column("noticed_at", server.db.UtcDateTime()),
    )
    rows = connection.execute(sa.select(ranges)).all()
    op.drop_table("device_sequence_gaps")
    _gap_table([sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False)])
    numbers = sa.table(
        "device_sequence_gaps",
        sa.column("device_id", sa.Uuid()),
        sa.column("seq", sa.Integer()),
        sa.column("noticed_at", server.db.UtcDateTime()),
    )
    for device_id, first, last, noticed_at in rows:
        last = min(last, first + MAX_EXPANDED - 1, int32)
        if first > last:
            continue
        connection.execute(
            sa.insert(numbers),
            [
                {"device_id": device_id, "seq": seq, "noticed_at": noticed_at}
                for seq in range(first, last + 1)
            ],
        )
