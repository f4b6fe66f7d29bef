"""The review chain's pure rules: the stage order, what each decision does, and the one
region-level rule of who may take which stage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.monitoring import chain
from server.monitoring.terms import CaseOutcome, CaseStage, StepDecision
from tests.conftest import CITY, COUNTY, PROVINCE, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1

V, R, A = CaseStage.VERIFICATION, CaseStage.VILLAGE_REVIEW, StepDecision.APPROVE


def test_approvals_walk_the_four_stages_in_order_and_the_county_closes_approved():
    stage, seen = CaseStage.VERIFICATION, []
    while stage is not CaseStage.CLOSED:
        seen.append(stage)
        transition = chain.next_after(stage, A)
        stage = transition.stage
    assert seen == list(chain.STAGES)
    assert transition.outcome is CaseOutcome.APPROVED and transition.is_closing


@pytest.mark.parametrize("stage", chain.STAGES)
def test_reject_closes_rejected_at_every_stage(stage):
    transition = chain.next_after(stage, StepDecision.REJECT)
    assert (transition.stage, transition.outcome) == (CaseStage.CLOSED, CaseOutcome.REJECTED)


@pytest.mark.parametrize("index", [1, 2, 3])
def test_return_goes_back_exactly_one_stage_and_stays_open(index):
    transition = chain.next_after(chain.STAGES[index], StepDecision.RETURN)
    assert transition.stage is chain.STAGES[index - 1]
    assert transition.outcome is CaseOutcome.OPEN


def test_nothing_returns_from_verification_and_a_closed_case_takes_no_step():
    with pytest.raises(chain.TransitionError):
        chain.next_after(CaseStage.VERIFICATION, StepDecision.RETURN)
    with pytest.raises(chain.TransitionError):
        chain.next_after(CaseStage.CLOSED, A)
    assert StepDecision.RETURN not in chain.decisions_at(CaseStage.VERIFICATION)
    assert chain.decisions_at(CaseStage.CLOSED) == ()


@pytest.mark.parametrize(
    ("role", "grants", "stage", "expected"),
    [
        ("collector", [VILLAGE_A1], V, None),
        ("collector", [VILLAGE_A1], R, chain.Refusal.ROLE),  # collectors never review
        ("collector", [COUNTY], CaseStage.COUNTY_REVIEW, chain.Refusal.ROLE),
        ("supervisor", [VILLAGE_A1], R, None),
        ("supervisor", [VILLAGE_A1], CaseStage.TOWNSHIP_REVIEW, chain.Refusal.LEVEL),
        ("supervisor", [TOWNSHIP_A], CaseStage.TOWNSHIP_REVIEW, None),
        ("supervisor", [TOWNSHIP_A], CaseStage.COUNTY_REVIEW, chain.Refusal.LEVEL),
        ("supervisor", [TOWNSHIP_B], R, chain.Refusal.REGION),
        ("supervisor", [TOWNSHIP_B, VILLAGE_A1], R, None),
        ("supervisor", [TOWNSHIP_B, VILLAGE_A1], CaseStage.TOWNSHIP_REVIEW, chain.Refusal.LEVEL),
        ("supervisor", [COUNTY], CaseStage.COUNTY_REVIEW, None),
        ("supervisor", [CITY], CaseStage.COUNTY_REVIEW, None),
        ("supervisor", [PROVINCE], CaseStage.TOWNSHIP_REVIEW, None),
        ("supervisor", [], R, chain.Refusal.REGION),
        ("admin", [], CaseStage.COUNTY_REVIEW, None),
        ("supervisor", [COUNTY], CaseStage.CLOSED, chain.Refusal.ROLE),
    ],
)
def test_who_may_take_which_stage(role, grants, stage, expected):
    assert chain.may_take(role, grants, stage, VILLAGE_A1) is expected


_GRANTS = [PROVINCE, CITY, COUNTY, TOWNSHIP_A, VILLAGE_A1]


@given(st.sampled_from(_GRANTS), st.sampled_from(chain.STAGES))
def test_a_covering_grant_higher_up_never_takes_away_a_stage(grant, stage):
    """Monotone: whatever a supervisor granted a region may take, a supervisor granted a region
    above it may take too."""
    higher = _GRANTS[: _GRANTS.index(grant) + 1]
    if chain.may_take("supervisor", [grant], stage, VILLAGE_A1) is None:
        assert all(chain.may_take("supervisor", [g], stage, VILLAGE_A1) is None for g in higher)


def test_a_callers_queues_follow_their_highest_grant():
    township, county = CaseStage.TOWNSHIP_REVIEW, CaseStage.COUNTY_REVIEW
    assert chain.stages_taken_by("supervisor", [VILLAGE_A1]) == (V, R)
    assert chain.stages_taken_by("supervisor", [TOWNSHIP_A]) == (V, R, township)
    assert chain.stages_taken_by("supervisor", [VILLAGE_A1, COUNTY]) == (V, R, township, county)
    assert chain.stages_taken_by("collector", [COUNTY]) == (V,)
    assert chain.stages_taken_by("supervisor", []) == ()
    assert chain.stages_taken_by("admin", []) == chain.STAGES


@given(
    st.sampled_from(["admin", "supervisor", "collector"]),
    st.lists(st.sampled_from([PROVINCE, CITY, COUNTY, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1])),
)
def test_a_queue_is_a_stage_the_caller_may_take_somewhere_in_their_regions(role, grants):
    for stage in chain.STAGES:
        somewhere = any(chain.may_take(role, grants, stage, g) is None for g in grants)
        if role == "admin":
            somewhere = True
        # may_take is asked of a village: a grant's own code stands for its villages here.
        assert (stage in chain.stages_taken_by(role, grants)) == somewhere, (stage, grants)
