"""The cases pages: each level's queue, the case with its evidence, a step taken through the form
(and refused to who may not take it), filters, scope, bad input, both languages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from server.monitoring.models import CaseStep
from server.users.models import Role
from tests.conftest import VILLAGE_A1
from tests.console.conftest import text_of
from tests.monitoring.cases_world import (  # noqa: F401 - the fixture
    COUNTY_BODY,
    household_fields,
    open_case_of,
    step,
    verify,
    village_body,
    world_fixture,
)


def _steps(rt) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return session.scalar(select(func.count()).select_from(CaseStep)) or 0


def _village_form(**overrides) -> dict[str, str]:
    body = village_body()
    form = {k: v for k, v in body.items() if isinstance(v, str)}
    form.update(stage="village_review", decision="approve")
    form.update(overrides)
    return form


def test_each_level_sees_its_own_queue(world, console, rt):
    case_id = open_case_of(rt, world["household"])
    verify(world)
    town = console("sup_town")
    # The village review is waiting: not in the township's own queue yet …
    assert "A-009" not in text_of(town.page("/cases"))
    village = console("sup_village")
    html = village.page("/cases")
    assert "A-009" in text_of(html) and f"/cases/{case_id}" in html
    assert (
        step(
            client=world["tablet"].client,
            token=world["tokens"]["sup_village"],
            case_id=case_id,
            stage="village_review",
            decision="approve",
            **village_body(),
        ).status_code
        == 201
    )
    # … and is once the village approved it; the county's queue is its own step, still empty.
    assert "A-009" in text_of(town.page("/cases"))
    assert "A-009" not in text_of(console("sup_county").page("/cases"))
    # Every case of the user's regions, whatever its stage, with the filters left blank.
    assert "A-009" in text_of(console("sup_county").page("/cases?stage=&outcome="))


def test_a_case_goes_through_its_steps_in_the_forms_of_each_level(world, console, rt):
    case_id = open_case_of(rt, world["household"])
    verify(world)
    page = f"/cases/{case_id}"

    village = console("sup_village")
    html = village.page(page)
    text = text_of(html)
    assert "入户核查" in text and "村级评议公示" in text  # steps so far, stage waiting
    assert 'name="deliberation_date"' in html
    response = village.post(page, _village_form(), form_page=page)
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:400]

    town = console("sup_town")
    html = town.page(page)
    assert "评议" in text_of(html) and 'value="township_review"' in html
    assert (
        town.post(
            page,
            {"stage": "township_review", "decision": "approve", "comment": "乡镇审核通过"},
            form_page=page,
        ).status_code
        == 302
    )

    county = console("sup_county")
    html = county.page(page)
    assert 'name="monitoring_type"' in html and 'name="risk_causes"' in html
    response = county.post(
        page,
        {
            "stage": "county_review",
            "decision": "approve",
            "comment": "县级审定",
            "monitoring_type": "sudden_difficulty",
            "risk_causes": ["disaster", "housing"],
        },
        form_page=page,
    )
    assert response.status_code == 302
    shown = text_of(county.page(page))
    assert "已批准" in shown and "乡镇审核通过" in shown and "sup_town" in shown
    assert household_fields(rt, world["household"])["monitoring_status"] == "monitored"
    assert 'name="decision"' not in county.page(page)  # closed: no form


def test_who_may_not_take_the_step_sees_no_form_and_a_forged_post_changes_nothing(
    world, console, rt
):
    case_id = open_case_of(rt, world["household"])
    verify(world)
    page = f"/cases/{case_id}"
    before = _steps(rt)
    # A township supervisor may take the village review too; a village one may not take the
    # township review: after the village step, sup_village sees the case without a form.
    village = console("sup_village")
    assert village.post(page, _village_form(), form_page=page).status_code == 302
    html = village.page(page)
    assert 'name="decision"' not in html
    response = village.post(
        page, {"stage": "township_review", "decision": "approve"}, form_page=page
    )
    assert response.status_code == 403
    assert "无权操作" in text_of(response.get_data(as_text=True))
    assert _steps(rt) == before + 1
    # Another township's supervisor does not even see the case.
    other = console("sup_b")
    assert other.get(page).status_code == 403
    assert "A-009" not in text_of(other.page("/cases?stage="))
    assert (
        other.post(
            page, {"stage": "township_review", "decision": "reject", "comment": "x"}, form_page="/"
        ).status_code
        == 403
    )
    assert _steps(rt) == before + 1


def test_a_refused_step_shows_its_problems_next_to_the_form_and_changes_nothing(world, console, rt):
    case_id = open_case_of(rt, world["household"])
    verify(world)
    page = f"/cases/{case_id}"
    before = _steps(rt)
    village = console("sup_village")
    # Returning needs a reason; approving needs the notice, over by now.
    response = village.post(page, {"stage": "village_review", "decision": "return"}, form_page=page)
    assert response.status_code == 422
    assert 'id="problem-comment"' in response.get_data(as_text=True)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    response = village.post(page, _village_form(notice_end=tomorrow), form_page=page)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="problem-notice_end"' in html and tomorrow in html  # what was typed stays
    response = village.post(page, _village_form(notice_start="2026-02-30"), form_page=page)
    assert response.status_code == 422
    assert _steps(rt) == before
    # A stale screen: the stage moved on meanwhile.
    assert village.post(page, _village_form(), form_page=page).status_code == 302
    response = village.post(page, _village_form(), form_page=page)
    assert response.status_code == 409
    assert _steps(rt) == before + 1
    # No CSRF token: refused.
    assert village.client.post(page, data={"stage": "township_review"}).status_code == 403
    assert village.get(f"/cases/{uuid.uuid4()}").status_code == 404


def test_filters_and_bad_filters(world, console, rt):
    verify(world)
    county = console("sup_county")
    assert "A-009" in text_of(county.page("/cases?channel=self_application&stage="))
    assert "A-009" not in text_of(county.page("/cases?channel=department_warning&stage="))
    assert "A-009" in text_of(county.page(f"/cases?region={VILLAGE_A1}&stage="))
    assert "A-009" not in text_of(county.page("/cases?direction=exit&stage="))
    assert county.get("/cases?stage=nonsense").status_code == 422
    assert county.get("/cases?channel=nonsense").status_code == 422
    assert county.get("/cases?region=12").status_code == 422


def test_collectors_may_not_open_the_cases_pages(world, console, rt):
    case_id = open_case_of(rt, world["household"])
    collector = console("col_a1")
    assert collector.get("/cases").status_code == 403
    assert collector.get(f"/cases/{case_id}").status_code == 403


def test_the_case_page_in_english(world, console, rt, create_user_):
    case_id = open_case_of(rt, world["household"])
    html = console("sup_county", lang="en").page(f"/cases/{case_id}")
    text = text_of(html)
    assert "Referrals" in text and "Household verification visit" in text
    assert "Household's own application" in text
    create_user_("nobody", Role.SUPERVISOR, [])
    assert "A-009" not in text_of(console("nobody").page("/cases?stage="))


def test_the_next_page_of_a_queue_stays_in_that_queue(world, console, rt):
    verify(world)
    html = console("sup_village").page("/cases")
    # One case only: no next link, and the page says where it is.
    assert 'rel="next"' not in html and "1–1" in text_of(html)
    from server.console.pages import review

    with world["tablet"].client.application.test_request_context("/cases"):
        links = review.pager(120, 0, filters={"stage": "village_review", "outcome": "open"})
    assert links.next == "/cases?stage=village_review&outcome=open&offset=50"
    assert links.previous is None and links.last == 50
