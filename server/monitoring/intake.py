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
from server.sensitive import SensitiveCodec
from sync_protocol.clock import HybridClock


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
    session: Session,
    actor: Actor,
    accepted: Sequence[AcceptedSubmission],
    now: datetime,
    *,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> None:
    """Monitoring bookkeeping for the submissions a push accepted, in the push's transaction.

    `clock` and `codec` are the push's: server writes to the register (a case opening moves the
    household to `entry_review`) are stamped by the same clock, after every accepted write."""
    if not accepted:
        return
    from server.monitoring.case_intake import take_accepted
    from server.warnings.hooks import after_push

    take_accepted(session, actor, accepted, now, clock=clock, codec=codec)
    followups.record_visits(session, accepted, now)
    after_push(session, accepted, now)
