"""Configured department sources: created, listed and changed by admins (API and command line),
each change audited. A source's mapping is checked (`server.departments.mapping`) and its cron
schedule parsed before it is saved, so a saved source can always be read and scheduled.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.departments.mapping import MappingProblems, department_of, parse_mapping
from server.departments.models import DepartmentSource, ListKind
from server.errors import Conflict, NotFound, ValidationFailed
from server.users.models import Role

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{1,63}")
TOKEN_ENV_RE = re.compile(r"FIELDSYNC_DEPARTMENT_[A-Z0-9_]{1,43}")
URL_RE = re.compile(r"https?://[^\s]{1,500}")
EDITABLE = ("department", "list_kind", "mapping", "url", "token_env", "schedule", "timeout_seconds")


def cron_trigger(schedule: str) -> CronTrigger:
    """The trigger of a five-field cron text, in UTC; ValueError if it is not one."""
    if len(schedule.split()) != 5:
        raise ValueError("five fields: minute hour day month weekday")
    return CronTrigger.from_crontab(schedule, timezone="UTC")


def _check(values: dict[str, Any]) -> None:
    errors: list[dict[str, str]] = []
    department = values["department"]
    try:
        parse_mapping(department_of(department), values["mapping"])
    except MappingProblems as problems:
        errors.extend(problems.errors)
    schedule = values.get("schedule")
    if schedule is not None:
        try:
            cron_trigger(schedule)
        except ValueError as exc:
            errors.append(
                {
                    "path": "schedule",
                    "code": "invalid_value",
                    "message": f"not a cron schedule: {exc}",
                }
            )
        if values.get("url") is None:
            errors.append(
                {
                    "path": "schedule",
                    "code": "invalid_value",
                    "message": "a schedule needs a url to fetch",
                }
            )
    if errors:
        raise ValidationFailed("the source cannot be used as given", errors)


def create_source(session: Session, actor: Actor, values: dict[str, Any]) -> DepartmentSource:
    actor.ensure_role(Role.ADMIN)
    values = {"list_kind": ListKind.PARTIAL.value, "timeout_seconds": 30, **values}
    _check(values)
    if session.scalar(select(DepartmentSource.id).where(DepartmentSource.name == values["name"])):
        raise Conflict("a source of that name exists", details={"name": values["name"]})
    source = DepartmentSource(
        name=values["name"],
        department=values["department"],
        list_kind=ListKind(values["list_kind"]),
        mapping=values["mapping"],
        url=values.get("url"),
        token_env=values.get("token_env"),
        schedule=values.get("schedule"),
        timeout_seconds=values["timeout_seconds"],
    )
    session.add(source)
    session.flush()
    audit.record(
        session,
        "department_source.create",
        user_id=actor.user_id,
        object_type="department_source",
        object_id=str(source.id),
        address=actor.address,
        details={"name": source.name, "department": source.department},
    )
    return source


def get_source(session: Session, reference: uuid.UUID | str) -> DepartmentSource:
    """A source by id, or (command line) by name; NotFound otherwise."""
    if isinstance(reference, uuid.UUID):
        source = session.get(DepartmentSource, reference)
    else:
        source = session.scalar(select(DepartmentSource).where(DepartmentSource.name == reference))
    if source is None:
        raise NotFound("no such department source", details={"source": str(reference)})
    return source


def update_source(
    session: Session, actor: Actor, reference: uuid.UUID | str, changes: dict[str, Any]
) -> DepartmentSource:
    actor.ensure_role(Role.ADMIN)
    source = get_source(session, reference)
    values = {name: getattr(source, name) for name in EDITABLE}
    values["list_kind"] = source.list_kind.value
    values.update(changes)
    _check(values)
    for name in EDITABLE:
        if name in changes:
            setattr(source, name, ListKind(changes[name]) if name == "list_kind" else changes[name])
    session.flush()
    audit.record(
        session,
        "department_source.update",
        user_id=actor.user_id,
        object_type="department_source",
        object_id=str(source.id),
        address=actor.address,
        details={"changed": sorted(changes)},
    )
    return source


def list_sources(session: Session, actor: Actor, limit: int, offset: int) -> dict[str, Any]:
    actor.ensure_role(Role.ADMIN)
    total = session.scalar(select(func.count()).select_from(DepartmentSource)) or 0
    rows = session.scalars(
        select(DepartmentSource).order_by(DepartmentSource.name).limit(limit).offset(offset)
    ).all()
    return {"sources": list(rows), "total": total}
