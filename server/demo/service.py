"""Loading the demo county into the register in the caller's unit of work: regions, households
with members (set-based, through `load_households`) and the demo accounts. It refuses to load the
county twice and never commits; the CLI's unit of work does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import system_actor
from server.auth.passwords import PasswordHasher
from server.demo.accounts import DEMO_ACCOUNTS
from server.demo.county import COUNTY_CODE, generate_county
from server.errors import Conflict
from server.forms.library import install_bundled_forms
from server.households.loading import load_households
from server.households.models import Household
from server.regions.codes import code_range
from server.regions.service import add_region
from server.sensitive import SensitiveCodec
from server.users.models import User
from server.users.service import create_user
from sync_protocol.clock import SERVER_NODE, Hlc, wall_clock_ms


@dataclass(frozen=True)
class DemoSummary:
    regions: int
    households: int
    members: int


def has_households(session: Session) -> bool:
    """Whether the register holds any household at all (the demo's `--if-empty` test)."""
    return session.scalar(select(Household.id).limit(1)) is not None


def load_demo_county(
    session: Session,
    codec: SensitiveCodec,
    passwords: PasswordHasher,
    *,
    clock: str | None = None,
) -> DemoSummary:
    """Load the whole demo county; `Conflict` if its households or accounts are already there."""
    _ensure_not_loaded(session)
    county = generate_county()
    for code, name in county.regions:
        add_region(session, code, name)
    stamp = clock or Hlc(wall_clock_ms(), 0, SERVER_NODE).format()
    load_households(session, codec, county.households, clock=stamp)
    for account in DEMO_ACCOUNTS:
        create_user(
            session,
            passwords,
            username=account.username,
            password=account.password,
            role=account.role,
            regions=account.regions,
            display_name=account.description,
        )
    # The demo tablets need forms to fill: publish the bundled ones (idempotent).
    install_bundled_forms(session, system_actor("demo"))
    summary = DemoSummary(len(county.regions), len(county.households), county.member_count)
    audit.record(
        session,
        "demo_loaded",
        user_id=None,
        object_type="region",
        object_id=COUNTY_CODE,
        region_code=COUNTY_CODE,
        details={"households": summary.households, "members": summary.members},
    )
    session.flush()
    return summary


def _ensure_not_loaded(session: Session) -> None:
    low, high = code_range(COUNTY_CODE)
    in_county = session.scalar(
        select(func.count())
        .select_from(Household)
        .where(Household.village_code >= low, Household.village_code <= high)
    )
    usernames = [a.username for a in DEMO_ACCOUNTS]
    taken = session.scalars(select(User.username).where(User.username.in_(usernames))).all()
    if in_county or taken:
        raise Conflict(
            "the demo county is already loaded (or its account names are taken)",
            details={"households_in_county": in_county or 0, "accounts": sorted(taken)},
        )
