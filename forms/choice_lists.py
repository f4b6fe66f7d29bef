"""Where named choice lists come from besides a form's own `choice_lists`: the register's
enumerations (`register.<enum>`) and the shared library file (`library.<name>`).

Reads only the packaged `library/choice_lists.json`; never the network or the database.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from forms.definition import Choice, Text
from forms.register import ENTITIES, LabelledEnum

REGISTER_PREFIX = "register."
LIBRARY_PREFIX = "library."
LIBRARY_FILE = Path(__file__).parent / "library" / "choice_lists.json"


def register_list_name(enum: type[LabelledEnum]) -> str:
    """`register.` + the enumeration's class name in snake case: Relation → `register.relation`,
    EducationLevel → `register.education_level`, RiskCause → `register.risk_cause`."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.__name__).lower()
    return f"{REGISTER_PREFIX}{snake}"


@cache
def register_choice_lists() -> dict[str, tuple[Choice, ...]]:
    """Every enumeration used by a register field, as a choice list under `register_list_name`."""
    lists: dict[str, tuple[Choice, ...]] = {}
    for spec in ENTITIES.values():
        for register_field in spec.fields.values():
            enum = register_field.choices
            if enum is not None:
                lists[register_list_name(enum)] = tuple(
                    Choice(code=member.value, label=Text(zh=member.zh, en=member.en))
                    for member in enum
                )
    return lists


@cache
def library_choice_lists() -> dict[str, tuple[Choice, ...]]:
    """The shared lists of `library/choice_lists.json`, under `library.<name>`.

    The file maps names to lists of `{"code", "label": {"zh","en"}}`; it is part of the code
    release and checked by the tests.
    """
    raw = json.loads(LIBRARY_FILE.read_text(encoding="utf-8"))
    return {
        f"{LIBRARY_PREFIX}{name}": tuple(
            Choice(
                code=item["code"],
                label=Text(zh=item["label"]["zh"], en=item["label"]["en"]),
                attributes=dict(item.get("attributes", {})),
            )
            for item in items
        )
        for name, items in raw.items()
    }


def find_external_choice_list(name: str) -> tuple[Choice, ...] | None:
    """The register or library list called `name`, or None when there is none."""
    if name.startswith(REGISTER_PREFIX):
        return register_choice_lists().get(name)
    if name.startswith(LIBRARY_PREFIX):
        return library_choice_lists().get(name)
    return None
