"""Where the early-warning rules are told that something they read has changed.

Callers (department imports; the push goes through `server.monitoring.intake.on_accepted`) call
these inside their own unit of work, so a warning is raised in the same transaction as the data
that raised it. Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from server.warnings import rules, set_based
from server.warnings.evaluation import Trigger, evaluate_households
from server.warnings.rules import Source

if TYPE_CHECKING:
    from server.monitoring.intake import AcceptedSubmission


def after_department_import(
    session: Session,
    import_id: uuid.UUID,
    household_ids: Collection[uuid.UUID],
    now: datetime,
    department: str | None = None,
) -> None:
    """Re-evaluate the rules for the households whose `department_facts` an import changed or
    withdrew, naming the import as the evidence source. Set-based (`set_based`). With
    `department`, only the rules that read that department's facts run (nothing else the rules
    read changed); their warnings alone can be raised or stop holding."""
    trigger = Trigger(Source.DEPARTMENT, {"import_id": str(import_id)})
    only = None if department is None else rules.reading_department(department)
    set_based.evaluate_ids(session, household_ids, now=now, trigger=trigger, only=only)


def after_push(session: Session, accepted: Sequence[AcceptedSubmission], now: datetime) -> None:
    """Evaluate the rules for every household a push batch wrote, with their previous values
    (the change log) so income drops and expenditure spikes are seen; each warning's evidence
    names the batch's submission that wrote its household."""
    submissions: dict[uuid.UUID, uuid.UUID] = {}
    for item in accepted:
        for household_id in item.household_ids:
            submissions[household_id] = item.instance_id
    if not submissions:
        return
    trigger = Trigger(Source.SUBMISSION, {}, submissions)
    evaluate_households(session, submissions, now=now, trigger=trigger, with_history=True)
