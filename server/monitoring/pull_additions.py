"""What the monitoring workflow adds to a pull page: the help of the households on the page, and,
on the last page of a pull, the caller's follow-up visits that are due. Read-only, within the
pull's own read transaction; additive fields that older tablets ignore (docs/sync-protocol.md)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.monitoring import followups
from server.monitoring.assistance import help_for_pull


def page_additions(
    session: Session,
    actor: Actor,
    entities: Sequence[dict[str, Any]],
    *,
    final: bool,
    now: datetime,
) -> dict[str, Any]:
    """`help`: for each household entity on the page that has help, its current helpers and
    measures (a household on the page without an entry has none). `followups` (last page only):
    every monitored household of the caller's regions whose visit is overdue or due soon."""
    households = [uuid.UUID(e["id"]) for e in entities if e["entity"] == "household"]
    additions: dict[str, Any] = {"help": help_for_pull(session, households)}
    if final:
        additions["followups"] = {
            "as_of": now.isoformat(),
            "due": followups.due_list(session, actor, now),
        }
    return additions
