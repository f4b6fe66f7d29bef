"""Typed settings, read once from the environment with the defaults documented next to each field.

Nothing else in fieldsync reads the environment. Every setting is the upper-case field name as an
environment variable (`DATABASE_URL`, `MAX_CLOCK_SKEW`, …); `docs/operations.md` lists them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_DIR = PROJECT_ROOT / "instance"
DEV_SECRET_KEY = "fieldsync-development-key-do-not-use-in-production"  # noqa: S105 (refused in production)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # Where the register lives. Default: a SQLite file under instance/ (WAL mode).
    # Production: postgresql+psycopg://user:pass@host/db
    database_url: str = ""
    # Folder for the SQLite default database and local files.
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    # "development" or "production"; production refuses the development secret key.
    environment: str = "development"
    # Signs nothing client-visible today; keys the identity-number hash and encryption when
    # DATA_KEY is unset. Must be set (and kept) in production.
    secret_key: str = DEV_SECRET_KEY
    # Key for hashing and encrypting identity numbers and phones. Defaults to one derived from
    # SECRET_KEY. Changing it makes stored sensitive values unreadable: keep it with backups.
    data_key: str = ""
    log_level: str = "INFO"
    # Largest accepted request body, after gzip decompression too (bytes). 16 MiB.
    max_body_size: int = 16 * 1024 * 1024
    # Largest push batch (submissions).
    max_batch_items: int = 1000
    # A submission stamped more than this many seconds ahead of the server clock is refused.
    max_clock_skew: int = 600
    # Lifetime of a login token (seconds). Tablets stay offline for days: 30 days.
    token_ttl: int = 30 * 24 * 3600
    # Login throttling (docs/operations.md, "Login throttling"). Per account: after
    # LOGIN_MAX_FAILURES_PER_USER failed logins in a row, each further failure makes the next
    # password check wait LOGIN_DELAY seconds, doubling with every failure up to LOGIN_MAX_DELAY.
    # Logins naming a tablet already registered to the account have an allowance of their own, so
    # guesses without it cannot keep the tablet out. Failures are forgotten LOGIN_WINDOW seconds
    # after the last one, and a successful login clears them.
    login_window: int = 3600
    login_max_failures_per_user: int = 5
    login_delay: int = 30
    login_max_delay: int = 900
    # Per client address: at most LOGIN_MAX_FAILURES_PER_ADDRESS failed logins per LOGIN_WINDOW
    # (a steady leak, not a fixed window). Successful logins never count, so an office of
    # hundreds of tablets behind one address logs in; tablets already known to their account
    # are not held back by it.
    login_max_failures_per_address: int = 300
    # Argon2id cost. Lower only in tests.
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 64 * 1024
    # Number of reverse proxies in front of the app whose X-Forwarded-For is trusted.
    trusted_proxy_hops: int = 0
    # Roles that may ask for identity numbers and phones unmasked (each reveal is audited).
    reveal_roles: tuple[str, ...] = ("admin", "supervisor")
    # Days a retired form version's submissions are still accepted before quarantine.
    form_retire_grace_days: int = 30
    # Where attachments (photos, signatures) are stored. Default: instance/attachments.
    attachment_dir: Path = field(default=DEFAULT_INSTANCE_DIR / "attachments")
    max_attachment_size: int = 10 * 1024 * 1024
    # Fault injection for crash tests: named points (e.g. push.before_commit) at which the
    # process kills itself with SIGKILL. Empty in every real deployment.
    failpoints: tuple[str, ...] = ()
    testing: bool = False

    def __post_init__(self) -> None:
        if not self.database_url:
            url = f"sqlite:///{self.instance_dir / 'fieldsync.db'}"
            object.__setattr__(self, "database_url", url)
        if self.environment == "production" and self.secret_key == DEV_SECRET_KEY:
            raise ConfigError("SECRET_KEY must be set in production")
        if self.max_body_size <= 0 or self.max_batch_items <= 0:
            raise ConfigError("MAX_BODY_SIZE and MAX_BATCH_ITEMS must be positive")
        self._check_login_limits()

    def _check_login_limits(self) -> None:
        limits = (
            self.login_max_failures_per_user,
            self.login_delay,
            self.login_max_delay,
            self.login_max_failures_per_address,
        )
        if min(limits) <= 0:
            raise ConfigError("the LOGIN_* limits and delays must be positive")
        # Failures forgotten before the longest wait ends would let guessing start afresh.
        if self.login_window <= self.login_max_delay:
            raise ConfigError("LOGIN_WINDOW must be longer than LOGIN_MAX_DELAY")

    @property
    def database_kind(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"

    @property
    def data_key_bytes(self) -> bytes:
        """32 bytes keying identity-number hashes and encryption."""
        source = self.data_key or f"fieldsync-data-key:{self.secret_key}"
        return hashlib.sha256(source.encode()).digest()

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default: the process environment); unknown variables are ignored."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or f.name == "testing":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        if "DATABASE_URL" not in env and "instance_dir" in values:
            values.setdefault("attachment_dir", Path(str(values["instance_dir"])) / "attachments")
        return cls(**values)  # type: ignore[arg-type]


def _parse(name: str, type_name: object, raw: str) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind == "Path":
            return Path(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{name.upper()} must be a {kind}, got {raw!r}") from exc
    return raw
