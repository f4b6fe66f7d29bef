"""What a department list can tell fieldsync about a person or a household: the vocabulary that
department imports write (`department_facts`) and the early-warning rules read.

Each fact belongs to one department, is about a member or about a whole household, has a value
type, and names the register field it is compared with (None when the register has no such field:
the rules use it on its own, e.g. a large medical bill). Pure: no Flask or database imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from forms.register import LabelledEnum


class Department(LabelledEnum):
    CIVIL_AFFAIRS = ("civil_affairs", "民政", "Civil affairs")
    EDUCATION = ("education", "教育", "Education")
    MEDICAL_INSURANCE = ("medical_insurance", "医保", "Medical insurance")
    HOUSING = ("housing", "住建", "Housing and construction")
    HUMAN_RESOURCES = ("human_resources", "人社", "Human resources and social security")
    DISABLED_FEDERATION = ("disabled_federation", "残联", "Disabled persons' federation")


class Subject(str, Enum):  # noqa: UP042 - same str() as the other enumerations
    MEMBER = "member"
    HOUSEHOLD = "household"


class FactType(str, Enum):  # noqa: UP042
    BOOLEAN = "boolean"
    DECIMAL = "decimal"  # stored as a string in JSON, exact
    CODE = "code"  # a choice code of the register field it is compared with


@dataclass(frozen=True)
class FactSpec:
    code: str
    department: Department
    subject: Subject
    type: FactType
    zh: str
    en: str
    # "member.insured", "household.receives_minimum_allowance"; None: no register counterpart.
    register_field: str | None


FACTS: tuple[FactSpec, ...] = (
    FactSpec(
        "minimum_allowance",
        Department.CIVIL_AFFAIRS,
        Subject.HOUSEHOLD,
        FactType.BOOLEAN,
        "享受低保",
        "Receives the minimum living allowance",
        "household.receives_minimum_allowance",
    ),
    FactSpec(
        "extreme_poverty_support",
        Department.CIVIL_AFFAIRS,
        Subject.HOUSEHOLD,
        FactType.BOOLEAN,
        "特困供养",
        "Receives extreme-poverty support",
        "household.receives_extreme_poverty_support",
    ),
    FactSpec(
        "enrolled",
        Department.EDUCATION,
        Subject.MEMBER,
        FactType.BOOLEAN,
        "在校就读",
        "Enrolled in school",
        "member.in_school",
    ),
    FactSpec(
        "dropped_out",
        Department.EDUCATION,
        Subject.MEMBER,
        FactType.BOOLEAN,
        "辍学",
        "Dropped out of school",
        None,
    ),
    FactSpec(
        "insured",
        Department.MEDICAL_INSURANCE,
        Subject.MEMBER,
        FactType.BOOLEAN,
        "参加基本医疗保险",
        "Has basic medical insurance",
        "member.insured",
    ),
    FactSpec(
        "medical_costs",
        Department.MEDICAL_INSURANCE,
        Subject.MEMBER,
        FactType.DECIMAL,
        "个人自付医疗费用(元/年)",
        "Out-of-pocket medical costs (yuan a year)",
        None,
    ),
    FactSpec(
        "dilapidated_house",
        Department.HOUSING,
        Subject.HOUSEHOLD,
        FactType.BOOLEAN,
        "危房",
        "Dilapidated house",
        "household.housing_ok",  # compared inverted
    ),
    FactSpec(
        "employed",
        Department.HUMAN_RESOURCES,
        Subject.MEMBER,
        FactType.BOOLEAN,
        "稳定就业",
        "In stable work",
        "member.employment",
    ),
    FactSpec(
        "disability",
        Department.DISABLED_FEDERATION,
        Subject.MEMBER,
        FactType.CODE,
        "残疾等级",
        "Disability grade",
        "member.disability",
    ),
)

BY_CODE: dict[str, FactSpec] = {spec.code: spec for spec in FACTS}


def facts_of(department: Department) -> tuple[FactSpec, ...]:
    return tuple(spec for spec in FACTS if spec.department is department)


FactValue = bool | Decimal | str
