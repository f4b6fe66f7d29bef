"""What a push's accepted submissions mean for cases: a `monitoring_application` opens a referral
(its `channel` answer says which of the three channels), a `household_visit` answering "refer for
monitoring" is a cadre's screening, and a visit to a household whose open case waits at
verification is that case's verification step. Set-based: a few statements per batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.monitoring.cases import Visit, record_verification_visits
from server.monitoring.intake import AcceptedSubmission
from server.monitoring.referrals import ReferralRequest, refer_many, referral_problems
from server.monitoring.terms import ReferralChannel
from server.sensitive import SensitiveCodec
from sync_protocol.clock import HybridClock

APPLICATION_FORM = "monitoring_application"
VISIT_FORM = "household_visit"
# The application form's `channel` answer → the referral channel.
CHANNELS = {
    "household_application": ReferralChannel.SELF_APPLICATION,
    "cadre_screening": ReferralChannel.CADRE_SCREENING,
    "department_screening": ReferralChannel.DEPARTMENT_WARNING,
}
# What of an application is kept as the referral's evidence (never the identity number).
APPLICATION_EVIDENCE = (
    "application_date",
    "household_size",
    "declared_income",
    "rigid_expenditure",
    "risk_description",
    "suggested_type",
    "cadre_name",
)


def take_accepted(
    session: Session,
    actor: Actor,
    accepted: Sequence[AcceptedSubmission],
    now: datetime,
    *,
    clock: HybridClock,
    codec: SensitiveCodec,
) -> None:
    """Referrals first (so a case opened by this batch exists), then verification visits."""
    requests = [r for r in (_referral(sub) for sub in accepted) if r is not None]
    requests = [r for r in requests if not referral_problems(r)]
    if requests:
        refer_many(session, actor, requests, now=now, clock=clock, codec=codec)
    visits = [
        Visit(sub.instance_id, sub.household_ids[0], _aware(sub.collected_at))
        for sub in accepted
        if sub.form_id == VISIT_FORM and sub.household_ids
    ]
    if visits:
        record_verification_visits(session, actor, visits, now)


def _referral(sub: AcceptedSubmission) -> ReferralRequest | None:
    data = sub.data
    if not sub.household_ids:
        return None
    causes = _causes(data.get("risk_causes"))
    if sub.form_id == APPLICATION_FORM:
        channel = CHANNELS.get(str(data.get("channel")), ReferralChannel.SELF_APPLICATION)
        evidence = {name: data[name] for name in APPLICATION_EVIDENCE if name in data}
        evidence["form"] = f"{sub.form_id}@{sub.form_version}"
        is_department = channel is ReferralChannel.DEPARTMENT_WARNING
        department = data.get("department") if is_department else None
        return ReferralRequest(
            household_id=sub.household_ids[0],
            channel=channel,
            causes=causes,
            note=_text(data.get("cadre_notes")),
            evidence=evidence,
            department=str(department) if department else None,
            submission_id=sub.instance_id,
            referred_at=_aware(sub.collected_at),
        )
    if sub.form_id == VISIT_FORM and data.get("refer_for_monitoring") is True:
        return ReferralRequest(
            household_id=sub.household_ids[0],
            channel=ReferralChannel.CADRE_SCREENING,
            causes=causes,
            note=_text(data.get("referral_note")),
            evidence={"form": f"{sub.form_id}@{sub.form_version}", "visit": str(sub.instance_id)},
            submission_id=sub.instance_id,
            referred_at=_aware(sub.collected_at),
        )
    return None


def _causes(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return str(value)[:2000] if isinstance(value, str) and value.strip() else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
