"""Settings from the environment, SQLite pragmas, and protection of sensitive values."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from server.config import ConfigError, Settings
from server.db import Database
from server.sensitive import SensitiveCodec, mask_id_number, mask_phone


def test_settings_come_from_upper_case_environment_variables(tmp_path):
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "MAX_CLOCK_SKEW": "30",
            "MAX_BODY_SIZE": "1024",
            "REVEAL_ROLES": "admin",
            "INSTANCE_DIR": str(tmp_path),
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.database_kind == "postgresql"
    assert settings.max_clock_skew == 30 and settings.max_body_size == 1024
    assert settings.reveal_roles == ("admin",)
    assert settings.instance_dir == tmp_path


def test_default_database_is_a_sqlite_file_under_instance(tmp_path):
    settings = Settings.from_env({"INSTANCE_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'fieldsync.db'}"
    assert settings.max_clock_skew == 600 and settings.max_batch_items == 1000


def test_malformed_numbers_name_the_variable():
    with pytest.raises(ConfigError, match="MAX_BODY_SIZE"):
        Settings.from_env({"MAX_BODY_SIZE": "lots"})


def test_production_refuses_the_development_secret_key():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"ENVIRONMENT": "production"})
    assert Settings.from_env({"ENVIRONMENT": "production", "SECRET_KEY": "s" * 40}).secret_key


def test_sqlite_runs_in_wal_mode_with_foreign_keys_on(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_masks_keep_only_the_region_start_and_last_digits():
    assert mask_id_number("45260219900101123x") == "4526**********123X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("1234") == "****"


def test_lookup_hash_matches_regardless_of_case_and_spaces_and_depends_on_the_key():
    codec = SensitiveCodec(b"k" * 32)
    assert codec.lookup_hash("id_number", "45260219900101123x") == codec.lookup_hash(
        "id_number", " 45260219900101123X "
    )
    assert codec.lookup_hash("id_number", "452602199001011234") != SensitiveCodec(
        b"j" * 32
    ).lookup_hash("id_number", "452602199001011234")


def test_ciphertext_round_trips_is_randomized_and_tamper_evident():
    codec = SensitiveCodec(b"k" * 32)
    first, second = (
        codec.protect("id_number", "452602199001011234"),
        codec.protect("id_number", "452602199001011234"),
    )
    assert first.cipher != second.cipher and first.hash == second.hash
    assert codec.reveal("id_number", first.cipher) == "452602199001011234"
    with pytest.raises(InvalidTag):
        codec.reveal("phone", first.cipher)  # bound to its kind
    with pytest.raises(InvalidTag):
        SensitiveCodec(b"j" * 32).reveal("id_number", first.cipher)
