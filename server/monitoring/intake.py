"""What the monitoring workflow learns from a push: called once per batch, in the push's write
transaction, with every submission the batch accepted (set-based: never a query per item).

Features register their bookkeeping in `on_accepted` below; each takes the whole list."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.monitoring import followups


@dataclass(frozen=True)
class AcceptedSubmission:
    """One submission a push accepted and merged (its rows are written when `on_accepted` runs)."""

    instance_id: uuid.UUID
    form_id: str
    form_version: int
    collected_at: datetime
    # The households the submission wrote (its own, or its members' household), in binding order.
    household_ids: tuple[uuid.UUID, ...]
    village_code: str | None
    data: Mapping[str, Any]  # the answers, as loaded


def on_accepted(
    session: Session, actor: Actor, accepted: Sequence[AcceptedSubmission], now: datetime
) -> None:
    """Monitoring bookkeeping for the submissions a push accepted, in the push's transaction."""
    if not accepted:
        return
    followups.record_visits(session, accepted, now)
