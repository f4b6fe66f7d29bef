"""Running alembic from code: upgrade/downgrade a database and report its migration state.
Used by the CLI (`fieldsync db upgrade`), health checks and tests; never on app start."""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from server.config import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Percent signs in URLs (encoded passwords) would be read as interpolation by ConfigParser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", *, data_key: bytes | None = None) -> None:
    """Migrate to `revision`. `data_key` is the key of the sensitive-data codec, for migrations
    that protect stored values (without it they read the environment, as the app does)."""
    config = alembic_config(database_url)
    if data_key is not None:
        config.attributes["data_key"] = data_key
    command.upgrade(config, revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass(frozen=True)
class MigrationState:
    current: str | None
    head: str | None

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def migration_state(engine: Engine) -> MigrationState:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return MigrationState(current=current, head=head_revision())
