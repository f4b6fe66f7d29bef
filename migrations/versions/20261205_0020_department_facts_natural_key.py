"""Department facts keyed by what they are about, and by the source that said them; the nightly
re-evaluation's watermark.

- `department_facts` loses its random UUID `id`: the natural key (department, fact, household,
  subject) becomes the primary key (it was already unique), so an import writes one index fewer
  and makes no id per fact. Its `import_id` index goes too (nothing reads by it any more), and so
  do its foreign keys to households and members, checked row by row (on PostgreSQL by a trigger
  per row and key) although an import only writes facts of the live members it has just matched,
  and households and members are never deleted (only marked deleted).
- `department_facts.source_id`: the source whose import last changed the fact. A full list
  withdraws what its own source said and it no longer lists (before: found through `import_id`,
  which forced every import to rewrite every fact it listed, changed or not). Filled from the
  imports for existing facts.
- `warning_reevaluations`: per scope ("*" or a region code) when the last complete nightly
  re-evaluation started, so the next one only evaluates households changed since.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 17:10:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.db import UtcDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ["department", "fact", "household_id", "subject_key"]


def upgrade() -> None:
    op.drop_index("ix_department_facts_import", table_name="department_facts")
    with op.batch_alter_table("department_facts") as batch:
        batch.add_column(sa.Column("source_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE department_facts SET source_id = (SELECT department_imports.source_id FROM "
        "department_imports WHERE department_imports.id = department_facts.import_id)"
    )
    with op.batch_alter_table("department_facts") as batch:
        batch.drop_constraint("fk_department_facts_household_id_households", type_="foreignkey")
        batch.drop_constraint("fk_department_facts_member_id_members", type_="foreignkey")
        batch.drop_constraint("uq_department_facts_subject", type_="unique")
        batch.drop_constraint("pk_department_facts", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("pk_department_facts", _KEY)
    op.create_table(
        "warning_reevaluations",
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("rules", sa.String(length=2000), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_warning_reevaluations"),
    )


def downgrade() -> None:
    op.drop_table("warning_reevaluations")
    with op.batch_alter_table("department_facts") as batch:
        batch.drop_constraint("pk_department_facts", type_="primary")
        batch.add_column(sa.Column("id", sa.Uuid(), nullable=True))
    # Ids for the facts again (any unique value does: nothing refers to them).
    bind = op.get_bind()
    table = sa.table(
        "department_facts",
        *(sa.column(name) for name in _KEY),
        sa.column("id", sa.Uuid()),
    )
    keys = bind.execute(sa.select(*(table.c[name] for name in _KEY))).all()
    for key in keys:
        bind.execute(
            table.update()
            .where(*(table.c[name] == value for name, value in zip(_KEY, key, strict=True)))
            .values(id=uuid.uuid4())
        )
    with op.batch_alter_table("department_facts") as batch:
        batch.alter_column("id", existing_type=sa.Uuid(), nullable=False)
        batch.create_primary_key("pk_department_facts", ["id"])
        batch.create_unique_constraint("uq_department_facts_subject", _KEY)
        batch.create_foreign_key(
            "fk_department_facts_household_id_households", "households", ["household_id"], ["id"]
        )
        batch.create_foreign_key(
            "fk_department_facts_member_id_members", "members", ["member_id"], ["id"]
        )
        batch.drop_column("source_id")
    op.create_index("ix_department_facts_import", "department_facts", ["import_id"], unique=False)
