"""The demo county's accounts and their fixed passwords, printed by `fieldsync demo`, the README and
`make run`. Demo-only: these passwords are public, so never load the demo into a real register."""

from __future__ import annotations

from dataclasses import dataclass

from server.demo.county import COUNTY_CODE, TOWNSHIP_CODES, VILLAGE_CODES
from server.users.models import Role


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: Role
    regions: tuple[str, ...]
    description: str


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("admin", "demo-admin-2026", Role.ADMIN, (), "administrator, every region"),
    DemoAccount(
        "supervisor",
        "demo-supervisor-2026",
        Role.SUPERVISOR,
        (COUNTY_CODE,),
        "supervisor of 云溪县",
    ),
    DemoAccount(
        "collector1",
        "demo-collector1-2026",
        Role.COLLECTOR,
        VILLAGE_CODES[TOWNSHIP_CODES[0]],
        "collector, the 4 villages of 青石镇",
    ),
    DemoAccount(
        "collector2",
        "demo-collector2-2026",
        Role.COLLECTOR,
        VILLAGE_CODES[TOWNSHIP_CODES[1]],
        "collector, the 4 villages of 白水乡",
    ),
)


def describe_accounts() -> list[str]:
    """One line per demo account: username, password, role and scope."""
    width = max(len(a.username) for a in DEMO_ACCOUNTS)
    pwidth = max(len(a.password) for a in DEMO_ACCOUNTS)
    return [
        f"{a.username:<{width}}  {a.password:<{pwidth}}  {a.description}" for a in DEMO_ACCOUNTS
    ]
