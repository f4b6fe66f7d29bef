"""The review chain as pure rules: the stages of each direction in order, what each decision does,
and THE region-level rule saying which role, granted which regions, may take which stage of a case
in a given village. Everything that takes a step (API, sync intake, CLI) asks these functions.

Pure: plain values in, plain values out; no database, no Flask, no clock.

Who may take which stage (a grant covers its region and everything below it; admins everywhere):

| stage           | roles                 | a grant covering the village, at level …  |
|-----------------|-----------------------|-------------------------------------------|
| verification    | collector, supervisor | any (the visit's collector's grant, too)  |
| village_review  | supervisor            | any (village or above)                    |
| township_review | supervisor            | township or above                         |
| county_review   | supervisor            | county or above                           |

Collectors never take a review step: they only make the verification visit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from server.monitoring.terms import CaseOutcome, CaseStage, StepDecision
from server.regions.codes import PREFIX_LENGTH, RegionLevel, covers, is_valid_code, level_of

ADMIN, SUPERVISOR, COLLECTOR = "admin", "supervisor", "collector"

# The four stages a case passes, in order; both directions use the same chain.
STAGES: tuple[CaseStage, ...] = (
    CaseStage.VERIFICATION,
    CaseStage.VILLAGE_REVIEW,
    CaseStage.TOWNSHIP_REVIEW,
    CaseStage.COUNTY_REVIEW,
)
REVIEW_STAGES = STAGES[1:]


@dataclass(frozen=True)
class StageRule:
    roles: frozenset[str]
    # The highest level number allowed for the grant (province 0 … village 4): a township step
    # needs a grant at township level or above (level index ≤ 3).
    lowest_grant_level: RegionLevel


RULES: dict[CaseStage, StageRule] = {
    CaseStage.VERIFICATION: StageRule(frozenset({COLLECTOR, SUPERVISOR}), RegionLevel.VILLAGE),
    CaseStage.VILLAGE_REVIEW: StageRule(frozenset({SUPERVISOR}), RegionLevel.VILLAGE),
    CaseStage.TOWNSHIP_REVIEW: StageRule(frozenset({SUPERVISOR}), RegionLevel.TOWNSHIP),
    CaseStage.COUNTY_REVIEW: StageRule(frozenset({SUPERVISOR}), RegionLevel.COUNTY),
}
_LEVEL_ORDER = list(PREFIX_LENGTH)


class Refusal(str, Enum):  # noqa: UP042 - the value is what callers compare and report
    """Why a caller may not take a stage."""

    ROLE = "role"  # this role never takes this stage
    REGION = "region"  # no grant covers the village
    LEVEL = "level"  # a grant covers the village, but none at the stage's level or above


def may_take(
    role: str, grants: Sequence[str], stage: CaseStage, village_code: str
) -> Refusal | None:
    """None when a caller with `role` and region `grants` may take `stage` of a case in
    `village_code`; otherwise why not. `closed` is taken by nobody (ROLE)."""
    if role == ADMIN:
        return None
    rule = RULES.get(stage)
    if rule is None or role not in rule.roles:
        return Refusal.ROLE
    covering = [g for g in grants if is_valid_code(g) and covers(g, village_code)]
    if not covering:
        return Refusal.REGION
    lowest = _LEVEL_ORDER.index(rule.lowest_grant_level)
    if not any(_LEVEL_ORDER.index(level_of(g)) <= lowest for g in covering):
        return Refusal.LEVEL
    return None


def stages_taken_by(role: str, grants: Sequence[str]) -> tuple[CaseStage, ...]:
    """The stages a caller with `role` and region `grants` may take somewhere in their regions,
    in chain order (admins: every stage). The last one is the caller's own queue: a township
    grant's township review, a county grant's county review."""
    if role == ADMIN:
        return STAGES
    levels = [_LEVEL_ORDER.index(level_of(g)) for g in grants if is_valid_code(g)]
    return tuple(
        stage
        for stage in STAGES
        if role in RULES[stage].roles
        and any(level <= _LEVEL_ORDER.index(RULES[stage].lowest_grant_level) for level in levels)
    )


@dataclass(frozen=True)
class Transition:
    """Where a decision leaves a case."""

    stage: CaseStage
    outcome: CaseOutcome

    @property
    def is_closing(self) -> bool:
        return self.stage is CaseStage.CLOSED


class TransitionError(ValueError):
    """A decision that cannot be taken at the case's stage (e.g. returning from verification)."""


def next_after(stage: CaseStage, decision: StepDecision) -> Transition:
    """Where `decision` at `stage` leaves the case: approve moves to the next stage (the county's
    approval closes the case approved), return moves back one stage, reject closes it rejected.

    TransitionError for a closed case and for a return from verification (nothing before it)."""
    if stage not in STAGES:
        raise TransitionError(f"a {stage.value} case takes no step")
    index = STAGES.index(stage)
    if decision is StepDecision.APPROVE:
        if index == len(STAGES) - 1:
            return Transition(CaseStage.CLOSED, CaseOutcome.APPROVED)
        return Transition(STAGES[index + 1], CaseOutcome.OPEN)
    if decision is StepDecision.RETURN:
        if index == 0:
            raise TransitionError("verification is the first step: there is nothing to return to")
        return Transition(STAGES[index - 1], CaseOutcome.OPEN)
    return Transition(CaseStage.CLOSED, CaseOutcome.REJECTED)


def decisions_at(stage: CaseStage) -> tuple[StepDecision, ...]:
    """The decisions a step at `stage` may take."""
    if stage not in STAGES:
        return ()
    if stage is CaseStage.VERIFICATION:
        return (StepDecision.APPROVE, StepDecision.REJECT)
    return (StepDecision.APPROVE, StepDecision.RETURN, StepDecision.REJECT)
