"""Writing audit entries. Callers pass the actor; the entry is part of the caller's unit of work,
so an action that rolls back leaves no entry, and one that commits always has one."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from server.audit.models import AuditEntry


def record(
    session: Session,
    action: str,
    *,
    user_id: int | None,
    object_type: str = "",
    object_id: str = "",
    region_code: str | None = None,
    address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        user_id=user_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        region_code=region_code,
        address=address,
        details=details or {},
    )
    session.add(entry)
    return entry
