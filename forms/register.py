"""The household register's vocabulary: entity types, their canonical fields and the enumerations
behind them, each with a Chinese and an English label.

This is the one place these facts are written down. The server's tables, the form binding checks,
the exports and the docs are all derived from it (a test keeps the tables honest). Field names are
a public contract (`sync-protocol.md`): add fields, never rename them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Literal

from forms.issues import IssueCode


class LabelledEnum(str, Enum):  # noqa: UP042 - StrEnum would change str() of members
    """A string enumeration whose members carry `zh` and `en` labels.

    Members are declared as `NAME = ("code", "中文", "English")`; the code is the value stored and
    sent on the wire.
    """

    zh: str
    en: str

    def __new__(cls, code: str, zh: str, en: str) -> LabelledEnum:
        member = str.__new__(cls, code)
        member._value_ = code
        member.zh = zh
        member.en = en
        return member

    def label(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en

    @classmethod
    def codes(cls) -> list[str]:
        return [m.value for m in cls]


class Category(LabelledEnum):
    """户类别 — what the register says a household is."""

    LIFTED = ("lifted", "脱贫户", "Household lifted out of poverty")
    MONITORED = ("monitored", "监测户", "Monitored household")
    ORDINARY = ("ordinary", "一般农户", "Ordinary rural household")


class MonitoringType(LabelledEnum):
    """监测对象类型 — the three kinds of monitored household (三类人员)."""

    UNSTABLE_LIFTED = ("unstable_lifted", "脱贫不稳定户", "Unstable lifted household")
    MARGINAL = ("marginal", "边缘易致贫户", "Marginal household at risk of poverty")
    SUDDEN_DIFFICULTY = (
        "sudden_difficulty",
        "突发严重困难户",
        "Household in sudden severe difficulty",
    )


class MonitoringStatus(LabelledEnum):
    """监测状态 — where a household stands in the entry/exit review chain (server-owned)."""

    NOT_MONITORED = ("not_monitored", "未纳入监测", "Not monitored")
    ENTRY_REVIEW = ("entry_review", "纳入审核中", "Entry under review")
    MONITORED = ("monitored", "监测中（风险未消除）", "Monitored, risk not eliminated")
    EXIT_REVIEW = ("exit_review", "风险消除审核中", "Exit under review")
    RISK_ELIMINATED = ("risk_eliminated", "风险已消除", "Risk eliminated")


class RiskCause(LabelledEnum):
    """致贫返贫风险 — why a household is at risk."""

    ILLNESS = ("illness", "因病", "Illness")
    DISABILITY = ("disability", "因残", "Disability")
    EDUCATION = ("education", "因学", "Education costs")
    DISASTER = ("disaster", "因灾", "Natural disaster")
    ACCIDENT = ("accident", "因意外事故", "Accident")
    UNEMPLOYMENT = ("unemployment", "因失业/务工就业不稳", "Job loss or unstable work")
    BUSINESS_FAILURE = ("business_failure", "因产业失败", "Failed business or farming venture")
    LACK_OF_LABOR = ("lack_of_labor", "缺劳动力", "Lack of labour")
    HOUSING = ("housing", "住房安全问题", "Unsafe housing")
    WATER = ("water", "饮水安全问题", "Unsafe drinking water")
    OTHER = ("other", "其他", "Other")


class Relation(LabelledEnum):
    """与户主关系 — relation to the head of household."""

    HEAD = ("head", "户主", "Head of household")
    SPOUSE = ("spouse", "配偶", "Spouse")
    CHILD = ("child", "子女", "Child")
    CHILD_IN_LAW = ("child_in_law", "儿媳/女婿", "Child-in-law")
    GRANDCHILD = ("grandchild", "孙子女", "Grandchild")
    PARENT = ("parent", "父母", "Parent")
    GRANDPARENT = ("grandparent", "祖父母/外祖父母", "Grandparent")
    SIBLING = ("sibling", "兄弟姐妹", "Sibling")
    OTHER = ("other", "其他", "Other")


class Sex(LabelledEnum):
    """性别."""

    MALE = ("male", "男", "Male")
    FEMALE = ("female", "女", "Female")


class EducationLevel(LabelledEnum):
    """文化程度."""

    PRESCHOOL = ("preschool", "学龄前儿童", "Pre-school child")
    ILLITERATE = ("illiterate", "文盲或半文盲", "Illiterate or semi-literate")
    PRIMARY = ("primary", "小学", "Primary school")
    JUNIOR = ("junior", "初中", "Junior secondary")
    SENIOR = ("senior", "高中", "Senior secondary")
    VOCATIONAL = ("vocational", "中职/中专", "Vocational secondary")
    COLLEGE = ("college", "大专及以上", "College or above")


class Health(LabelledEnum):
    """健康状况 (sensitive)."""

    HEALTHY = ("healthy", "健康", "Healthy")
    CHRONIC = ("chronic", "长期慢性病", "Chronic illness")
    SERIOUS = ("serious", "患大病", "Serious illness")
    DISABLED = ("disabled", "残疾", "Disabled")


class Disability(LabelledEnum):
    """残疾等级 (sensitive)."""

    NONE = ("none", "无残疾", "No disability")
    GRADE_1 = ("grade_1", "一级残疾", "Disability, grade 1")
    GRADE_2 = ("grade_2", "二级残疾", "Disability, grade 2")
    GRADE_3 = ("grade_3", "三级残疾", "Disability, grade 3")
    GRADE_4 = ("grade_4", "四级残疾", "Disability, grade 4")


class LaborCapacity(LabelledEnum):
    """劳动技能."""

    SKILLED = ("skilled", "技能劳动力", "Skilled labour")
    ORDINARY = ("ordinary", "普通劳动力", "Ordinary labour")
    WEAK = ("weak", "弱劳动力或半劳动力", "Weak or partial labour")
    LOST = ("lost", "丧失劳动力", "Lost labour capacity")
    NONE = ("none", "无劳动力", "No labour capacity")


class Employment(LabelledEnum):
    """务工就业状况."""

    IN_COUNTY = ("in_county", "县内务工", "Working within the county")
    IN_PROVINCE = ("in_province", "县外省内务工", "Working in the province, outside the county")
    OUT_OF_PROVINCE = ("out_of_province", "省外务工", "Working outside the province")
    PUBLIC_WELFARE_JOB = ("public_welfare_job", "公益岗位", "Public-welfare job")
    SELF_EMPLOYED = ("self_employed", "自主创业/个体经营", "Self-employed")
    FARMING = ("farming", "务农", "Farming")
    STUDENT = ("student", "在校生", "Student")
    UNEMPLOYED = ("unemployed", "未就业", "Not employed")
    NOT_APPLICABLE = ("not_applicable", "不适用", "Not applicable")


# Column bounds of the register, declared once: the tables (`server/households/models.py`) are built
# from them, and every value a submission binds is checked against them before anything is written
# (`RegisterField.problem`), so a value a form or the protocol lets through always fits its column.
TEXT_LENGTH = 255  # the longest text column; a text field without its own `max_length` gets it
NAME_LENGTH = 64
HOUSEHOLD_NO_LENGTH = 64
REGION_CODE_LENGTH = 12
SENSITIVE_TEXT_LENGTH = 32  # the masked form is as long as the value (server/sensitive.py)
MONEY_LIMIT = 999_999_999_999  # yuan; whole-yuan digits of the money columns
MONEY_SCALE = 2  # digits after the point
MONEY_PRECISION = len(str(MONEY_LIMIT)) + MONEY_SCALE

_UUID_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)

FieldKind = Literal[
    "text", "integer", "decimal", "boolean", "date", "select_one", "select_multiple"
]
EntityType = Literal["household", "member"]


_CODES: dict[type[LabelledEnum], frozenset[str]] = {}


def _codes(choices: type[LabelledEnum]) -> frozenset[str]:
    codes = _CODES.get(choices)
    if codes is None:
        codes = _CODES[choices] = frozenset(choices.codes())
    return codes


@dataclass(frozen=True)
class RegisterField:
    """One canonical field of a register entity.

    `server_owned` fields are decided by the review workflow and may not be written by a
    submission; `sensitive` fields are stored protected and shown masked unless revealed.
    Column bounds: `max_length` of a text (`is_uuid`: a text holding an entity id), `limit` of a
    decimal (its absolute value at most that); choices are the enumeration's codes.
    """

    name: str
    kind: FieldKind
    zh: str
    en: str
    choices: type[LabelledEnum] | None = None
    server_owned: bool = False
    sensitive: bool = False
    max_length: int | None = None
    limit: int | None = None
    is_uuid: bool = False

    def label(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en

    @cached_property
    def fits(self) -> Callable[[object], bool]:
        """A quick test that `value` fits the column (`problem(value) is None`), for the values
        nearly all submissions hold; `problem` says what is wrong with the others."""
        kind, max_length = self.kind, self.max_length
        if kind == "text" and not self.is_uuid and max_length is not None:
            return lambda value: value is None or (type(value) is str and len(value) <= max_length)
        if kind == "boolean":
            return lambda value: value is None or type(value) is bool
        if kind == "select_one" and self.choices is not None:
            codes = _codes(self.choices)
            return lambda value: value is None or (type(value) is str and value in codes)
        return lambda value: self.problem(value) is None

    def problem(self, value: object) -> tuple[IssueCode, str] | None:
        """Why `value` (as binding writes it: see `forms.bindings.to_json_value`) does not fit
        this field's column, or None when it fits. Pure and cheap: run for every bound value."""
        if value is None:
            return None
        kind = self.kind
        if kind == "text":
            if not isinstance(value, str):
                return IssueCode.INVALID_TYPE, "expected text"
            if self.is_uuid and not _UUID_RE.fullmatch(value):
                return IssueCode.INVALID_ID, "must be an entity id (a UUID)"
            if self.max_length is not None and len(value) > self.max_length:
                return IssueCode.TOO_LONG, f"at most {self.max_length} characters in the register"
        elif kind == "decimal" or kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return IssueCode.INVALID_TYPE, "expected a number"
            if self.limit is not None and not -self.limit <= value <= self.limit:
                return IssueCode.ABOVE_MAX, f"must be between -{self.limit} and {self.limit}"
        elif kind == "select_one":
            if not isinstance(value, str):
                return IssueCode.INVALID_TYPE, "expected one choice code"
            if self.choices is not None and value not in _codes(self.choices):
                return IssueCode.INVALID_CHOICE, f"not a code of the register's {self.name} list"
        elif kind == "select_multiple":
            if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
                return IssueCode.INVALID_TYPE, "expected a list of choice codes"
            if self.choices is not None and not _codes(self.choices).issuperset(value):
                return IssueCode.INVALID_CHOICE, f"not codes of the register's {self.name} list"
        elif kind == "boolean" and not isinstance(value, bool):
            return IssueCode.INVALID_TYPE, "expected true or false"
        return None


