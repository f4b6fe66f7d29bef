"""The import history of department sources, for admins: newest first, filtered by source and
status, and one import with its report."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.departments.models import DepartmentImport, ImportStatus
from server.errors import NotFound
from server.users.models import Role


def list_imports(
    session: Session,
    actor: Actor,
    *,
    source_id: uuid.UUID | None,
    status: ImportStatus | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    actor.ensure_role(Role.ADMIN)
    conditions = []
    if source_id is not None:
        conditions.append(DepartmentImport.source_id == source_id)
    if status is not None:
        conditions.append(DepartmentImport.status == status)
    total = session.scalar(select(func.count()).select_from(DepartmentImport).where(*conditions))
    rows = session.scalars(
        select(DepartmentImport)
        .where(*conditions)
        .order_by(DepartmentImport.started_at.desc(), DepartmentImport.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return {"imports": list(rows), "total": total or 0}


def get_import(session: Session, actor: Actor, import_id: uuid.UUID) -> DepartmentImport:
    actor.ensure_role(Role.ADMIN)
    record = session.get(DepartmentImport, import_id)
    if record is None:
        raise NotFound("no such department import", details={"import_id": str(import_id)})
    return record
