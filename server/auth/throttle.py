"""Login throttling: slows password guessing without locking the real user out.

Every login attempt is charged as a failure *before* its password is checked, under a lock on the
throttle rows, in a transaction of its own; a successful login then takes the charge back. So no
more attempts reach a password check than the limits allow, however many arrive at once on
however many workers, and a success never counts. Three kinds of subject (`LoginThrottle.scope`):

- `account`: logins naming no tablet of the account's own. After LOGIN_MAX_FAILURES_PER_USER
  failures in a row, each further failure makes the next check wait LOGIN_DELAY seconds, doubling
  up to LOGIN_MAX_DELAY. Attempts refused while waiting change nothing.
- `device`: the same, separately for each tablet registered to the account (and not revoked), so
  someone guessing without that tablet's id cannot keep the tablet out.
- `address`: failures from one client address leak away at LOGIN_MAX_FAILURES_PER_ADDRESS per
  LOGIN_WINDOW; when that many are pending, attempts that name no known tablet wait. Known tablets
  are neither held back nor charged here.

Locks are always taken in the order account-or-device row, then address row, so two attempts
never wait for each other in a cycle.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, select, tuple_, update
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.models import LoginThrottle
from server.config import Settings
from server.db import upsert_insert
from server.errors import NotFound, RateLimited
from server.users.models import User


class Scope(StrEnum):
    ACCOUNT = "account"
    DEVICE = "device"
    ADDRESS = "address"


@dataclass(frozen=True)
class Subject:
    scope: Scope
    subject: str
    device_id: str = ""

    def where(self) -> tuple[ColumnElement[bool], ...]:
        return (
            LoginThrottle.scope == self.scope.value,
            LoginThrottle.subject == self.subject,
            LoginThrottle.device_id == self.device_id,
        )


@dataclass(frozen=True)
class Admission:
    """The subjects an admitted attempt was charged to (taken back if the password is right)."""

    charged: tuple[Subject, ...]


class LoginThrottled(RateLimited):
    pass


def failure_delay(failures: int, settings: Settings) -> int:
    """Seconds to wait after the `failures`-th failure in a row: none up to the allowance, then
    LOGIN_DELAY doubling with each failure, at most LOGIN_MAX_DELAY."""
    beyond = failures - settings.login_max_failures_per_user
    if beyond < 0:
        return 0
    # min() before the power: 2 ** a huge exponent would be a huge integer for nothing.
    doublings = min(beyond, 32)
    return int(min(settings.login_delay * 2**doublings, settings.login_max_delay))


def subjects_for(
    username: str, *, known_device_id: uuid.UUID | None, address: str
) -> tuple[Subject, ...]:
    """Whom an attempt is charged to: its tablet's allowance, or the account's and the address's."""
    if known_device_id is not None:
        return (Subject(Scope.DEVICE, username, str(known_device_id)),)
    return (Subject(Scope.ACCOUNT, username), Subject(Scope.ADDRESS, address))


def admit(
    session: Session, settings: Settings, subjects: Sequence[Subject], *, now: datetime
) -> Admission:
    """Charge one failure to each subject, or raise `LoginThrottled` (charging nothing: the
    caller's unit of work rolls back) when any of them must wait."""
    for subject in subjects:
        row = _lock(session, subject, now)
        if subject.scope is Scope.ADDRESS:
            _charge_address(session, settings, subject, row, now)
        else:
            _charge_run(session, settings, subject, row, now)
    return Admission(charged=tuple(subjects))


def take_back(session: Session, settings: Settings, admission: Admission, *, now: datetime) -> None:
    """The password was right: the attempt's charges were no failure. An account's or tablet's
    run of failures ends; an address keeps only its other failures."""
    for subject in admission.charged:
        if subject.scope is Scope.ADDRESS:
            row = _lock(session, subject, now)
            pending = max(0.0, _leaked(settings, row, now) - 1.0)
            session.execute(
                update(LoginThrottle)
                .where(*subject.where())
                .values(failures=pending, counted_at=now)
            )
        else:
            session.execute(delete(LoginThrottle).where(*subject.where()))


def forget_stale(session: Session, settings: Settings, *, now: datetime, batch: int = 200) -> int:
    """Remove up to `batch` rows that no longer hold anything: quiet for LOGIN_WINDOW and not
    waiting; returns how many. Rows another attempt holds are skipped (PostgreSQL), so this never
    waits on a login."""
    stale = (
        select(LoginThrottle.scope, LoginThrottle.subject, LoginThrottle.device_id)
        .where(
            LoginThrottle.counted_at < now - timedelta(seconds=settings.login_window),
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until < now),
        )
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    keys = tuple_(LoginThrottle.scope, LoginThrottle.subject, LoginThrottle.device_id)
    result = session.execute(delete(LoginThrottle).where(keys.in_(stale)))
    return int(getattr(result, "rowcount", 0) or 0)


