"""What one app instance holds: settings, the database, the sensitive-data codec and the password
hasher. Created by `create_app`, reached from request code through `runtime()`. Holds no state that
correctness depends on across requests: several processes each build their own from the same
settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from server.auth.passwords import PasswordHasher
from server.config import Settings
from server.db import Database
from server.sensitive import SensitiveCodec
from sync_protocol.clock import SERVER_NODE, HybridClock

EXTENSION_KEY = "fieldsync"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    codec: SensitiveCodec
    passwords: PasswordHasher
    # This process's hybrid logical clock. Per process on purpose: HLC needs no coordination,
    # every response carries it, and stamps only order writes, never decide access.
    clock: HybridClock

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            codec=SensitiveCodec(settings.data_key_bytes),
            passwords=PasswordHasher(
                time_cost=settings.password_hash_time_cost,
                memory_kib=settings.password_hash_memory_kib,
            ),
            clock=HybridClock(SERVER_NODE),
        )


def runtime() -> Runtime:
    """The runtime of the app handling the current request or CLI command."""
    value: Runtime = current_app.extensions[EXTENSION_KEY]
    return value
