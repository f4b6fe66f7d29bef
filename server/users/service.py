"""Managing users: create, list, grant and revoke regions, disable and enable, set a password. Used
by the CLI today and by the admin console later; every change is audited with the acting user (None
for the command line). Passwords are never stored, logged or audited, only their hashes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, false, func, not_, select, true, update
from sqlalchemy.orm import Session, selectinload

from server.audit import service as audit
from server.auth.actor import Actor
from server.auth.models import Token
from server.auth.passwords import PasswordHasher
from server.db import utcnow
from server.devices.models import DeviceEnrolment
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.regions.codes import code_range
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


# --- the administrators' API and console ------------------------------------------------------
# The functions below take the acting `Actor` and check its role themselves, so a server-rendered
# page may call them directly; the CLI keeps using the functions above (it acts as the system).


@dataclass(frozen=True)
class UserView:
    """A user as administrators see it; never the password hash."""

    username: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime
    disabled_at: datetime | None
    regions: tuple[str, ...]


@dataclass(frozen=True)
class UserFilters:
    """`role`, `region` (users holding a grant on that region or below it), `is_active`."""

    role: Role | None = None
    region: str | None = None
    is_active: bool | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class UserPage:
    users: list[UserView]
    limit: int
    offset: int


def managed_users(actor: Actor) -> ColumnElement[bool]:
    """A SQL condition on `User` keeping the accounts `actor` may manage tablets for: every account
    for an administrator; for a supervisor, collectors with at least one region grant, all of
    them inside the supervisor's regions (a collector working partly elsewhere is not theirs)."""
    if actor.is_admin:
        return true()
    if actor.role is not Role.SUPERVISOR:
        return false()
    grants = select(RegionGrant.region_code).where(RegionGrant.user_id == User.id)
    outside = grants.where(not_(actor.region_filter(RegionGrant.region_code)))
    return and_(User.role == Role.COLLECTOR, grants.exists(), not_(outside.exists()))


def _view(user: User) -> UserView:
    return UserView(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        is_active=user.is_active,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
        regions=tuple(sorted(g.region_code for g in user.grants)),
    )


def _loaded(session: Session, username: str) -> User:
    user = session.scalars(
        select(User).options(selectinload(User.grants)).where(User.username == username)
    ).one_or_none()
    if user is None:
        raise NotFound(f"no user named {username!r}", details={"username": username})
    return user


def list_user_views(session: Session, actor: Actor, filters: UserFilters) -> UserPage:
    """Users by username, filtered: every user for an administrator; for a supervisor the
    collectors they manage (`managed_users`: whose tablets they may enrol and revoke)."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    query = select(User).options(selectinload(User.grants)).where(managed_users(actor))
    if filters.role is not None:
        query = query.where(User.role == filters.role)
    if filters.is_active is not None:
        query = query.where(User.is_active.is_(filters.is_active))
    if filters.region is not None:
        low, high = code_range(filters.region)
        query = query.where(
            select(RegionGrant.user_id)
            .where(
                RegionGrant.user_id == User.id,
                RegionGrant.region_code >= low,
                RegionGrant.region_code <= high,
            )
            .exists()
        )
    users = session.scalars(
        query.order_by(User.username).limit(filters.limit).offset(filters.offset)
    ).all()
    return UserPage([_view(u) for u in users], filters.limit, filters.offset)


def get_user_view(session: Session, actor: Actor, username: str) -> UserView:
    """One user: 404 for an unknown name; a supervisor sees only the collectors they manage
    (403 for anyone else)."""
    actor.ensure_role(Role.ADMIN, Role.SUPERVISOR)
    user = _loaded(session, username)
    if not actor.is_admin and (
        session.scalars(
            select(User.id).where(User.id == user.id, managed_users(actor))
        ).one_or_none()
        is None
    ):
        raise Forbidden("this user works outside your regions", details={"username": username})
    return _view(user)


def create_user_as(
    session: Session,
    actor: Actor,
    passwords: PasswordHasher,
    *,
    username: str,
    password: str,
    role: Role,
    regions: Sequence[str] = (),
    display_name: str = "",
) -> UserView:
    """A new active user (administrators only): 422 for a bad name, a password short of the
    policy or an unknown region; 409 for a name taken (in any case). Audited."""
    actor.ensure_role(Role.ADMIN)
    create_user(
        session,
        passwords,
        username=username,
        password=password,
        role=role,
        regions=regions,
        display_name=display_name,
        acting_user_id=actor.user_id,
    )
    return _view(_loaded(session, username))


def grant_region_as(session: Session, actor: Actor, username: str, region_code: str) -> UserView:
    """Grant `region_code` (and so everything below it) to the user (administrators only;
    granting a region already granted changes nothing). Audited."""
    actor.ensure_role(Role.ADMIN)
    get_user(session, username)
    if session.get(Region, region_code) is None:
        raise ValidationFailed(
            "unknown region code",
            [{"path": "region", "code": "unknown_region", "message": f"no region {region_code}"}],
        )
    grant_region(session, username, region_code, acting_user_id=actor.user_id)
    session.expire_all()
    return _view(_loaded(session, username))


def revoke_region_as(session: Session, actor: Actor, username: str, region_code: str) -> UserView:
    """Withdraw one grant (administrators only); 404 if the user has no such grant. Audited."""
    actor.ensure_role(Role.ADMIN)
    revoke_region(session, username, region_code, acting_user_id=actor.user_id)
    session.expire_all()
    return _view(_loaded(session, username))


def reset_password_as(
    session: Session, actor: Actor, passwords: PasswordHasher, username: str, password: str
) -> int:
    """Give the user a new password (administrators only) and end every token they hold; the
    number of tokens ended. 422 for a password short of the policy. Audited, without it."""
    actor.ensure_role(Role.ADMIN)
    return set_password(session, passwords, username, password, acting_user_id=actor.user_id)


def disable_user_as(session: Session, actor: Actor, username: str) -> UserView:
    """Disable the user, end every token they hold and revoke their unused enrolment codes
    (administrators only). An administrator cannot disable themselves (409): someone must be
    left to enable them. Audited."""
    actor.ensure_role(Role.ADMIN)
    if actor.user_id is not None and get_user(session, username).id == actor.user_id:
        raise Conflict("you cannot disable your own account", details={"username": username})
    disable_user(session, username, acting_user_id=actor.user_id)
    # Its unused tablet enrolment codes die with it: enabling the account later does not bring
    # back codes that may have been handed out before.
    session.execute(
        update(DeviceEnrolment)
        .where(
            DeviceEnrolment.user_id == get_user(session, username).id,
            DeviceEnrolment.redeemed_at.is_(None),
            DeviceEnrolment.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow(), code_cipher=None)
    )
    session.flush()
    return _view(_loaded(session, username))


def enable_user_as(session: Session, actor: Actor, username: str) -> UserView:
    """Let a disabled user log in again (administrators only). Audited when it changes."""
    actor.ensure_role(Role.ADMIN)
    enable_user(session, username, acting_user_id=actor.user_id)
    return _view(_loaded(session, username))
