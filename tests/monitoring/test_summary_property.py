"""Numbers add up: on generated counties (townships, villages, households of random types and
statuses, members, referrals and cases), every region's figures equal the sum of its children's,
at every level, and the county's equal a direct count of the generated rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forms.register import MonitoringStatus, MonitoringType
from server.auth.actor import system_actor
from server.monitoring.models import CaseDirection, CaseOutcome, CaseStage, ReferralChannel
from server.monitoring.models import StepDecision as Dec
from server.monitoring.summary import OPEN_STAGES, summarize
from server.regions.service import add_region
from tests.monitoring.summary_fixtures import case, household, referral, step

PROVINCE, CITY, COUNTY = "980000000000", "980100000000", "980102000000"
YEAR = 2026
START = datetime(2025, 10, 1, tzinfo=UTC)

households_ = st.lists(
    st.tuples(
        st.sampled_from(list(MonitoringStatus)),
        st.none() | st.sampled_from(list(MonitoringType)),
        st.integers(0, 5),  # live members
        st.integers(0, 2),  # deleted members
        st.booleans() | st.just(False),  # household deleted (less often)
        st.lists(  # referrals: channel, days after START
            st.tuples(st.sampled_from(list(ReferralChannel)), st.integers(0, 500)), max_size=2
        ),
        st.none()  # a case: direction, stage (None: closed), county decision and its day
        | st.tuples(
            st.sampled_from(list(CaseDirection)),
            st.none() | st.sampled_from(OPEN_STAGES),
            st.sampled_from(list(Dec)),
            st.integers(0, 500),
        ),
    ),
    max_size=6,
)
county_ = st.lists(st.lists(households_, min_size=1, max_size=3), min_size=1, max_size=3)


def township(t: int) -> str:
    return f"{COUNTY[:6]}{t:03d}000"


def village(t: int, v: int) -> str:
    return f"{COUNTY[:6]}{t:03d}{v:03d}"


def assert_parent_is_sum_of_children(session, code: str) -> None:
    summary = summarize(session, system_actor(), code, YEAR)
    if not summary.children:
        return
    for name, parent in summary.region.sections.items():
        for key, values in parent.rows.items():
            summed = [
                sum(c.sections[name].rows[key][i] for c in summary.children)
                for i in range(len(values))
            ]
            assert values == summed, (code, name, key)
        assert parent.total == [
            sum(c.sections[name].total[i] for c in summary.children)
            for i in range(len(parent.total))
        ]
    for child in summary.children:
        assert_parent_is_sum_of_children(session, child.code)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(county=county_)
def test_every_region_is_the_sum_of_its_children(rt, county):
    session = rt.db.sessionmaker()
    try:
        for code, name in ((PROVINCE, "省"), (CITY, "市"), (COUNTY, "县")):
            add_region(session, code, name)
        expected_households: Counter[tuple[str, str]] = Counter()
        expected_persons = 0
        expected_referrals = 0
        for t, villages in enumerate(county, start=1):
            add_region(session, township(t), f"镇{t}")
            for v, rows in enumerate(villages, start=1):
                code = village(t, v)
                add_region(session, code, f"村{t}-{v}")
                for status, kind, live, dead, deleted, referrals, case_spec in rows:
                    hid = household(
                        session,
                        code,
                        status,
                        kind,
                        members=live,
                        deleted_members=dead,
                        deleted=deleted,
                    )
                    if status is not MonitoringStatus.NOT_MONITORED and not deleted:
                        expected_households[(kind.value if kind else "none", status.value)] += 1
                        expected_persons += live
                    for channel, day in referrals:
                        when = START + timedelta(days=day)
                        referral(session, hid, code, channel, when)
                        if when.year == YEAR:  # midnight UTC is 08:00 in China: the same day
                            expected_referrals += 1
                    if case_spec is not None:
                        direction, stage, decision, day = case_spec
                        outcome = CaseOutcome.OPEN
                        if stage is None:
                            stage = CaseStage.CLOSED
                            approved = decision is Dec.APPROVE
                            outcome = CaseOutcome.APPROVED if approved else CaseOutcome.REJECTED
                        cid = case(session, hid, code, direction, stage, outcome=outcome)
                        step(
                            session,
                            cid,
                            1,
                            CaseStage.COUNTY_REVIEW,
                            decision,
                            START + timedelta(days=day),
                        )
        summary = summarize(session, system_actor(), COUNTY, YEAR)
        monitored = summary.region.sections["monitored"]
        found = Counter({key: values[0] for key, values in monitored.rows.items() if values[0]})
        assert found == expected_households
        assert monitored.total == [sum(expected_households.values()), expected_persons]
        assert summary.region.sections["referrals"].total == [expected_referrals]
        assert [c.code for c in summary.children] == [
            township(t) for t in range(1, len(county) + 1)
        ]
        assert_parent_is_sum_of_children(session, PROVINCE)
    finally:
        session.rollback()
        session.close()
