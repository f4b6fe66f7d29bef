"""The register pages: search (criteria, scope, paging, identity-number lookup through the keyed
hash, audited), a household's page (values with who/when/which visit, members masked unless
revealed, timeline, open case) and the referral form — through the real app on both databases."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from sqlalchemy import event, select

from server.attachments.service import record_references
from server.audit.models import AuditEntry
from server.auth.actor import system_actor
from server.db import utcnow
from server.households.loading import NewHousehold, load_households
from server.households.models import Household
from server.monitoring import referrals
from server.monitoring.models import MonitoringCase, Referral
from server.monitoring.terms import ReferralChannel
from server.users.models import Role
from tests.conftest import (
    COUNTY,
    LOAD_CLOCK,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
)
from tests.console.conftest import text_of
from tests.exports.world import push_register
from tests.sync.helpers import HOUSEHOLD_A, HOUSEHOLD_B, Tablet, load_register

HEAD_A_ID_NUMBER = "990102197803120011"  # the head of household A as load_register stores it


@pytest.fixture
def register(rt, regions, create_user_):
    """Households A (village A1, three members) and B (village B1); users of each scope."""
    load_register(rt)
    create_user_("sup_county", Role.SUPERVISOR, [COUNTY])
    create_user_("sup_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("sup_b", Role.SUPERVISOR, [TOWNSHIP_B])
    create_user_("col_a", Role.COLLECTOR, [TOWNSHIP_A])


def _audits(rt, action: str) -> list[AuditEntry]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_search_by_head_number_village_and_status(console, register):
    browser = console("sup_county")
    everyone = text_of(browser.page("/households"))
    assert "A-001" in everyone and "B-001" in everyone and "黄志强" in everyone
    by_name = text_of(browser.page("/households?head_name=志强"))
    assert "A-001" in by_name and "B-001" not in by_name
    by_number = text_of(browser.page("/households?household_no=B-"))
    assert "B-001" in by_number and "A-001" not in by_number
    by_village = text_of(browser.page(f"/households?region={VILLAGE_A2}"))
    assert "A-001" not in by_village and "没有符合条件的农户" in by_village
    by_status = text_of(browser.page("/households?status=monitored"))
    assert "A-001" not in by_status and "B-001" not in by_status
    # The head's identity number is listed masked only.
    assert "9901**********0011" in everyone and HEAD_A_ID_NUMBER not in everyone


def test_a_township_supervisor_finds_only_their_township(console, register):
    browser = console("sup_a")
    page = browser.page("/households")
    assert "A-001" in text_of(page) and "B-001" not in text_of(page)
    assert f'value="{TOWNSHIP_B}"' not in page  # not offered in the region picker
    assert "B-001" not in text_of(browser.page("/households?household_no=B"))
    browser.page(f"/households?region={TOWNSHIP_B}", status=403)
    browser.page(f"/households/{HOUSEHOLD_B}", status=403)


def test_bad_search_input_is_shown_next_to_the_form(console, register):
    browser = console("sup_county")
    for query in ("status=gone", "region=12", "cursor=not-a-cursor"):
        page = browser.page(f"/households?{query}", status=422)
        assert 'role="alert"' in page and 'id="household-search"' in page


def test_results_are_paged_by_fifty(rt, console, register):
    households = [
        NewHousehold(uuid.uuid4(), {"village_code": VILLAGE_A2, "household_no": f"P-{i:03d}"}, [])
        for i in range(55)
    ]
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, households, clock=LOAD_CLOCK)
    browser = console("sup_county")
    first = browser.page(f"/households?region={VILLAGE_A2}")
    assert text_of(first).count("P-0") == 50
    following = re.search(r'href="([^"]+)" rel="next"', first)
    assert following is not None
    second = browser.page(following.group(1).replace("&amp;", "&"))
    listed = re.findall(r"P-\d{3}", text_of(second))
    assert listed == [f"P-{i:03d}" for i in range(50, 55)]
    assert 'rel="next"' not in second and "第一页" in text_of(second)


def test_identity_number_lookup_goes_through_the_hash_and_is_audited(rt, console, register):
    browser = console("sup_a")
    response = browser.post(
        "/households/lookup", {"id_number": HEAD_A_ID_NUMBER}, form_page="/households"
    )
    assert response.status_code == 200
    text = text_of(response.get_data(as_text=True))
    assert "A-001" in text and HEAD_A_ID_NUMBER not in text
    (entry,) = _audits(rt, "household_id_number_lookup")
    assert entry.details["found"] == 1 and HEAD_A_ID_NUMBER not in str(entry.details)
    # Another township's supervisor finds nothing with the same number.
    other = console("sup_b").post(
        "/households/lookup", {"id_number": HEAD_A_ID_NUMBER}, form_page="/households"
    )
    assert "A-001" not in text_of(other.get_data(as_text=True))
    empty = browser.post("/households/lookup", {"id_number": " "}, form_page="/households")
    assert empty.status_code == 422


def test_the_household_page_says_who_set_each_value_from_which_visit(client, console, register):
    push_register(Tablet.login(client, "col_a"), VILLAGE_A1, helper="韦海燕")
    page = console("sup_county").page(f"/households/{HOUSEHOLD_A}")
    values = text_of(page.split('id="values"', 1)[1].split("</section>", 1)[0])
    helper_row = values.split("帮扶责任人", 1)[1][:120]
    assert "韦海燕" in helper_row and "col_a" in helper_row and "household_register" in helper_row
    # The income came from the register import, not a visit.
    assert "登记导入" in values.split("家庭年收入", 1)[1][:80]
    timeline = text_of(page.split('id="timeline"', 1)[1])
    assert "收到走访" in timeline and "col_a" in timeline


def test_members_are_masked_unless_revealed_and_a_reveal_is_audited(client, rt, console, register):
    push_register(Tablet.login(client, "col_a"), VILLAGE_A1)
    collector = console("col_a")
    masked = text_of(collector.page(f"/households/{HOUSEHOLD_A}"))
    members = masked.split("家庭成员", 1)[1]
    assert "4528**********001X" in members and "45280219780312001X" not in members
    assert "***" in members and "长期慢性病" not in members
    collector.page(f"/households/{HOUSEHOLD_A}?reveal=1", status=403)
    assert _audits(rt, "reveal_sensitive") == []

    revealed = text_of(console("sup_county").page(f"/households/{HOUSEHOLD_A}?reveal=1"))
    assert "45280219780312001X" in revealed and "长期慢性病" in revealed
    (entry,) = _audits(rt, "reveal_sensitive")
    assert set(entry.details["fields"]) >= {"id_number", "phone", "health", "disability"}


def test_unknown_or_foreign_households_are_refused(console, register):
    browser = console("col_a")
    browser.page(f"/households/{uuid.uuid4()}", status=404)
    browser.page(f"/households/{HOUSEHOLD_B}", status=403)


def test_referring_a_household_opens_a_case_shown_on_its_page(rt, console, register):
    browser = console("sup_a")
    path = f"/households/{HOUSEHOLD_A}"
    response = browser.post(
        f"{path}/refer", {"causes": ["illness", "housing"], "note": "入户排查发现"}, form_page=path
    )
    assert response.status_code == 302 and response.headers["Location"] == path
    with rt.db.unit_of_work(write=False) as session:
        case = session.scalars(
            select(MonitoringCase).where(MonitoringCase.household_id == HOUSEHOLD_A)
        ).one()
        assert case.stage.value == "verification"
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and household.monitoring_status.value == "entry_review"
    page = text_of(browser.page(path))
    assert "已转入监测" in page or "入户核查" in page.split("监测", 1)[1]
    assert "纳入审核中" in page


def test_a_referral_without_causes_is_refused_and_changes_nothing(rt, console, register):
    browser = console("sup_a")
    path = f"/households/{HOUSEHOLD_A}"
    response = browser.post(f"{path}/refer", {"note": "没有原因"}, form_page=path)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and "没有原因" in page  # the form keeps what was typed
    refused = browser.client.post(f"{path}/refer", data={"causes": ["illness"], "note": "x"})
    assert refused.status_code == 403  # no CSRF token
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalars(select(Referral)).all() == []
    # Nor may a supervisor of another township refer it.
    other = console("sup_b").post(
        f"{path}/refer", {"causes": ["illness"], "note": "x"}, form_page="/households"
    )
    assert other.status_code == 403


def test_the_register_speaks_english_on_request(client, console, register):
    push_register(Tablet.login(client, "col_a"), VILLAGE_A1)
    browser = console("sup_county", lang="en")
    assert "Find households" in text_of(browser.page("/households"))
    page = text_of(browser.page(f"/households/{HOUSEHOLD_A}"))
    assert "Members" in page and "Responsible helper" in page and "Not monitored" in page


@pytest.fixture
def monitored(rt, register) -> uuid.UUID:
    """A household of village A1 under monitoring for illness."""
    household_id = uuid.uuid4()
    item = NewHousehold(
        household_id,
        {
            "village_code": VILLAGE_A1,
            "household_no": "M-001",
            "monitoring_type": "marginal",
            "monitoring_status": "monitored",
            "risk_causes": ["illness"],
        },
        [],
    )
    with rt.db.unit_of_work() as session:
        load_households(session, rt.codec, [item], clock=LOAD_CLOCK)
    return household_id


def test_a_monitored_household_can_be_proposed_for_exit(rt, console, monitored):
    browser = console("sup_a")
    path = f"/households/{monitored}"
    assert 'id="exit"' in browser.page(path)
    too_soon = browser.post(
        f"{path}/exit",
        {
            "income_months_above_line": "1",
            "causes_resolved": ["illness"],
            "measure_outcomes": "医疗救助到位",
        },
        form_page=path,
    )
    assert too_soon.status_code == 422
    assert "收入稳定高于监测标准的月数" in text_of(too_soon.get_data(as_text=True))
    response = browser.post(
        f"{path}/exit",
        {
            "income_months_above_line": "12",
            "causes_resolved": ["illness"],
            "measure_outcomes": "医疗救助到位，务工收入稳定",
        },
        form_page=path,
    )
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:400]
    with rt.db.unit_of_work(write=False) as session:
        (case,) = session.scalars(
            select(MonitoringCase).where(MonitoringCase.household_id == monitored)
        ).all()
        assert case.direction.value == "exit" and case.stage.value == "verification"
    page = browser.page(path)
    assert 'id="exit"' not in page and "风险消除审核中" in text_of(page)
    # Sent again (a stale page): the conflict is shown next to the form, nothing more opens.
    again = browser.post(
        f"{path}/exit",
        {
            "income_months_above_line": "12",
            "causes_resolved": ["illness"],
            "measure_outcomes": "再次提交",
        },
        form_page=path,
    )
    assert again.status_code == 409 and 'role="alert"' in again.get_data(as_text=True)
    with rt.db.unit_of_work(write=False) as session:
        assert len(session.scalars(select(MonitoringCase)).all()) == 1


def test_the_exit_form_is_offered_only_for_a_monitored_household(console, monitored):
    browser = console("col_a")
    assert 'id="exit"' in browser.page(f"/households/{monitored}")
    assert 'id="exit"' not in browser.page(f"/households/{HOUSEHOLD_A}")  # not monitored


def test_a_visit_photo_is_listed_and_opened_with_the_download_checks(client, rt, console, register):
    tablet = Tablet.login(client, "col_a")
    pushed = push_register(tablet, VILLAGE_A1)
    instance_id = uuid.UUID(pushed["results"][0]["instance_id"])
    photo = b"\xff\xd8\xff\xe0 a photo of the house " * 50
    digest = "sha256:" + hashlib.sha256(photo).hexdigest()
    uploaded = client.put(
        f"/api/v1/attachments/{digest}",
        data=photo,
        content_type="image/jpeg",
        headers=tablet.headers,
    )
    assert uploaded.status_code == 201
    with rt.db.unit_of_work() as session:
        record_references(session, [(digest, instance_id, VILLAGE_A1)])
    path = f"/households/{HOUSEHOLD_A}"
    file_path = f"{path}/files/{digest}"

    supervisor = console("sup_a")
    files = supervisor.page(path).split('id="files"', 1)[1].split("</section>", 1)[0]
    assert f'href="{file_path}"' in files and "image/jpeg" in files
    response = supervisor.get(file_path, buffered=True)
    assert response.status_code == 200 and response.data == photo
    assert response.headers["Content-Type"] == "image/jpeg"
    assert len(_audits(rt, "download_attachment")) == 1

    collector = console("col_a")
    assert f'href="{file_path}"' not in collector.page(path)  # listed, not openable
    assert collector.get(file_path).status_code == 403
    assert console("sup_b").get(file_path).status_code == 403
    assert len(_audits(rt, "download_attachment")) == 1


def test_the_household_page_asks_the_same_number_of_queries_however_many_members(
    rt, console, register
):
    big = uuid.uuid4()
    people = [(uuid.uuid4(), {"name": f"成员{i}", "relation": "other"}) for i in range(8)]
    with rt.db.unit_of_work() as session:
        load_households(
            session,
            rt.codec,
            [NewHousehold(big, {"village_code": VILLAGE_B1, "household_no": "B-008"}, people)],
            clock=LOAD_CLOCK,
        )
    browser = console("sup_county")
    browser.page(f"/households/{HOUSEHOLD_B}")  # warms what is cached per process
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", listener)
    try:
        browser.page(f"/households/{HOUSEHOLD_B}")  # one member
        one = len(seen)
        seen.clear()
        eight = browser.page(f"/households/{big}")
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", listener)
    assert "成员7" in text_of(eight)
    assert len(seen) == one


def test_the_timeline_pages_back_through_older_events(rt, console, register):
    with rt.db.unit_of_work() as session:
        for n in range(25):
            referrals.refer(
                session,
                system_actor(),
                HOUSEHOLD_A,
                ReferralChannel.CADRE_SCREENING,
                ["illness"],
                note=f"第{n}次排查",
                evidence={},
                now=utcnow(),
                clock=rt.clock,
                codec=rt.codec,
            )
    browser = console("sup_a")
    first = browser.page(f"/households/{HOUSEHOLD_A}")
    newest = first.split('id="timeline"', 1)[1]
    assert newest.count("<li>") == 20
    older = re.search(r'href="([^"]+)#timeline" rel="next"', newest)
    assert older is not None
    rest = browser.page(older.group(1).replace("&amp;", "&")).split('id="timeline"', 1)[1]
    assert rest.count("<li>") >= 6  # the other referrals, the case's change, the import
    assert 'rel="next"' not in rest and "最新" in text_of(rest)
    browser.page(f"/households/{HOUSEHOLD_A}?timeline=not-a-cursor", status=422)
