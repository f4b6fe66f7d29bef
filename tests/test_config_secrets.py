"""Keys and environments: production refuses weak keys under any spelling of its name, a
development instance makes its own random secret on first start (keeping an existing database
readable), and attachments live where every host of a deployment can find them."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config import (
    DEV_SECRET_KEY,
    LEGACY_DATA_KEY,
    ConfigError,
    Settings,
    instance_keys,
)
from server.sensitive import SensitiveCodec

STRONG = "k" * 40
PG_URL = "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("spelling", ["production", "Production", "PROD", "prod", " live "])
@pytest.mark.parametrize("secret", ["", "x", DEV_SECRET_KEY, "s" * 31])
def test_production_under_any_spelling_refuses_an_empty_default_or_short_secret_key(
    spelling, secret
):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"ENVIRONMENT": spelling, "SECRET_KEY": secret})


@pytest.mark.parametrize("spelling", ["production", "Prod"])
def test_production_refuses_a_missing_secret_key_and_makes_no_instance_secret(spelling, tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"ENVIRONMENT": spelling, "INSTANCE_DIR": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


def test_production_refuses_a_short_data_key_and_accepts_strong_keys():
    with pytest.raises(ConfigError, match="DATA_KEY"):
        Settings.from_env({"ENVIRONMENT": "prod", "SECRET_KEY": STRONG, "DATA_KEY": "short"})
    with pytest.raises(ConfigError, match="DATA_KEY"):
        Settings.from_env(
            {"ENVIRONMENT": "prod", "SECRET_KEY": STRONG, "DATA_KEY": LEGACY_DATA_KEY}
        )
    settings = Settings.from_env(
        {"ENVIRONMENT": "Production", "SECRET_KEY": STRONG, "DATA_KEY": "d" * 32}
    )
    assert settings.environment == "production" and settings.is_production


@pytest.mark.parametrize(
    "keys",
    [
        {"SECRET_KEY": " " * 40},  # a variable filled with blanks by mistake
        {"SECRET_KEY": "\t\n" * 20},
        {"SECRET_KEY": STRONG, "DATA_KEY": " " * 40},
        {"SECRET_KEY": STRONG, "DATA_KEY": DEV_SECRET_KEY},  # the public key, copied over
    ],
    ids=["blank-secret", "whitespace-secret", "blank-data-key", "development-data-key"],
)
def test_production_refuses_blank_keys_and_the_development_key_as_data_key(keys):
    with pytest.raises(ConfigError, match="SECRET_KEY" if "DATA_KEY" not in keys else "DATA_KEY"):
        Settings.from_env({"ENVIRONMENT": "production", **keys})


def test_settings_built_directly_are_checked_the_same_way():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings(environment="PROD")
    assert Settings(environment="Dev").environment == "development"


@pytest.mark.parametrize(
    ("spelling", "meaning"),
    [("dev", "development"), ("LOCAL", "development"), ("test", "testing"), ("Testing", "testing")],
)
def test_environment_aliases_are_normalised(spelling, meaning, tmp_path):
    settings = Settings.from_env({"ENVIRONMENT": spelling, "INSTANCE_DIR": str(tmp_path)})
    assert settings.environment == meaning and not settings.is_production


def test_an_unknown_environment_is_an_error_naming_the_allowed_values():
    with pytest.raises(ConfigError, match="production, prod, live, development") as error:
        Settings.from_env({"ENVIRONMENT": "staging"})
    assert "ENVIRONMENT" in str(error.value) and "staging" in str(error.value)


def test_without_secret_key_an_instance_makes_its_own_private_secret_once(tmp_path):
    first = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    secret_file = tmp_path / "secret_key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.secret_key == secret_file.read_text().strip()
    assert first.secret_key != DEV_SECRET_KEY and len(first.secret_key) >= 32
    assert first.data_key_bytes != Settings().data_key_bytes  # not the public development key
    again = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert again.secret_key == first.secret_key and again.data_key_bytes == first.data_key_bytes
    other = Settings.from_env({"INSTANCE_DIR": str(tmp_path / "elsewhere")})
    assert other.secret_key != first.secret_key
    assert not (tmp_path / "data_key").exists()


def test_an_explicit_secret_key_is_used_and_no_file_is_made(tmp_path):
    settings = Settings.from_env({"INSTANCE_DIR": str(tmp_path), "SECRET_KEY": STRONG})
    assert settings.secret_key == STRONG and not (tmp_path / "secret_key").exists()


@pytest.fixture
def config_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What fieldsync.config logs (the app's own log setup may stop it reaching the root)."""
    logger = logging.getLogger("fieldsync.config")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.WARNING)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def test_an_instance_with_a_database_from_before_keeps_reading_its_identity_numbers(
    tmp_path, config_log
):
    # Written while every instance used the development key.
    old = SensitiveCodec(Settings(instance_dir=tmp_path).data_key_bytes)
    stored = old.protect("id_number", "990102198001012345").cipher
    (tmp_path / "fieldsync.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    settings = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert settings.secret_key != DEV_SECRET_KEY  # cursors are no longer signed with it
    codec = SensitiveCodec(settings.data_key_bytes)
    assert codec.reveal("id_number", stored) == "990102198001012345"
    assert stat.S_IMODE((tmp_path / "data_key").stat().st_mode) == 0o600
    assert "development key" in config_log.text
    # The decision is kept: the same keys on every later start.
    again = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert (again.secret_key, again.data_key_bytes) == (
        settings.secret_key,
        settings.data_key_bytes,
    )


def test_an_explicit_data_key_wins_over_the_instance_file(tmp_path):
    (tmp_path / "fieldsync.db").write_bytes(b"x" * 10)
    settings = Settings.from_env({"INSTANCE_DIR": str(tmp_path), "DATA_KEY": "d" * 40})
    assert settings.data_key == "d" * 40


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    results: list[str] = []

    def start() -> None:
        results.append(instance_keys(tmp_path, None)[0])

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no leftovers


def test_a_damaged_instance_secret_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ConfigError, match="secret_key"):
        Settings.from_env({"INSTANCE_DIR": str(tmp_path)})


