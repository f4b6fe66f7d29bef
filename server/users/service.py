"""Managing users: create, list, grant and revoke regions, disable and enable, set a password. Used
by the CLI today and by the admin console later; every change is audited with the acting user (None
for the command line). Passwords are never stored, logged or audited, only their hashes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from server.audit import service as audit
from server.auth.models import Token
from server.auth.passwords import PasswordHasher
from server.db import utcnow
from server.errors import Conflict, NotFound, ValidationFailed
from server.regions.models import Region
from server.users.models import RegionGrant, Role, User


@dataclass(frozen=True)
class UserSummary:
    username: str
    role: Role
    is_active: bool
    regions: tuple[str, ...]


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def get_user(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def _require_regions(session: Session, codes: Iterable[str]) -> list[str]:
    codes = sorted(set(codes))
    known = set(session.scalars(select(Region.code).where(Region.code.in_(codes))))
    missing = [code for code in codes if code not in known]
    if missing:
        raise ValidationFailed(
            "unknown region codes",
            [
                {"path": "regions", "code": "unknown_region", "message": f"no region {code}"}
                for code in missing
            ],
        )
    return codes


def create_user(
    session: Session,
    passwords: PasswordHasher,
    *,
    username: str,
    password: str,
    role: Role,
    regions: Sequence[str] = (),
    display_name: str = "",
    acting_user_id: int | None = None,
) -> User:
    """A new active user with the given region grants (403-free: callers check the actor's role)."""
    errors = []
    if (
        not username
        or len(username) > 64
        or not username.replace("_", "").replace(".", "").isalnum()
    ):
        errors.append(
            {
                "path": "username",
                "code": "invalid_username",
                "message": "1–64 letters, digits, '_' or '.'",
            }
        )
    errors.extend(_password_problems(password))
    if errors:
        raise ValidationFailed("invalid user", errors)
    # Names are told apart by people reading lists and logs, and typed on tablets that
    # capitalise: a name differing from an existing one only in case is that user's.
    existing = session.scalars(
        select(User.username).where(func.lower(User.username) == username.lower())
    ).first()
    if existing is not None:
        raise Conflict(f"user {existing!r} already exists")
    codes = _require_regions(session, regions)
    user = User(
        username=username,
        password_hash=passwords.hash(password),
        role=role,
        display_name=display_name,
        is_active=True,
    )
    session.add(user)
    session.flush()
    session.add_all(RegionGrant(user_id=user.id, region_code=code) for code in codes)
    audit.record(
        session,
        "user_created",
        user_id=acting_user_id,
        object_type="user",
        object_id=username,
        details={"role": role.value, "regions": codes},
    )
    session.flush()
    return user


def _password_problems(password: str) -> list[dict[str, str]]:
    if len(password) < PasswordHasher.MIN_LENGTH:
        return [
            {
                "path": "password",
                "code": "too_short",
                "message": f"at least {PasswordHasher.MIN_LENGTH} characters",
            }
        ]
    return []


def list_users(session: Session) -> list[UserSummary]:
    users = session.scalars(
        select(User).options(selectinload(User.grants)).order_by(User.username)
    ).all()
    return [
        UserSummary(u.username, u.role, u.is_active, tuple(sorted(g.region_code for g in u.grants)))
        for u in users
    ]


def grant_region(
    session: Session, username: str, region_code: str, *, acting_user_id: int | None = None
) -> None:
    user = get_user(session, username)
    _require_regions(session, [region_code])
    exists = session.get(RegionGrant, (user.id, region_code))
    if exists is None:
        session.add(RegionGrant(user_id=user.id, region_code=region_code))
        audit.record(
            session,
            "region_granted",
            user_id=acting_user_id,
            object_type="user",
            object_id=username,
            region_code=region_code,
        )
    session.flush()


def revoke_region(
    session: Session, username: str, region_code: str, *, acting_user_id: int | None = None
) -> None:
    user = get_user(session, username)
    result = session.execute(
        delete(RegionGrant).where(
            RegionGrant.user_id == user.id, RegionGrant.region_code == region_code
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"{username} has no grant on {region_code}")
    audit.record(
        session,
        "region_revoked",
        user_id=acting_user_id,
        object_type="user",
        object_id=username,
        region_code=region_code,
    )


def disable_user(session: Session, username: str, *, acting_user_id: int | None = None) -> None:
    """Disable a user and end every token they hold."""
    user = get_user(session, username)
    now = utcnow()
    user.is_active = False
    user.disabled_at = now
    session.execute(
        update(Token)
        .where(Token.user_id == user.id, Token.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    audit.record(
        session, "user_disabled", user_id=acting_user_id, object_type="user", object_id=username
    )


def enable_user(session: Session, username: str, *, acting_user_id: int | None = None) -> None:
    """Let a disabled user log in again. The tokens ended by disabling stay ended: the user logs in
    afresh. Enabling an active user changes nothing and records nothing."""
    user = get_user(session, username)
    if user.is_active:
        return
    user.is_active = True
    user.disabled_at = None
    audit.record(
        session, "user_enabled", user_id=acting_user_id, object_type="user", object_id=username
    )
    session.flush()


def set_password(
    session: Session,
    passwords: PasswordHasher,
    username: str,
    password: str,
    *,
    acting_user_id: int | None = None,
) -> int:
    """Give a user a new password and end every token they hold (whoever knew the old password
    may have logged in with it); the user's tablets log in again with the new one. Returns the
    number of tokens ended. The password itself is neither logged nor audited."""
    problems = _password_problems(password)
    if problems:
        raise ValidationFailed("invalid password", problems)
    user = get_user(session, username)
    user.password_hash = passwords.hash(password)
    ended = session.execute(
        update(Token)
        .where(Token.user_id == user.id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    count: int = ended.rowcount  # type: ignore[attr-defined]
    audit.record(
        session,
        "password_set",
        user_id=acting_user_id,
        object_type="user",
        object_id=username,
        details={"tokens_ended": count},
    )
    session.flush()
    return count
