"""Typed settings, read once from the environment with the defaults documented next to each field.

Nothing else in fieldsync reads the environment. Every setting is the upper-case field name as an
environment variable (`DATABASE_URL`, `MAX_CLOCK_SKEW`, …); `docs/operations.md` lists them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_DIR = PROJECT_ROOT / "instance"
DEV_SECRET_KEY = "fieldsync-development-key-do-not-use-in-production"  # noqa: S105 (refused in production)
# The data key every instance used while SECRET_KEY defaulted to DEV_SECRET_KEY: as a DATA_KEY it
# hashes to the same bytes, so an instance from then keeps reading its identity numbers.
LEGACY_DATA_KEY = f"fieldsync-data-key:{DEV_SECRET_KEY}"
# Production refuses a SECRET_KEY or DATA_KEY shorter than this.
MIN_KEY_LENGTH = 32
# Each spelling of ENVIRONMENT that is accepted, and what it means.
ENVIRONMENTS = {
    "production": "production",
    "prod": "production",
    "live": "production",
    "development": "development",
    "dev": "development",
    "local": "development",
    "testing": "testing",
    "test": "testing",
}
# Files in INSTANCE_DIR: the instance's own random secret (created on first start when
# SECRET_KEY is unset) and, only for an instance whose database predates that secret, the data
# key its sensitive values were written with.
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
DATA_KEY_FILE = "data_key"
# Stands for "INSTANCE_DIR/attachments" until the instance folder is known.
_ATTACHMENTS_IN_INSTANCE = Path("<instance>", "attachments")
# Stands for "INSTANCE_DIR/exports" until the instance folder is known.
_EXPORTS_IN_INSTANCE = Path("<instance>", "exports")

log = logging.getLogger("fieldsync.config")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # Where the register lives. Default: a SQLite file under instance/ (WAL mode).
    # Production: postgresql+psycopg://user:pass@host/db
    database_url: str = ""
    # Folder for the SQLite default database and local files.
    instance_dir: Path = DEFAULT_INSTANCE_DIR
    # "production" (also prod, live), "development" (dev, local) or "testing" (test), in any
    # case. Production refuses an empty, default or short SECRET_KEY and a short DATA_KEY.
    environment: str = "development"
    # Signs pull cursors; keys the identity-number hash and encryption when
    # DATA_KEY is unset. Must be set (and kept) in production. Unset elsewhere with SQLite: a
    # random secret of the instance, INSTANCE_DIR/secret_key, made on first start.
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
    # Lifetime of a web console session (seconds): a working day. Logging out ends it sooner.
    console_session_ttl: int = 12 * 3600
    # Mark the console's cookies Secure even on a plain-HTTP request. Requests that arrive over
    # HTTPS (directly, or through a proxy trusted by TRUSTED_PROXY_HOPS) always get Secure cookies.
    console_secure_cookies: bool = False
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
    # Where attachments (photos, signatures) are stored. Default: INSTANCE_DIR/attachments.
    # Production on PostgreSQL must set it: every host must see the same files (shared storage).
    attachment_dir: Path = field(default=_ATTACHMENTS_IN_INSTANCE)
    max_attachment_size: int = 10 * 1024 * 1024
    # Where background export jobs write their files (docs/operations.md, "Export jobs").
    # Default: INSTANCE_DIR/exports. Production on PostgreSQL must set it: any host may run a
    # job and any other serve its download (shared storage, like ATTACHMENT_DIR).
    export_dir: Path = field(default=_EXPORTS_IN_INSTANCE)
    # Seconds a finished export job's file is kept before the `export_jobs` job removes it
    # (the job is then `expired`). 3 days.
    export_job_ttl: int = 3 * 24 * 3600
    # A running export job with no progress for this many seconds is taken as abandoned (its
    # process died) and recorded as failed. 15 minutes.
    export_job_stale_after: int = 900
    # Whether the web process that accepts an export job starts it at once in a background
    # thread; otherwise (or if that process dies first) the scheduler's `export_jobs` job does.
    export_job_threads: bool = True
    # Scheduled jobs (docs/operations.md, "Scheduled jobs"). JOB_SCHEDULES overrides the schedule
    # of named jobs, `;`-separated: `name=cron <minute> <hour> <day> <month> <weekday>`,
    # `name=every <seconds>` or `name=off` (never scheduled; "run now" still works).
    job_schedules: str = ""
    # Extra modules whose `JOBS` tuple is added to the registry (tests register a probe job so).
    job_modules: tuple[str, ...] = ()
    # A run still marked running this many seconds after it started is taken as abandoned (its
    # process died): recorded as failed, and no longer blocks "run now". 6 hours.
    job_stale_after: int = 6 * 3600
    # The time zone cron schedules are read in (the report calendar's, China Standard Time).
    scheduler_timezone: str = "Asia/Shanghai"
    # Levels whose regions get a daily monitoring summary snapshot (each snapshot also holds the
    # figures of the region's children, so `county` covers townships too).
    snapshot_levels: tuple[str, ...] = ("province", "city", "county")
    # Seconds a tablet enrolment code (QR code) stays redeemable unless its creator says
    # otherwise (docs/devices.md). 24 hours.
    enrolment_ttl: int = 24 * 3600
    # The server's address as tablets reach it, written into enrolment QR codes (e.g.
    # https://fieldsync.example.org). Empty: the address the request creating it came to.
    public_url: str = ""
    # Fault injection for crash tests: named points (e.g. push.before_commit) at which the
    # process kills itself with SIGKILL. Empty in every real deployment.
    failpoints: tuple[str, ...] = ()
    testing: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "environment", normalised_environment(self.environment))
        if not self.database_url:
            url = f"sqlite:///{self.instance_dir / 'fieldsync.db'}"
            object.__setattr__(self, "database_url", url)
        attachments_follow_instance = self.attachment_dir is _ATTACHMENTS_IN_INSTANCE
        if attachments_follow_instance:
            object.__setattr__(self, "attachment_dir", self.instance_dir / "attachments")
        exports_follow_instance = self.export_dir is _EXPORTS_IN_INSTANCE
        if exports_follow_instance:
            object.__setattr__(self, "export_dir", self.instance_dir / "exports")
        if self.is_production:
            self._check_production(attachments_follow_instance)
            if self.database_kind == "postgresql" and exports_follow_instance:
                raise ConfigError(
                    "EXPORT_DIR must be set in production with PostgreSQL: every application "
                    "host must write and read export job files in the same place (shared storage)"
                )
        if self.max_body_size <= 0 or self.max_batch_items <= 0:
            raise ConfigError("MAX_BODY_SIZE and MAX_BATCH_ITEMS must be positive")
        self._check_login_limits()
        if self.job_stale_after <= 0:
            raise ConfigError("JOB_STALE_AFTER must be positive (seconds)")
        if self.enrolment_ttl <= 0:
            raise ConfigError("ENROLMENT_TTL must be positive (seconds)")
        if self.export_job_ttl <= 0 or self.export_job_stale_after <= 0:
            raise ConfigError(
                "EXPORT_JOB_TTL and EXPORT_JOB_STALE_AFTER must be positive (seconds)"
            )

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

    def _check_production(self, attachments_follow_instance: bool) -> None:
        if not self.secret_key.strip() or self.secret_key == DEV_SECRET_KEY:
            raise ConfigError(
                "SECRET_KEY must be set in production (a random value of at least "
                f"{MIN_KEY_LENGTH} characters, e.g. from `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)"
            )
        # Blanks do not count: a key of spaces is a variable filled by mistake, not a secret.
        if len(self.secret_key.strip()) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"SECRET_KEY is too short for production: at least {MIN_KEY_LENGTH} characters"
            )
        if self.data_key and len(self.data_key.strip()) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"DATA_KEY is too short for production: at least {MIN_KEY_LENGTH} characters"
            )
        if self.data_key in (LEGACY_DATA_KEY, DEV_SECRET_KEY):
            raise ConfigError("DATA_KEY must not be the development data key in production")
        if self.database_kind == "postgresql" and attachments_follow_instance:
            raise ConfigError(
                "ATTACHMENT_DIR must be set in production with PostgreSQL: every application "
                "host must store and read attachments in the same place (shared storage)"
            )

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

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
        environment = normalised_environment(str(values.get("environment", "development")))
        if not values.get("secret_key") and environment != "production":
            values.update(_unset_secret_key(values))
        return cls(**values)  # type: ignore[arg-type]


def normalised_environment(value: str) -> str:
    """`production`, `development` or `testing` for any accepted spelling of ENVIRONMENT."""
    name = ENVIRONMENTS.get(value.strip().lower())
    if name is None:
        allowed = ", ".join(ENVIRONMENTS)
        raise ConfigError(f"ENVIRONMENT must be one of {allowed} (any case), got {value!r}")
    return name


def _unset_secret_key(values: Mapping[str, object]) -> dict[str, object]:
    """The keys to use when SECRET_KEY is not set (outside production).

    With SQLite, the instance's own random secret (made on first start, kept in INSTANCE_DIR). A
    database that already existed before that secret was written its sensitive values under the
    development key: its data key is kept (in INSTANCE_DIR/data_key) so they stay readable.
    With PostgreSQL, the development key, with a warning: a database that several hosts share
    needs one SECRET_KEY on all of them, which a file made on each host could not give."""
    url = str(values.get("database_url") or "")
    instance_dir = Path(str(values.get("instance_dir", DEFAULT_INSTANCE_DIR)))
    if url and not url.startswith("sqlite"):
        log.warning(
            "event=development_secret_key SECRET_KEY is not set: pull cursors are signed with "
            "the public development key; set SECRET_KEY (and DATA_KEY) on every host"
        )
        return {}
    from sqlalchemy.engine import make_url  # only here: reading settings stays light

    try:
        database = make_url(url).database if url else str(instance_dir / "fieldsync.db")
    except Exception as exc:  # make_url raises ArgumentError or ValueError
        raise ConfigError(f"DATABASE_URL is not a database URL: {url!r}") from exc
    existing = Path(database) if database and database != ":memory:" else None
    secret, data_key = instance_keys(instance_dir, existing)
    keys: dict[str, object] = {"secret_key": secret}
    if data_key is not None and not values.get("data_key"):
        keys["data_key"] = data_key
        if data_key == LEGACY_DATA_KEY:
            log.warning(
                "event=development_data_key identity numbers of this instance stay keyed by the "
                "public development key (%s); set DATA_KEY to another key only with a fresh "
                "database",
                instance_dir / DATA_KEY_FILE,
            )
    return keys


def instance_keys(instance_dir: Path, database: Path | None) -> tuple[str, str | None]:
    """The instance's secret and, if it has one, its data key, from INSTANCE_DIR.

    The secret is made on first use: 48 random bytes' worth, in a file only its owner may read.
    If `database` already holds data by then, it was written under the development key, and the
    data key of that key is kept beside the secret so the data stays readable. Safe when several
    processes start at once: each file appears complete or not at all."""
    secret_file = instance_dir / SECRET_KEY_FILE
    data_key_file = instance_dir / DATA_KEY_FILE
    if not secret_file.exists():
        try:
            instance_dir.mkdir(parents=True, exist_ok=True)
            has_old_data = (
                database is not None and database.exists() and database.stat().st_size > 0
            )
            if has_old_data and not data_key_file.exists():
                _create_private_file(data_key_file, LEGACY_DATA_KEY)
            _create_private_file(secret_file, secrets.token_urlsafe(48))
        except OSError as exc:
            raise ConfigError(
                f"cannot make the instance secret in {instance_dir} ({exc.strerror or exc}): "
                "make INSTANCE_DIR a folder this user may write, or set SECRET_KEY"
            ) from exc
    secret = _read_key(secret_file)
    return secret, _read_key(data_key_file) if data_key_file.exists() else None


def _create_private_file(path: Path, content: str) -> None:
    """Write `path` (mode 0600) unless it exists; never leave it half written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(content + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs wins
            os.link(temporary, path)
    finally:
        temporary.unlink()


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the instance key file {path}: {exc}") from exc
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"the instance key file {path} holds fewer than {MIN_KEY_LENGTH} characters; "
            "delete it only if the database is new, or set SECRET_KEY"
        )
    return key


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
