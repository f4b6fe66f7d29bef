"""Migrations produce exactly the models' schema on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from forms.register import ENTITIES
from server import migrate
from server.households.models import Household, Member
from server.models import metadata


def _schema_diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_produce_exactly_the_models_schema(db_url):
    assert _schema_diff(db_url) == []


def test_downgrade_to_base_then_upgrade_restores_the_schema(db_url):
    migrate.downgrade(db_url, "base")
    engine = create_engine(db_url)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    assert tables == set()
    migrate.upgrade(db_url)
    assert _schema_diff(db_url) == []
    engine = create_engine(db_url)
    assert migrate.migration_state(engine).is_current
    engine.dispose()


def test_every_register_field_has_a_column():
    tables = {"household": Household.__table__, "member": Member.__table__}
    for entity, spec in ENTITIES.items():
        columns = set(tables[entity].columns.keys())
        for name, field in spec.fields.items():
            if field.sensitive and field.kind == "text":
                assert {f"{name}_hash", f"{name}_masked", f"{name}_cipher"} <= columns, name
                assert name not in columns, f"{entity}.{name} must never be stored in clear"
            else:
                assert name in columns, f"{entity}.{name} has no column"


def test_server_owned_fields_are_the_workflow_ones():
    owned = {(e, n) for e, s in ENTITIES.items() for n, f in s.fields.items() if f.server_owned}
    assert owned == {("household", "monitoring_type"), ("household", "monitoring_status")}