def unlock_account(
    session: Session, username: str, *, acting_user_id: int | None, address: str | None = None
) -> int:
    """End every wait and failure count of an account and of its tablets; audited. Returns how
    many throttle rows were cleared."""
    if session.scalars(select(User.id).where(User.username == username)).first() is None:
        raise NotFound(f"no user named {username!r}")
    cleared = _clear(
        session,
        LoginThrottle.scope.in_([Scope.ACCOUNT.value, Scope.DEVICE.value]),
        LoginThrottle.subject == username,
    )
    audit.record(
        session,
        "login_unlocked",
        user_id=acting_user_id,
        object_type="user",
        object_id=username,
        address=address,
        details={"cleared": cleared},
    )
    return cleared


def clear_address(
    session: Session, client_address: str, *, acting_user_id: int | None, address: str | None = None
) -> int:
    """Forget the failures counted against one client address; audited."""
    cleared = _clear(
        session,
        LoginThrottle.scope == Scope.ADDRESS.value,
        LoginThrottle.subject == client_address,
    )
    audit.record(
        session,
        "login_address_cleared",
        user_id=acting_user_id,
        object_type="address",
        object_id=client_address,
        address=address,
        details={"cleared": cleared},
    )
    return cleared


def _clear(session: Session, *conditions: ColumnElement[bool]) -> int:
    result = session.execute(delete(LoginThrottle).where(*conditions))
    return int(cast(CursorResult[Any], result).rowcount)


@dataclass(frozen=True)
class _Row:
    failures: float
    counted_at: datetime
    blocked_until: datetime | None


def _lock(session: Session, subject: Subject, now: datetime) -> _Row:
    """The subject's row, created if missing and locked until the transaction ends, in one
    statement: an upsert that always touches the row (no check-then-insert race)."""
    values = upsert_insert(session, LoginThrottle).values(
        scope=subject.scope.value,
        subject=subject.subject,
        device_id=subject.device_id,
        failures=0.0,
        counted_at=now,
        blocked_until=None,
    )
    statement = values.on_conflict_do_update(
        index_elements=["scope", "subject", "device_id"],
        set_={"scope": values.excluded.scope},
    ).returning(LoginThrottle.failures, LoginThrottle.counted_at, LoginThrottle.blocked_until)
    failures, counted_at, blocked_until = session.execute(statement).one()
    return _Row(failures=float(failures), counted_at=counted_at, blocked_until=blocked_until)


def _charge_run(
    session: Session, settings: Settings, subject: Subject, row: _Row, now: datetime
) -> None:
    if row.blocked_until is not None and row.blocked_until > now:
        wait = math.ceil((row.blocked_until - now).total_seconds())
        what = "this device" if subject.scope is Scope.DEVICE else "this user"
        raise LoginThrottled(
            f"too many failed logins for {what}; try again in {wait} s", retry_after=wait
        )
    remembered = now - row.counted_at < timedelta(seconds=settings.login_window)
    failures = (int(row.failures) if remembered else 0) + 1
    delay = failure_delay(failures, settings)
    session.execute(
        update(LoginThrottle)
        .where(*subject.where())
        .values(
            failures=float(failures),
            counted_at=now,
            blocked_until=now + timedelta(seconds=delay) if delay else None,
        )
    )


def _leaked(settings: Settings, row: _Row, now: datetime) -> float:
    """An address's pending failures after leaking since they were last counted."""
    per_second = settings.login_max_failures_per_address / settings.login_window
    elapsed = max(0.0, (now - row.counted_at).total_seconds())
    return max(0.0, row.failures - elapsed * per_second)


def _charge_address(
    session: Session, settings: Settings, subject: Subject, row: _Row, now: datetime
) -> None:
    limit = settings.login_max_failures_per_address
    pending = _leaked(settings, row, now)
    if pending + 1.0 > limit + 1e-9:
        per_second = limit / settings.login_window
        wait = math.ceil((pending + 1.0 - limit) / per_second)
        raise LoginThrottled(
            "too many failed logins from this address; try again later", retry_after=wait
        )
    session.execute(
        update(LoginThrottle).where(*subject.where()).values(failures=pending + 1.0, counted_at=now)
    )
