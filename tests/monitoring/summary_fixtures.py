"""Writing monitoring rows straight into the tables (the services that write them for real are
the case workflow's); shared by the summary and timeline tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from forms.register import MonitoringStatus, MonitoringType
from server.households.models import Household, Member
from server.monitoring.models import (
    CaseDirection,
    CaseOutcome,
    CaseStage,
    CaseStep,
    MonitoringCase,
    Referral,
    ReferralChannel,
    StepDecision,
)


def household(
    session: Session,
    village: str,
    status: MonitoringStatus,
    kind: MonitoringType | None = None,
    *,
    members: int = 1,
    deleted_members: int = 0,
    deleted: bool = False,
) -> uuid.UUID:
    """A household row with `members` live and `deleted_members` deleted members."""
    household_id = uuid.uuid4()
    session.add(
        Household(
            id=household_id,
            village_code=village,
            monitoring_status=status,
            monitoring_type=kind,
            deleted=deleted,
            member_count=members,
        )
    )
    session.flush()
    for i in range(members + deleted_members):
        session.add(Member(id=uuid.uuid4(), household_id=household_id, deleted=i >= members))
    session.flush()
    return household_id


def referral(
    session: Session,
    household_id: uuid.UUID,
    village: str,
    channel: ReferralChannel,
    at: datetime,
    **columns: Any,
) -> uuid.UUID:
    row = Referral(
        id=uuid.uuid4(),
        household_id=household_id,
        village_code=village,
        channel=channel,
        created_at=at,
        **columns,
    )
    session.add(row)
    session.flush()
    return row.id


def case(
    session: Session,
    household_id: uuid.UUID,
    village: str,
    direction: CaseDirection,
    stage: CaseStage,
    *,
    outcome: CaseOutcome = CaseOutcome.OPEN,
    opened_at: datetime | None = None,
) -> uuid.UUID:
    row = MonitoringCase(
        id=uuid.uuid4(),
        household_id=household_id,
        village_code=village,
        direction=direction,
        stage=stage,
        outcome=outcome,
        prior_status=MonitoringStatus.NOT_MONITORED,
    )
    if opened_at is not None:
        row.opened_at = opened_at
    session.add(row)
    session.flush()
    return row.id


def step(
    session: Session,
    case_id: uuid.UUID,
    seq: int,
    stage: CaseStage,
    decision: StepDecision,
    at: datetime,
    **columns: Any,
) -> uuid.UUID:
    row = CaseStep(
        id=uuid.uuid4(),
        case_id=case_id,
        seq=seq,
        stage=stage,
        decision=decision,
        taken_at=at,
        **columns,
    )
    session.add(row)
    session.flush()
    return row.id
