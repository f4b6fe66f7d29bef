"""Attachment holders, and sensitive values in stored submissions protected.

`attachment_holders` records who uploaded each file (backfilled from each file's first uploader):
only a holder's submissions make a file downloadable in their villages. Then identity numbers and
phones in every stored submission (payload, errors, reason, result) become ciphertext and mask,
as push stores them now; this needs the data key (`fieldsync db upgrade` passes it; a bare
`alembic upgrade` reads `DATA_KEY`/`SECRET_KEY` from the environment). Going back drops the
table; the payloads stay protected (nothing in clear is needed by the older code).

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-05 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import server.db

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachment_holders",
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", server.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_attachment_holders_user_id_users")
        ),
        sa.PrimaryKeyConstraint("digest", "user_id", name=op.f("pk_attachment_holders")),
    )
    op.execute(
        "INSERT INTO attachment_holders (digest, user_id, uploaded_at) "
        "SELECT digest, uploaded_by_id, uploaded_at FROM attachments "
        "WHERE uploaded_by_id IS NOT NULL"
    )
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT 1 FROM submissions LIMIT 1")).first() is None:
        return
    # The application's code, on purpose: the rule must be exactly the one push applies.
    from server.config import Settings
    from server.sensitive import SensitiveCodec
    from server.submissions.payload import protect_stored_submissions

    data_key = context.config.attributes.get("data_key") or Settings.from_env().data_key_bytes
    protect_stored_submissions(connection, SensitiveCodec(data_key))


def downgrade() -> None:
    op.drop_table("attachment_holders")