def test_postgresql_without_secret_key_outside_production_warns_and_writes_no_file(
    tmp_path, config_log
):
    settings = Settings.from_env({"DATABASE_URL": PG_URL, "INSTANCE_DIR": str(tmp_path)})
    assert settings.secret_key == DEV_SECRET_KEY and "SECRET_KEY is not set" in config_log.text
    assert not (tmp_path / "secret_key").exists()


def test_attachments_follow_the_instance_folder_whatever_the_database(tmp_path):
    assert Settings(instance_dir=tmp_path).attachment_dir == tmp_path / "attachments"
    with_pg = Settings.from_env({"DATABASE_URL": PG_URL, "INSTANCE_DIR": str(tmp_path)})
    assert with_pg.attachment_dir == tmp_path / "attachments"
    explicit = Settings.from_env({"INSTANCE_DIR": str(tmp_path), "ATTACHMENT_DIR": "/srv/a"})
    assert explicit.attachment_dir == Path("/srv/a")


def test_production_on_postgresql_requires_an_explicit_shared_attachment_dir(tmp_path):
    production = {"ENVIRONMENT": "production", "SECRET_KEY": STRONG, "DATABASE_URL": PG_URL}
    with pytest.raises(ConfigError, match="ATTACHMENT_DIR"):
        Settings.from_env(production)
    with pytest.raises(ConfigError, match="EXPORT_DIR"):
        Settings.from_env({**production, "ATTACHMENT_DIR": "/srv/shared/attachments"})
    settings = Settings.from_env(
        {
            **production,
            "ATTACHMENT_DIR": "/srv/shared/attachments",
            "EXPORT_DIR": "/srv/shared/exports",
        }
    )
    assert settings.attachment_dir == Path("/srv/shared/attachments")
    assert settings.export_dir == Path("/srv/shared/exports")
    # One host with SQLite keeps everything in its instance folder.
    alone = Settings.from_env(
        {"ENVIRONMENT": "production", "SECRET_KEY": STRONG, "INSTANCE_DIR": str(tmp_path)}
    )
    assert alone.attachment_dir == tmp_path / "attachments"
    assert alone.export_dir == tmp_path / "exports"


def test_the_command_line_makes_the_instance_secret_on_first_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATA_KEY"}}
    env |= {"INSTANCE_DIR": str(tmp_path), "ENVIRONMENT": "development"}
    env.pop("DATABASE_URL", None)
    env.pop("ATTACHMENT_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", "from server.cli import main; main()", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fieldsync.db").exists()
    assert len((tmp_path / "secret_key").read_text().strip()) >= 32
    assert not (tmp_path / "data_key").exists()  # a new database: nothing to keep readable


def test_an_instance_folder_that_cannot_be_made_is_an_error_naming_it(tmp_path):
    # A file where the folder should be: no folder, no secret can be made there (even as root).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    instance = blocker / "instance"
    with pytest.raises(ConfigError, match="not-a-folder/instance") as raised:
        Settings.from_env({"INSTANCE_DIR": str(instance)})
    assert "INSTANCE_DIR" in str(raised.value) and "SECRET_KEY" in str(raised.value)


def test_the_command_line_says_plainly_when_the_instance_folder_cannot_be_made(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATA_KEY"}}
    env |= {"INSTANCE_DIR": str(blocker / "instance"), "ENVIRONMENT": "development"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", "from server.cli import main; main()", "db", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "INSTANCE_DIR" in done.stderr, done.stderr
