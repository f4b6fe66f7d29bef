"""The generator of the demo county: its region tree and ~600 households with ~2,400 members,
as canonical register fields ready for `load_households`.

Deterministic (one seeded `random.Random`, ages counted at a fixed reference date) and pure: it
never touches a database. Everyone in it is invented; identity numbers start with 99.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any, TypeVar

from forms.register import (
    Category,
    Disability,
    EducationLevel,
    Employment,
    Health,
    LaborCapacity,
    MonitoringStatus,
    MonitoringType,
    Relation,
    RiskCause,
    Sex,
)
from server.demo import names
from server.demo.identity import identity_number
from server.households.loading import NewHousehold

SEED = 2021
# Ages, school years and incomes refer to this day, so the county is the same whenever it loads.
REFERENCE_DATE = date(2025, 7, 1)

PROVINCE_CODE = "990000000000"
CITY_CODE = "990100000000"
COUNTY_CODE = "990102000000"
ID_REGION = COUNTY_CODE[:6]
TOWNSHIP_CODES: tuple[str, ...] = tuple(
    f"{COUNTY_CODE[:6]}{t:03d}000" for t in range(1, len(names.TOWNSHIPS) + 1)
)
VILLAGE_CODES: dict[str, tuple[str, ...]] = {
    township: tuple(f"{township[:9]}{v:03d}" for v in range(1, len(villages) + 1))
    for township, (_, villages) in zip(TOWNSHIP_CODES, names.TOWNSHIPS, strict=True)
}

HOUSEHOLDS_PER_VILLAGE = (42, 58)
# Household size 1–7, mean ≈ 4.
SIZE_WEIGHTS = {1: 4, 2: 12, 3: 20, 4: 25, 5: 20, 6: 12, 7: 7}
CATEGORY_SHARES = {Category.LIFTED: 0.45, Category.MONITORED: 0.10, Category.ORDINARY: 0.45}
TYPE_SHARES = {
    MonitoringType.UNSTABLE_LIFTED: 0.35,
    MonitoringType.MARGINAL: 0.45,
    MonitoringType.SUDDEN_DIFFICULTY: 0.20,
}
STATUS_SHARES = {
    MonitoringStatus.ENTRY_REVIEW: 0.10,
    MonitoringStatus.MONITORED: 0.50,
    MonitoringStatus.EXIT_REVIEW: 0.10,
    MonitoringStatus.RISK_ELIMINATED: 0.30,
}
# Risks no member fact explains: drawn for monitored households besides the ones that follow.
CIRCUMSTANTIAL_RISKS = (
    RiskCause.DISASTER,
    RiskCause.ACCIDENT,
    RiskCause.UNEMPLOYMENT,
    RiskCause.BUSINESS_FAILURE,
    RiskCause.OTHER,
)
SUDDEN_RISKS = (RiskCause.ILLNESS, RiskCause.ACCIDENT, RiskCause.DISASTER)

T = TypeVar("T")


@dataclass(frozen=True)
class DemoCounty:
    regions: list[tuple[str, str]]  # (code, name), parents before children
    households: list[NewHousehold]

    @property
    def member_count(self) -> int:
        return sum(len(h.members) for h in self.households)


@dataclass
class _Person:
    relation: Relation
    sex: Sex
    age: int
    surname: str
    has_spouse_here: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


def demo_regions() -> list[tuple[str, str]]:
    """Province, city, county, 3 townships and their 12 villages, parents first."""
    regions = [
        (PROVINCE_CODE, names.PROVINCE_NAME),
        (CITY_CODE, names.CITY_NAME),
        (COUNTY_CODE, names.COUNTY_NAME),
    ]
    for township, (township_name, _) in zip(TOWNSHIP_CODES, names.TOWNSHIPS, strict=True):
        regions.append((township, township_name))
    for township, (_, village_names) in zip(TOWNSHIP_CODES, names.TOWNSHIPS, strict=True):
        regions.extend(zip(VILLAGE_CODES[township], village_names, strict=True))
    return regions


def generate_county(seed: int = SEED) -> DemoCounty:
    """The whole demo county; the same seed always gives the same county, ids included."""
    generator = _Generator(random.Random(seed))
    return DemoCounty(regions=demo_regions(), households=generator.households())


def _quota(rng: random.Random, shares: dict[T, float], total: int) -> list[T]:
    """`total` values in the given shares, each at least once, in random order."""
    counts = {value: max(1, round(share * total)) for value, share in shares.items()}
    largest = max(counts, key=lambda v: counts[v])
    counts[largest] += total - sum(counts.values())
    values = [value for value, count in counts.items() for _ in range(count)]
    rng.shuffle(values)
    return values


class _Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used_id_numbers: set[str] = set()
        self.used_phones: set[str] = set()

    # -- households ---------------------------------------------------------------------------

    def households(self) -> list[NewHousehold]:
        places = []
        for township, (township_name, village_names) in zip(
            TOWNSHIP_CODES, names.TOWNSHIPS, strict=True
        ):
            helpers = [self.name(self.surname(), self.sex(), 45) for _ in range(8)]
            for village, village_name in zip(VILLAGE_CODES[township], village_names, strict=True):
                count = self.rng.randint(*HOUSEHOLDS_PER_VILLAGE)
                for number in range(1, count + 1):
                    places.append((village, f"{township_name}{village_name}", number, helpers))
        categories = _quota(self.rng, CATEGORY_SHARES, len(places))
        monitored = categories.count(Category.MONITORED)
        types = iter(_quota(self.rng, TYPE_SHARES, monitored))
        statuses = iter(_quota(self.rng, STATUS_SHARES, monitored))
        result = []
        for (village, place, number, helpers), category in zip(places, categories, strict=True):
            watch = (next(types), next(statuses)) if category is Category.MONITORED else None
            result.append(self.household(village, place, number, category, watch, helpers))
        return result

    def household(
        self,
        village: str,
        place: str,
        number: int,
        category: Category,
        watch: tuple[MonitoringType, MonitoringStatus] | None,
        helpers: Sequence[str],
    ) -> NewHousehold:
        rng = self.rng
        is_monitored = watch is not None
        people = self.family(self.pick_weighted(SIZE_WEIGHTS))
        for person in people:
            person.fields = self.member_fields(person, is_monitored)
        members = [(self.uuid(), _canonical(p.fields)) for p in people]
        size = len(people)
        fields: dict[str, Any] = {
            "household_no": f"{village}{number:04d}",
            "village_code": village,
            "address": f"{names.COUNTY_NAME}{place}{rng.choice(names.WORK_GROUPS)}{number}号",
            "head_member_id": str(members[0][0]),
            "category": category.value,
            "monitoring_status": MonitoringStatus.NOT_MONITORED.value,
            "food_clothing_ok": rng.random() < (0.97 if is_monitored else 0.997),
            "education_ok": all(
                p.fields["in_school"]
                for p in people
                if 6 <= p.age <= 15
                and p.fields["disability"] not in (Disability.GRADE_1, Disability.GRADE_2)
            ),
            "medical_ok": all(p.fields["insured"] for p in people),
            "housing_ok": rng.random() < (0.88 if is_monitored else 0.985),
            "water_ok": rng.random() < (0.92 if is_monitored else 0.99),
            "relocated": category is not Category.ORDINARY and rng.random() < 0.1,
            "receives_minimum_allowance": rng.random()
            < {
                Category.MONITORED: 0.35,
                Category.LIFTED: 0.1,
                Category.ORDINARY: 0.01,
            }[category],
            "receives_extreme_poverty_support": size == 1
            and people[0].age >= 60
            and rng.random() < 0.4,
        }
        if category is not Category.ORDINARY:
            fields["helper"] = rng.choice(helpers)
        per_capita = self.per_capita_income(category, watch)
        fields["per_capita_income"] = per_capita
        fields["annual_income"] = per_capita * size
        fields["rigid_expenditure"] = self.rigid_expenditure(people)
        if watch is not None:
            monitoring_type, status = watch
            fields["monitoring_type"] = monitoring_type.value
            fields["monitoring_status"] = status.value
            fields["risk_causes"] = self.risk_causes(monitoring_type, people, fields)
        return NewHousehold(id=self.uuid(), fields=fields, members=members)

    def per_capita_income(
        self, category: Category, watch: tuple[MonitoringType, MonitoringStatus] | None
    ) -> int:
        rng = self.rng
        if watch is not None:
            # Near or below the ~6,000–7,000 yuan line while at risk; above it once helped out.
            at_risk = watch[1] in (MonitoringStatus.ENTRY_REVIEW, MonitoringStatus.MONITORED)
            income = rng.uniform(3000, 7300) if at_risk else rng.uniform(6800, 11000)
        elif category is Category.LIFTED:
            income = rng.triangular(6500, 22000, 10500)
        else:
            income = rng.triangular(7000, 30000, 14000)
        return round(income / 10) * 10

    def rigid_expenditure(self, people: Sequence[_Person]) -> int:
        rng = self.rng
        amount = rng.uniform(0, 3000)
        if any(p.fields["health"] is Health.SERIOUS for p in people):
            amount += rng.uniform(15000, 60000)
        if any(
            p.fields["education_level"] is EducationLevel.COLLEGE and p.fields["in_school"]
            for p in people
        ):
            amount += rng.uniform(6000, 15000)
        return round(amount / 100) * 100

    def risk_causes(
        self, monitoring_type: MonitoringType, people: Sequence[_Person], fields: dict[str, Any]
    ) -> list[str]:
        rng = self.rng
        causes: set[RiskCause] = set()
        if any(p.fields["health"] in (Health.CHRONIC, Health.SERIOUS) for p in people):
            causes.add(RiskCause.ILLNESS)
        if any(p.fields["disability"] is not Disability.NONE for p in people):
            causes.add(RiskCause.DISABILITY)
        if fields["rigid_expenditure"] > 6000 and any(p.fields["in_school"] for p in people):
            causes.add(RiskCause.EDUCATION)
        if not fields["housing_ok"]:
            causes.add(RiskCause.HOUSING)
        if not fields["water_ok"]:
            causes.add(RiskCause.WATER)
        if not any(
            p.fields["labor_capacity"] in (LaborCapacity.SKILLED, LaborCapacity.ORDINARY)
            for p in people
        ):
            causes.add(RiskCause.LACK_OF_LABOR)
        if monitoring_type is MonitoringType.SUDDEN_DIFFICULTY:
            causes.add(rng.choice(SUDDEN_RISKS))
        elif not causes or rng.random() < 0.4:
            causes.add(rng.choice(CIRCUMSTANTIAL_RISKS))
        return sorted(cause.value for cause in causes)

    # -- family composition -------------------------------------------------------------------

    def family(self, size: int) -> list[_Person]:
        rng = self.rng
        head_age = rng.randint(62, 88) if size == 1 else rng.randint(26, 80)
        head_sex = Sex.MALE if rng.random() < 0.85 else Sex.FEMALE
        head = _Person(Relation.HEAD, head_sex, head_age, self.surname())
        people = [head]
        if size >= 2 and rng.random() < (0.92 if size > 2 else 0.75):
            spouse_age = max(
                20, head_age + rng.randint(-3, 3) + (2 if head_sex is Sex.FEMALE else -2)
            )
            people.append(_Person(Relation.SPOUSE, _other(head_sex), spouse_age, self.surname()))
            head.has_spouse_here = True
        family_name = head.surname
        if head_sex is Sex.FEMALE and head.has_spouse_here:
            family_name = people[1].surname
        if head_age < 45:
            wanted = [
                Relation.CHILD,
                Relation.CHILD,
                Relation.PARENT,
                Relation.PARENT,
                Relation.CHILD,
                Relation.SIBLING,
            ]
        elif head_age < 62:
            wanted = [
                Relation.CHILD,
                Relation.CHILD,
                Relation.CHILD_IN_LAW,
                Relation.GRANDCHILD,
                Relation.GRANDCHILD,
                Relation.PARENT,
                Relation.GRANDCHILD,
            ]
        else:
            wanted = [
                Relation.CHILD,
                Relation.CHILD_IN_LAW,
                Relation.GRANDCHILD,
                Relation.GRANDCHILD,
                Relation.GRANDCHILD,
                Relation.CHILD,
                Relation.GRANDCHILD,
            ]
        for relation in wanted:
            if len(people) >= size:
                break
            person = self.relative(relation, people, family_name)
            if person is not None:
                people.append(person)
        while len(people) < size:  # an unusual household: fill it with more children or others
            person = self.relative(Relation.CHILD, people, family_name)
            people.append(
                person or _Person(Relation.OTHER, self.sex(), rng.randint(5, 70), self.surname())
            )
        return people

    def relative(
        self, relation: Relation, people: list[_Person], family_name: str
    ) -> _Person | None:
        rng = self.rng
        head = people[0]
        children = [p for p in people if p.relation is Relation.CHILD]
        if relation is Relation.CHILD:
            if head.age < 20:
                return None
            age = rng.randint(max(0, head.age - 40), head.age - 20)
            return _Person(Relation.CHILD, self.sex(), age, family_name)
        if relation is Relation.PARENT:
            age = head.age + rng.randint(20, 32)
            parents = [p for p in people if p.relation is Relation.PARENT]
            if age > 95 or len(parents) >= 2:
                return None
            if parents:
                return _Person(Relation.PARENT, _other(parents[0].sex), age, self.surname())
            sex = self.sex()
            return _Person(
                Relation.PARENT, sex, age, head.surname if sex is Sex.MALE else self.surname()
            )
        if relation is Relation.CHILD_IN_LAW:
            single = [c for c in children if c.age >= 21 and not c.has_spouse_here]
            if not single:
                return None
            partner = single[0]
            partner.has_spouse_here = True
            age = max(20, partner.age + rng.randint(-3, 3))
            return _Person(Relation.CHILD_IN_LAW, _other(partner.sex), age, self.surname())
        if relation is Relation.GRANDCHILD:
            adults = [c for c in children if c.age >= 21]
            if not adults:
                return None
            parent_age = max(c.age for c in adults)
            age = rng.randint(0, min(parent_age - 20, 18))
            return _Person(Relation.GRANDCHILD, self.sex(), age, family_name)
        if relation is Relation.SIBLING:
            age = max(16, head.age + rng.randint(-8, 8))
            return _Person(Relation.SIBLING, self.sex(), age, head.surname)
        return None

    # -- one member ---------------------------------------------------------------------------

    def member_fields(self, person: _Person, is_monitored: bool) -> dict[str, Any]:
        rng = self.rng
        birth = self.birth_date(person.age)
        in_school, education = self.schooling(person.age)
        health, disability = self.health(person.age, is_monitored)
        if health is Health.DISABLED and disability in (Disability.GRADE_1, Disability.GRADE_2):
            in_school = in_school and rng.random() < 0.5
        labor = self.labor_capacity(person.age, in_school, health, disability)
        fields: dict[str, Any] = {
            "name": self.name(person.surname, person.sex, person.age),
            "id_number": self.identity_number(birth, person.sex),
            "relation": person.relation.value,
            "sex": person.sex.value,
            "birth_date": birth.isoformat(),
            "in_school": in_school,
            "education_level": education,
            "health": health,
            "disability": disability,
            "labor_capacity": labor,
            "insured": rng.random() < (0.95 if is_monitored else 0.99),
            "employment": self.employment(person.age, in_school, labor, is_monitored),
        }
        if person.age >= 18 and rng.random() < (0.4 if person.age >= 75 else 0.88):
            fields["phone"] = self.phone()
        return fields

    def birth_date(self, age: int) -> date:
        ref = REFERENCE_DATE
        latest = ref.replace(year=ref.year - age).toordinal()
        earliest = ref.replace(year=ref.year - age - 1).toordinal() + 1
        return date.fromordinal(self.rng.randint(earliest, latest))

    def schooling(self, age: int) -> tuple[bool, EducationLevel]:
        rng = self.rng
        if age < 6:
            return False, EducationLevel.PRESCHOOL
        if age <= 15:
            level = EducationLevel.PRIMARY if age <= 11 else EducationLevel.JUNIOR
            return rng.random() < 0.985, level
        if age <= 18:
            if rng.random() < 0.75:
                return True, rng.choice((EducationLevel.SENIOR, EducationLevel.VOCATIONAL))
            return False, EducationLevel.JUNIOR
        if age <= 22 and rng.random() < 0.3:
            return True, EducationLevel.COLLEGE
        levels = list(EducationLevel)[1:]  # everything but pre-school
        if age >= 60:
            weights = [35, 45, 15, 4, 1, 0]
        elif age >= 40:
            weights = [3, 30, 50, 10, 5, 2]
        else:
            weights = [0, 5, 45, 20, 15, 15]
        return False, rng.choices(levels, weights)[0]

    def health(self, age: int, is_monitored: bool) -> tuple[Health, Disability]:
        rng = self.rng
        boost = 0.05 if is_monitored else 0.0
        draw = rng.random()
        disabled = 0.025 + boost
        serious = disabled + 0.01 + boost
        chronic = serious + (0.25 if age >= 60 else 0.10 if age >= 40 else 0.02) + boost
        if draw < disabled:
            grades = [
                Disability.GRADE_1,
                Disability.GRADE_2,
                Disability.GRADE_3,
                Disability.GRADE_4,
            ]
            return Health.DISABLED, rng.choices(grades, [10, 25, 35, 30])[0]
        if draw < serious:
            return Health.SERIOUS, Disability.NONE
        if draw < chronic:
            return Health.CHRONIC, Disability.NONE
        return Health.HEALTHY, Disability.NONE

    def labor_capacity(
        self, age: int, in_school: bool, health: Health, disability: Disability
    ) -> LaborCapacity:
        rng = self.rng
        if age < 16 or in_school:
            return LaborCapacity.NONE
        if health is Health.SERIOUS or disability in (Disability.GRADE_1, Disability.GRADE_2):
            return LaborCapacity.LOST
        if age >= 80:
            return LaborCapacity.LOST
        if age >= 70:
            return LaborCapacity.WEAK if rng.random() < 0.7 else LaborCapacity.LOST
        if health is not Health.HEALTHY or age >= 60:
            return LaborCapacity.WEAK if rng.random() < 0.7 else LaborCapacity.ORDINARY
        return LaborCapacity.SKILLED if rng.random() < 0.3 else LaborCapacity.ORDINARY

    def employment(
        self, age: int, in_school: bool, labor: LaborCapacity, is_monitored: bool
    ) -> Employment:
        if in_school:
            return Employment.STUDENT
        if age < 16 or labor in (LaborCapacity.NONE, LaborCapacity.LOST):
            return Employment.NOT_APPLICABLE
        if age >= 60:
            return self.pick_weighted(
                {
                    Employment.FARMING: 60,
                    Employment.PUBLIC_WELFARE_JOB: 12,
                    Employment.NOT_APPLICABLE: 28,
                }
            )
        return self.pick_weighted(
            {
                Employment.OUT_OF_PROVINCE: 28,
                Employment.IN_PROVINCE: 18,
                Employment.IN_COUNTY: 16,
                Employment.FARMING: 20,
                Employment.SELF_EMPLOYED: 6,
                Employment.PUBLIC_WELFARE_JOB: 12 if is_monitored else 3,
                Employment.UNEMPLOYED: 14 if is_monitored else 6,
            }
        )

    # -- names and numbers --------------------------------------------------------------------

    def surname(self) -> str:
        return self.rng.choices(names.SURNAMES, names.SURNAME_WEIGHTS)[0]

    def sex(self) -> Sex:
        return Sex.MALE if self.rng.random() < 0.51 else Sex.FEMALE

    def name(self, surname: str, sex: Sex, age: int) -> str:
        older = age >= 45
        if sex is Sex.MALE:
            pool = names.MALE_CHARS_OLDER if older else names.MALE_CHARS_YOUNGER
        else:
            pool = names.FEMALE_CHARS_OLDER if older else names.FEMALE_CHARS_YOUNGER
        return surname + "".join(self.rng.sample(pool, 2))

    def identity_number(self, birth: date, sex: Sex) -> str:
        while True:
            sequence = self.rng.randrange(500) * 2 + (1 if sex is Sex.MALE else 0)
            number = identity_number(ID_REGION, birth, sequence)
            if number not in self.used_id_numbers:
                self.used_id_numbers.add(number)
                return number

    def phone(self) -> str:
        while True:
            number = self.rng.choice(names.PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def pick_weighted(self, weights: dict[T, int]) -> T:
        return self.rng.choices(list(weights), list(weights.values()))[0]


def _canonical(fields: dict[str, Any]) -> dict[str, Any]:
    """Field values as the protocol sends them: enumerations by their code."""
    return {name: v.value if isinstance(v, Enum) else v for name, v in fields.items()}


def _other(sex: Sex) -> Sex:
    return Sex.FEMALE if sex is Sex.MALE else Sex.MALE