@dataclass(frozen=True)
class EntitySpec:
    """A register entity type, its parent entity type (members belong to a household) and fields."""

    name: EntityType
    zh: str
    en: str
    fields: dict[str, RegisterField]
    parent: EntityType | None = None


def _fields(*fields: RegisterField) -> dict[str, RegisterField]:
    return {f.name: f for f in fields}


HOUSEHOLD = EntitySpec(
    name="household",
    zh="农户",
    en="Household",
    fields=_fields(
        RegisterField(
            "household_no", "text", "户编号", "Household number", max_length=HOUSEHOLD_NO_LENGTH
        ),
        RegisterField(
            "village_code", "text", "所属村", "Village code", max_length=REGION_CODE_LENGTH
        ),
        RegisterField("address", "text", "住址", "Address", max_length=TEXT_LENGTH),
        RegisterField(
            "head_member_id", "text", "户主", "Head of household (member id)", is_uuid=True
        ),
        RegisterField("category", "select_one", "户类别", "Category", choices=Category),
        RegisterField(
            "monitoring_type",
            "select_one",
            "监测对象类型",
            "Monitoring type",
            choices=MonitoringType,
            server_owned=True,
        ),
        RegisterField(
            "monitoring_status",
            "select_one",
            "监测状态",
            "Monitoring status",
            choices=MonitoringStatus,
            server_owned=True,
        ),
        RegisterField(
            "risk_causes",
            "select_multiple",
            "风险类型",
            "Risk causes",
            choices=RiskCause,
            server_owned=True,
        ),
        RegisterField(
            "annual_income",
            "decimal",
            "家庭年收入（元）",
            "Annual household income (yuan)",
            limit=MONEY_LIMIT,
        ),
        RegisterField(
            "per_capita_income",
            "decimal",
            "人均纯收入（元）",
            "Per-capita net income (yuan)",
            limit=MONEY_LIMIT,
        ),
        RegisterField(
            "rigid_expenditure",
            "decimal",
            "刚性支出（元）",
            "Rigid expenditure (yuan)",
            limit=MONEY_LIMIT,
        ),
        RegisterField("food_clothing_ok", "boolean", "不愁吃不愁穿", "Food and clothing secure"),
        RegisterField("education_ok", "boolean", "义务教育有保障", "Compulsory education secure"),
        RegisterField("medical_ok", "boolean", "基本医疗有保障", "Basic medical care secure"),
        RegisterField("housing_ok", "boolean", "住房安全有保障", "Housing safe"),
        RegisterField("water_ok", "boolean", "饮水安全有保障", "Drinking water safe"),
        RegisterField("relocated", "boolean", "易地扶贫搬迁户", "Relocated household"),
        RegisterField(
            "receives_minimum_allowance", "boolean", "享受低保", "Receives minimum living allowance"
        ),
        RegisterField(
            "receives_extreme_poverty_support", "boolean", "特困供养", "Extreme-poverty support"
        ),
        RegisterField("helper", "text", "帮扶责任人", "Responsible helper", max_length=NAME_LENGTH),
        RegisterField("deleted", "boolean", "已删除", "Deleted"),
    ),
)

