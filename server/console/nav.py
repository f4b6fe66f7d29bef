"""The console's menu: each entry names its page's endpoint, its label and who sees it. Entries
whose page is not registered are left out, so the menu never links to a missing page."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, url_for
from flask_babel import lazy_gettext as _l

from server.auth.actor import Actor
from server.users.models import Role

STAFF = (Role.ADMIN, Role.SUPERVISOR)


@dataclass(frozen=True)
class NavEntry:
    endpoint: str
    label: object  # a lazy string: translated when shown
    roles: tuple[Role, ...] = ()


NAV = (
    NavEntry("console.home", _l("Dashboard")),
    NavEntry("console.households", _l("Register")),
    NavEntry("console.cases", _l("Cases"), STAFF),
    NavEntry("console.warnings", _l("Warnings"), STAFF),
    NavEntry("console.conflicts", _l("Conflicts"), STAFF),
    NavEntry("console.quarantine", _l("Quarantine"), STAFF),
    NavEntry("console.forms", _l("Forms"), (Role.ADMIN,)),
    NavEntry("console.exports", _l("Exports"), STAFF),
    NavEntry("console.users", _l("Users"), (Role.ADMIN,)),
    NavEntry("console.devices", _l("Devices"), STAFF),
)


def menu(actor: Actor) -> list[tuple[str, object, str]]:
    """(endpoint, label, url) of each entry the actor may open."""
    entries = []
    for entry in NAV:
        if entry.endpoint not in current_app.view_functions:
            continue
        if entry.roles and actor.role not in entry.roles:
            continue
        entries.append((entry.endpoint, entry.label, url_for(entry.endpoint)))
    return entries
