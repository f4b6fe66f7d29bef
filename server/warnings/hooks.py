"""Where the early-warning rules are told that something they read has changed.

Callers (department imports; the push goes through `server.monitoring.intake.on_accepted`) call
these inside their own unit of work, so a warning is raised in the same transaction as the data
that raised it. Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.orm import Session


def after_department_import(
    session: Session,
    import_id: uuid.UUID,
    household_ids: Collection[uuid.UUID],
    now: datetime,
) -> None:
    """Re-evaluate the rules for the households whose `department_facts` an import wrote or
    withdrew, naming the import as the evidence source. Set-based over `household_ids`."""
    # The rule engine is wired in here by the early-warning work (issue 11).
    del session, import_id, household_ids, now