MEMBER = EntitySpec(
    name="member",
    zh="家庭成员",
    en="Household member",
    parent="household",
    fields=_fields(
        RegisterField("household_id", "text", "所属农户", "Household", is_uuid=True),
        RegisterField("name", "text", "姓名", "Name", max_length=NAME_LENGTH),
        RegisterField(
            "id_number",
            "text",
            "身份证号",
            "Identity number",
            sensitive=True,
            max_length=SENSITIVE_TEXT_LENGTH,
        ),
        RegisterField("relation", "select_one", "与户主关系", "Relation to head", choices=Relation),
        RegisterField("sex", "select_one", "性别", "Sex", choices=Sex),
        RegisterField("birth_date", "date", "出生日期", "Birth date"),
        RegisterField("in_school", "boolean", "在校生", "In school"),
        RegisterField(
            "education_level", "select_one", "文化程度", "Education level", choices=EducationLevel
        ),
        RegisterField("health", "select_one", "健康状况", "Health", choices=Health, sensitive=True),
        RegisterField(
            "disability", "select_one", "残疾情况", "Disability", choices=Disability, sensitive=True
        ),
        RegisterField(
            "labor_capacity", "select_one", "劳动技能", "Labour capacity", choices=LaborCapacity
        ),
        RegisterField("insured", "boolean", "参加基本医疗保险", "Has basic medical insurance"),
        RegisterField("employment", "select_one", "务工状况", "Employment", choices=Employment),
        RegisterField(
            "phone", "text", "联系电话", "Phone", sensitive=True, max_length=SENSITIVE_TEXT_LENGTH
        ),
        RegisterField("deleted", "boolean", "已删除", "Deleted"),
    ),
)

ENTITIES: dict[str, EntitySpec] = {HOUSEHOLD.name: HOUSEHOLD, MEMBER.name: MEMBER}


def find_register_field(entity: str, field: str) -> RegisterField | None:
    """The canonical field `field` of entity type `entity`, or None if there is no such field."""
    spec = ENTITIES.get(entity)
    return spec.fields.get(field) if spec else None


def text_length(entity: str, field: str) -> int:
    """The column length of the text field `field` of `entity` (for the table definitions)."""
    length = ENTITIES[entity].fields[field].max_length
    if length is None:
        raise LookupError(f"{entity}.{field} declares no max_length")
    return length
