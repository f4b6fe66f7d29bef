"""Alembic environment: the models' metadata, the URL from the caller (or DATABASE_URL), batch mode
on SQLite so ALTERs work there, and type comparison on so autogenerate sees every drift."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from server import json_codec
from server.config import Settings
from server.models import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # The application's JSON codec, so that data migrations read and write documents as it does.
    engine = create_engine(
        url,
        poolclass=pool.NullPool,
        json_serializer=json_codec.dumps,
        json_deserializer=json_codec.loads,
    )
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
