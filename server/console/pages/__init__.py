"""One module per area of the console; importing a module registers its routes on the console's
blueprint. To add an area: write `pages/<area>.py` and name it in `AREAS`."""

from __future__ import annotations

import importlib

AREAS = (
    "auth",
    "home",
    "households",
    "cases",
    "conflicts",
    "quarantine",
    "warnings",
    "forms",
    "exports",
    "users",
    "devices",
)


def load() -> None:
    for area in AREAS:
        importlib.import_module(f"server.console.pages.{area}")
