"""The conflicts review API: supervisors see the conflicts of their regions with both values and
their origins (sensitive values masked unless revealed, reveals audited) and resolve them by a new
server write that wins the merge and reaches tablets like any other change."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from forms.register import MONEY_LIMIT
from server.app import create_app
from server.audit.models import AuditEntry
from server.conflicts.models import Conflict, ConflictStatus
from server.conflicts.service import stored_conflict_value
from server.db import utcnow
from server.households.models import Household, Member
from server.users.models import Role, User
from sync_protocol.clock import Hlc
from tests.conftest import (
    COUNTY,
    ID_NUMBER,
    LOAD_MILLIS,
    TOWNSHIP_A,
    TOWNSHIP_B,
    VILLAGE_A1,
    VILLAGE_A2,
    VILLAGE_B1,
    bearer,
)
from tests.patience import wait_until
from tests.sync.helpers import field_changes, store_accepted_submission

OTHER_ID_NUMBER = "990102198502026789"
DEVICE_CLOCK = f"{LOAD_MILLIS + 60_000:013d}-00003-tablet-a"
OTHER_CLOCK = f"{LOAD_MILLIS + 120_000:013d}-00001-tablet-b"


@pytest.fixture
def register(village_households):
    return village_households


@pytest.fixture
def submission(rt, create_user_):
    """`submission(username, village)` → instance id of a stored accepted submission by that
    collector from a new device, collected an hour before it was received."""

    def factory(username: str, village: str) -> dict[str, Any]:
        with rt.db.unit_of_work(write=False) as session:
            exists = session.scalar(select(User.id).where(User.username == username))
        if exists is None:
            create_user_(username, Role.COLLECTOR, [COUNTY])
        received = utcnow().replace(microsecond=0)
        collected = received - timedelta(hours=1)
        instance_id, device_id = store_accepted_submission(
            rt, username, village, hlc=DEVICE_CLOCK, collected_at=collected, received_at=received
        )
        return {
            "instance_id": instance_id,
            "device_id": device_id,
            "collected_at": collected,
            "received_at": received,
        }

    return factory


@pytest.fixture
def make_conflict(rt, register):
    """`make_conflict(village=…, **columns)` → id of a conflict row written as the push path
    writes them (default: per_capita_income of the village's household, 6400.5 won over 5800)."""

    def factory(village: str = VILLAGE_A1, **columns: Any) -> uuid.UUID:
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "entity_type": "household",
            "entity_id": register[village]["household"],
            "field": "per_capita_income",
            "village_code": village,
            "winner_value": 6400.5,
            "winner_clock": OTHER_CLOCK,
            "winner_submission_id": None,
            "loser_value": 5800,
            "loser_clock": DEVICE_CLOCK,
            "loser_submission_id": None,
            **columns,
        }
        with rt.db.unit_of_work() as session:
            session.add(Conflict(**row))
        conflict_id: uuid.UUID = row["id"]
        return conflict_id

    return factory


@pytest.fixture
def sensitive_conflict(rt, make_conflict, register):
    """A conflict on the A1 head's identity number: the stored one won over OTHER_ID_NUMBER."""
    return make_conflict(
        entity_type="member",
        entity_id=register[VILLAGE_A1]["member"],
        field="id_number",
        winner_value=stored_conflict_value(rt.codec, "member", "id_number", ID_NUMBER),
        loser_value=stored_conflict_value(rt.codec, "member", "id_number", OTHER_ID_NUMBER),
    )


@pytest.fixture
def supervisor(create_user_, login):
    """A token of a supervisor of township A (villages A1 and A2)."""
    create_user_("supervisor_a", Role.SUPERVISOR, [TOWNSHIP_A])
    return login("supervisor_a")


def list_conflicts(client, token: str, query: str = "") -> Any:
    response = client.get(f"/api/v1/conflicts{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def resolve(client, token: str, conflict_id: uuid.UUID, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/conflicts/{conflict_id}/resolve", json=body, headers=bearer(token))


def audits(rt, action: str) -> list[AuditEntry]:
    with rt.db.unit_of_work(write=False) as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


def household_state(rt, household_id: uuid.UUID) -> Household:
    with rt.db.unit_of_work(write=False) as session:
        household: Household | None = session.get(Household, household_id)
    assert household is not None
    return household


# --- listing -------------------------------------------------------------------------------------


def test_supervisor_lists_only_the_conflicts_of_their_regions_newest_first(
    client, supervisor, make_conflict
):
    now = utcnow()
    older = make_conflict(VILLAGE_A1, created_at=now - timedelta(hours=2))
    newer = make_conflict(VILLAGE_A2, created_at=now - timedelta(hours=1))
    make_conflict(VILLAGE_B1, created_at=now)
    body = list_conflicts(client, supervisor)
    assert [c["id"] for c in body["conflicts"]] == [str(newer), str(older)]
    assert body["total"] == 2
    assert (body["limit"], body["offset"], body["revealed"]) == (50, 0, False)


def test_each_conflict_shows_both_values_with_their_origins(
    client, supervisor, make_conflict, submission, register
):
    won = submission("collector_b", VILLAGE_A1)
    lost = submission("collector_a", VILLAGE_A1)
    conflict_id = make_conflict(
        winner_submission_id=won["instance_id"], loser_submission_id=lost["instance_id"]
    )
    [conflict] = list_conflicts(client, supervisor)["conflicts"]
    assert conflict["id"] == str(conflict_id)
    assert conflict["entity"] == "household"
    assert conflict["entity_id"] == str(register[VILLAGE_A1]["household"])
    assert (conflict["field"], conflict["village_code"]) == ("per_capita_income", VILLAGE_A1)
    assert (conflict["status"], conflict["resolution"], conflict["sensitive"]) == (
        "open",
        None,
        False,
    )
    assert datetime.fromisoformat(conflict["created_at"]).tzinfo is not None
    assert conflict["winner"] == {
        "value": 6400.5,
        "clock": OTHER_CLOCK,
        "instance_id": str(won["instance_id"]),
        "device_id": str(won["device_id"]),
        "user": "collector_b",
        "collected_at": won["collected_at"].isoformat(),
        "received_at": won["received_at"].isoformat(),
    }
    assert conflict["loser"]["value"] == 5800
    assert conflict["loser"]["clock"] == DEVICE_CLOCK
    assert conflict["loser"]["user"] == "collector_a"
    assert conflict["loser"]["device_id"] == str(lost["device_id"])


def test_a_value_that_came_from_no_submission_has_no_origin(client, supervisor, make_conflict):
    make_conflict()
    [conflict] = list_conflicts(client, supervisor)["conflicts"]
    assert conflict["winner"]["instance_id"] is None
    assert conflict["winner"]["user"] is None and conflict["winner"]["device_id"] is None
    assert conflict["winner"]["clock"] == OTHER_CLOCK


def test_filters_by_status_entity_entity_id_and_field(client, supervisor, make_conflict, register):
    income = make_conflict()
    helper = make_conflict(field="helper", winner_value="李四", loser_value="张三")
    member = make_conflict(
        entity_type="member",
        entity_id=register[VILLAGE_A1]["member"],
        field="name",
        winner_value="王建国",
        loser_value="王建军",
    )
    resolved = make_conflict(
        status=ConflictStatus.RESOLVED,
        resolved_at=utcnow(),
        resolution_value=6000,
        resolution_clock=f"{LOAD_MILLIS + 180_000:013d}-00000-server",
    )

    def ids(query: str) -> set[str]:
        return {c["id"] for c in list_conflicts(client, supervisor, query)["conflicts"]}

    assert ids("?status=open") == {str(income), str(helper), str(member)}
    assert ids("?status=resolved") == {str(resolved)}
    assert ids("?entity=member") == {str(member)}
    assert ids(f"?entity_id={register[VILLAGE_A1]['member']}") == {str(member)}
    assert ids("?field=helper") == {str(helper)}
    assert ids("?status=open&entity=household&field=per_capita_income") == {str(income)}


def test_region_narrows_the_list_and_must_itself_be_covered(
    client, create_user_, login, make_conflict
):
    in_a1, in_a2 = make_conflict(VILLAGE_A1), make_conflict(VILLAGE_A2)
    make_conflict(VILLAGE_B1)
    create_user_("county", Role.SUPERVISOR, [COUNTY])
    county = login("county")
    assert {
        c["id"] for c in list_conflicts(client, county, f"?region={TOWNSHIP_A}")["conflicts"]
    } == {str(in_a1), str(in_a2)}
    assert [
        c["id"] for c in list_conflicts(client, county, f"?region={VILLAGE_A2}")["conflicts"]
    ] == [str(in_a2)]
    create_user_("township_a", Role.SUPERVISOR, [TOWNSHIP_A])
    response = client.get(
        f"/api/v1/conflicts?region={TOWNSHIP_B}", headers=bearer(login("township_a"))
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_pages_with_limit_and_offset_and_reports_the_total(client, supervisor, make_conflict):
    now = utcnow()
    made = [make_conflict(created_at=now - timedelta(minutes=i)) for i in range(5)]
    first = list_conflicts(client, supervisor, "?limit=2")
    second = list_conflicts(client, supervisor, "?limit=2&offset=2")
    last = list_conflicts(client, supervisor, "?limit=2&offset=4")
    pages = [first, second, last]
    assert [c["id"] for page in pages for c in page["conflicts"]] == [str(i) for i in made]
    assert {page["total"] for page in pages} == {5}
    assert (second["limit"], second["offset"]) == (2, 2)


def test_admin_sees_every_region(client, create_user_, login, make_conflict):
    made = {make_conflict(v) for v in (VILLAGE_A1, VILLAGE_A2, VILLAGE_B1)}
    create_user_("admin", Role.ADMIN)
    body = list_conflicts(client, login("admin"))
    assert {c["id"] for c in body["conflicts"]} == {str(i) for i in made}


def test_collector_gets_403_for_the_list_one_conflict_and_resolving(
    client, create_user_, login, make_conflict
):
    conflict_id = make_conflict()
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    token = login("collector")
    responses = [
        client.get("/api/v1/conflicts", headers=bearer(token)),
        client.get(f"/api/v1/conflicts/{conflict_id}", headers=bearer(token)),
        resolve(client, token, conflict_id, {"choose": "loser"}),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403]


def test_the_list_requires_a_token(client, regions):
    assert client.get("/api/v1/conflicts").status_code == 401


@pytest.mark.parametrize(
    "query,path",
    [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?status=closed", "status"),
        ("?entity=village", "entity"),
        ("?entity_id=42", "entity_id"),
        ("?region=9901", "region"),
        ("?reveal=yes", "reveal"),
        ("?colour=blue", "colour"),
    ],
)
def test_malformed_list_queries_are_422_naming_the_argument(client, supervisor, query, path):
    response = client.get(f"/api/v1/conflicts{query}", headers=bearer(supervisor))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert [d["path"] for d in error["details"]["errors"]] == [path]


# --- one conflict --------------------------------------------------------------------------------


def test_one_conflict_in_region_is_shown_outside_is_403_unknown_is_404(
    client, supervisor, make_conflict
):
    own, other = make_conflict(VILLAGE_A1), make_conflict(VILLAGE_B1)
    response = client.get(f"/api/v1/conflicts/{own}", headers=bearer(supervisor))
    assert response.status_code == 200
    assert response.get_json()["id"] == str(own)
    assert response.get_json()["loser"]["value"] == 5800
    outside = client.get(f"/api/v1/conflicts/{other}", headers=bearer(supervisor))
    assert outside.status_code == 403
    assert "loser" not in outside.get_json()
    unknown = client.get(f"/api/v1/conflicts/{uuid.uuid4()}", headers=bearer(supervisor))
    assert unknown.status_code == 404
    assert client.get("/api/v1/conflicts/not-a-uuid", headers=bearer(supervisor)).status_code == 404


# --- sensitive values ----------------------------------------------------------------------------


def test_identity_numbers_in_conflicts_are_masked_by_default(
    client, supervisor, sensitive_conflict, rt
):
    [listed] = list_conflicts(client, supervisor)["conflicts"]
    one = client.get(f"/api/v1/conflicts/{sensitive_conflict}", headers=bearer(supervisor))
    for conflict in (listed, one.get_json()):
        assert conflict["sensitive"] is True
        assert conflict["winner"]["value"] == "9901**********2345"
        assert conflict["loser"]["value"] == "9901**********6789"
    assert audits(rt, "reveal_sensitive") == []


def test_conflict_rows_never_hold_identity_numbers_in_clear(rt, sensitive_conflict):
    with rt.db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM conflicts").fetchall()
    assert rows
    assert not any(
        n in str(value) for row in rows for value in row for n in (ID_NUMBER, OTHER_ID_NUMBER)
    )


def test_reveal_shows_the_numbers_and_audits_each_revealed_conflict(
    client, supervisor, sensitive_conflict, make_conflict, rt
):
    make_conflict()  # not sensitive: nothing to audit
    body = list_conflicts(client, supervisor, "?reveal=sensitive")
    assert body["revealed"] is True
    revealed = next(c for c in body["conflicts"] if c["id"] == str(sensitive_conflict))
    assert (revealed["winner"]["value"], revealed["loser"]["value"]) == (ID_NUMBER, OTHER_ID_NUMBER)
    [entry] = audits(rt, "reveal_sensitive")
    assert (entry.object_type, entry.object_id) == ("conflict", str(sensitive_conflict))
    assert entry.region_code == VILLAGE_A1
    one = client.get(
        f"/api/v1/conflicts/{sensitive_conflict}?reveal=sensitive", headers=bearer(supervisor)
    )
    assert one.get_json()["loser"]["value"] == OTHER_ID_NUMBER
    assert len(audits(rt, "reveal_sensitive")) == 2


def test_a_role_not_allowed_to_reveal_gets_403_and_nothing_is_audited(
    settings, supervisor, sensitive_conflict, rt
):
    app = create_app(settings.replace(reveal_roles=("admin",)))
    try:
        client = app.test_client()
        listed = client.get("/api/v1/conflicts?reveal=sensitive", headers=bearer(supervisor))
        one = client.get(
            f"/api/v1/conflicts/{sensitive_conflict}?reveal=sensitive", headers=bearer(supervisor)
        )
        masked = client.get("/api/v1/conflicts", headers=bearer(supervisor))
    finally:
        app.extensions["fieldsync"].db.dispose()
    assert (listed.status_code, one.status_code, masked.status_code) == (403, 403, 200)
    assert audits(rt, "reveal_sensitive") == []


# --- resolving -----------------------------------------------------------------------------------


def test_resolving_with_a_value_writes_it_with_a_new_server_clock_and_logs_the_change(
    client, supervisor, make_conflict, register, rt
):
    household_id = register[VILLAGE_A1]["household"]
    before = household_state(rt, household_id)
    conflict_id = make_conflict()
    response = resolve(client, supervisor, conflict_id, {"value": 6000})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "resolved"
    assert body["entity_rev"] == before.rev + 1
    resolution = body["resolution"]
    assert resolution["value"] == 6000 and resolution["resolved_by"] == "supervisor_a"
    stamp = Hlc.parse(resolution["clock"])
    assert stamp.node == "server"
    assert stamp > Hlc.parse(OTHER_CLOCK) and stamp > Hlc.parse(DEVICE_CLOCK)

    after = household_state(rt, household_id)
    assert after.per_capita_income == 6000
    assert after.rev == before.rev + 1
    assert after.clocks["per_capita_income"] == resolution["clock"]
    with rt.db.unit_of_work(write=False) as session:
        change = field_changes(session, household_id, "per_capita_income")[-1]
        conflict = session.get(Conflict, conflict_id)
        resolver = session.scalars(select(User.id).where(User.username == "supervisor_a")).one()
    assert (change.fields, change.clock, change.rev) == (
        {"per_capita_income": 6000},
        resolution["clock"],
        after.rev,
    )
    assert change.village_code == VILLAGE_A1
    assert conflict.status is ConflictStatus.RESOLVED
    assert conflict.resolved_by_id == resolver and conflict.resolution_value == 6000
    assert conflict.resolution_clock == resolution["clock"]
    [entry] = audits(rt, "resolve_conflict")
    assert (entry.object_id, entry.region_code, entry.user_id) == (
        str(conflict_id),
        VILLAGE_A1,
        resolver,
    )
    assert entry.details["choice"] == "value" and entry.details["rev"] == after.rev


def test_choosing_the_loser_writes_the_losing_value(
    client, supervisor, make_conflict, register, rt
):
    conflict_id = make_conflict()
    response = resolve(client, supervisor, conflict_id, {"choose": "loser"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["resolution"]["value"] == 5800
    assert household_state(rt, register[VILLAGE_A1]["household"]).per_capita_income == 5800
    assert audits(rt, "resolve_conflict")[0].details["choice"] == "loser"


def test_resolving_twice_is_409_and_the_second_write_never_happens(
    client, supervisor, make_conflict, register, rt
):
    conflict_id = make_conflict()
    assert resolve(client, supervisor, conflict_id, {"choose": "winner"}).status_code == 200
    rev = household_state(rt, register[VILLAGE_A1]["household"]).rev
    again = resolve(client, supervisor, conflict_id, {"value": 1})
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "conflict"
    household = household_state(rt, register[VILLAGE_A1]["household"])
    assert household.rev == rev
    assert household.per_capita_income == Decimal("6400.50")
    assert len(audits(rt, "resolve_conflict")) == 1


def test_concurrent_resolutions_of_one_conflict_let_exactly_one_through(
    app, supervisor, make_conflict, register, rt
):
    conflict_id = make_conflict()
    household_id = register[VILLAGE_A1]["household"]
    workers = 4
    start = threading.Barrier(workers)
    statuses: list[int] = []

    def attempt(value: int) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(resolve(client, supervisor, conflict_id, {"value": value}).status_code)

    threads = [threading.Thread(target=attempt, args=(7000 + i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * (workers - 1)
    household = household_state(rt, household_id)
    assert household.rev == 2
    with rt.db.unit_of_work(write=False) as session:
        conflict = session.get(Conflict, conflict_id)
        writes = [
            change.fields["per_capita_income"]
            for change in field_changes(session, household_id, "per_capita_income")
            if change.rev == 2
        ]
    assert writes == [conflict.resolution_value] and household.per_capita_income == writes[0]
    assert len(audits(rt, "resolve_conflict")) == 1


def test_resolution_is_later_than_a_device_clock_running_ahead_of_the_server(
    client, supervisor, make_conflict
):
    ahead = Hlc(int(utcnow().timestamp() * 1000) + 5 * 60_000, 7, "fast-tablet")
    conflict_id = make_conflict(winner_clock=str(ahead))
    response = resolve(client, supervisor, conflict_id, {"choose": "loser"})
    assert response.status_code == 200, response.get_json()
    assert Hlc.parse(response.get_json()["resolution"]["clock"]) > ahead


def pull_until_quiet(client, headers, cursor: str | None) -> tuple[list[Any], str]:
    """Pull pages from `cursor` until `more` is false: the entities served and the next cursor."""
    entities: list[Any] = []
    while True:
        query = "" if cursor is None else f"?cursor={cursor}"
        response = client.get(f"/api/v1/sync/pull{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        entities.extend(page["entities"])
        cursor = page["cursor"]
        if not page["more"]:
            return entities, cursor


def test_resolution_reaches_a_tablet_on_its_next_pull(
    client, create_user_, login, supervisor, make_conflict, register
):
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    tablet = bearer(login("collector", device_id=str(uuid.uuid4())))
    _, cursor = pull_until_quiet(client, tablet, None)
    conflict_id = make_conflict()
    assert resolve(client, supervisor, conflict_id, {"value": 7100}).status_code == 200

    # On PostgreSQL a pull serves changes below the oldest transaction still running anywhere on
    # the server, in any database (the cursor never skips), so another test session's open
    # transaction can delay — never lose — the change: keep pulling, as a tablet would.
    def served_households() -> list[Any]:
        nonlocal cursor
        entities, cursor = pull_until_quiet(client, tablet, cursor)
        return [e for e in entities if e["entity"] == "household"]

    [household] = wait_until(served_households, what="the resolution reaching the tablet")
    assert household["id"] == str(register[VILLAGE_A1]["household"])
    assert household["fields"]["per_capita_income"] == 7100
    assert Hlc.parse(household["clocks"]["per_capita_income"]).node == "server"


def test_choosing_a_masked_identity_number_writes_the_real_one_and_keeps_it_protected(
    client, supervisor, sensitive_conflict, register, rt
):
    response = resolve(client, supervisor, sensitive_conflict, {"choose": "loser"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["resolution"]["value"] == "9901**********6789"
    with rt.db.unit_of_work(write=False) as session:
        member = session.get(Member, register[VILLAGE_A1]["member"])
        assert member.id_number_hash == rt.codec.lookup_hash("id_number", OTHER_ID_NUMBER)
    with rt.db.engine.connect() as conn:
        stored = [
            str(value)
            for table in ("conflicts", "changes", "audit_log", "members")
            for row in conn.exec_driver_sql(f"SELECT * FROM {table}").fetchall()
            for value in row
        ]
    assert not any(OTHER_ID_NUMBER in value for value in stored)


def test_a_sensitive_value_kept_only_masked_cannot_be_chosen(
    client, supervisor, make_conflict, register, rt
):
    conflict_id = make_conflict(
        entity_type="member",
        entity_id=register[VILLAGE_A1]["member"],
        field="phone",
        winner_value="138****5678",
        loser_value="139****0000",
    )
    response = resolve(client, supervisor, conflict_id, {"choose": "loser"})
    assert response.status_code == 422
    [detail] = response.get_json()["error"]["details"]["errors"]
    assert detail["path"] == "choose"
    typed = resolve(client, supervisor, conflict_id, {"value": "13900000000"})
    assert typed.status_code == 200
    assert typed.get_json()["resolution"]["value"] == "139****0000"


def test_resolving_outside_the_regions_is_403_and_unknown_is_404(
    client, supervisor, make_conflict, register, rt
):
    other = make_conflict(VILLAGE_B1)
    response = resolve(client, supervisor, other, {"choose": "loser"})
    assert response.status_code == 403
    assert household_state(rt, register[VILLAGE_B1]["household"]).per_capita_income == 6400.5
    with rt.db.unit_of_work(write=False) as session:
        assert session.get(Conflict, other).status is ConflictStatus.OPEN
    assert resolve(client, supervisor, uuid.uuid4(), {"choose": "loser"}).status_code == 404


@pytest.mark.parametrize(
    "field,value,code",
    [
        ("per_capita_income", "6000", "invalid_type"),
        ("per_capita_income", True, "invalid_type"),
        ("per_capita_income", 10**13, "out_of_range"),
        # the register's bound, the same one a submission is held to (forms/register.py)
        ("per_capita_income", MONEY_LIMIT + 0.5, "out_of_range"),
        ("per_capita_income", 12.345, "invalid_value"),
        ("category", "rich", "invalid_value"),
        ("risk_causes", ["illness"], "field_read_only"),  # decided by the case workflow
        ("food_clothing_ok", "yes", "invalid_type"),
        ("household_no", "x" * 65, "out_of_range"),
        ("head_member_id", "not-a-uuid", "invalid_uuid"),
        ("village_code", "990102001999", "invalid_value"),
        ("deleted", None, "required"),
        ("monitoring_status", "monitored", "field_read_only"),
    ],
)
def test_a_value_the_register_field_cannot_hold_is_422_with_details(
    client, supervisor, make_conflict, register, rt, field, value, code
):
    conflict_id = make_conflict(field=field, winner_value=None, loser_value=None)
    response = resolve(client, supervisor, conflict_id, {"value": value})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    [detail] = error["details"]["errors"]
    assert (detail["path"], detail["code"]) == ("value", code)
    assert detail["message"]
    with rt.db.unit_of_work(write=False) as session:
        assert session.get(Conflict, conflict_id).status is ConflictStatus.OPEN
    assert household_state(rt, register[VILLAGE_A1]["household"]).rev == 1


def test_a_member_birth_date_must_be_a_calendar_date(client, supervisor, make_conflict, register):
    conflict_id = make_conflict(
        entity_type="member",
        entity_id=register[VILLAGE_A1]["member"],
        field="birth_date",
        winner_value="1980-01-01",
        loser_value="1980-01-10",
    )
    bad = resolve(client, supervisor, conflict_id, {"value": "1980-02-30"})
    assert bad.status_code == 422
    good = resolve(client, supervisor, conflict_id, {"value": "1980-01-10"})
    assert good.status_code == 200
    assert good.get_json()["resolution"]["value"] == "1980-01-10"


def test_moving_a_household_to_a_village_outside_the_regions_is_403(
    client, supervisor, make_conflict, register, rt
):
    conflict_id = make_conflict(
        field="village_code", winner_value=VILLAGE_A1, loser_value=VILLAGE_B1
    )
    response = resolve(client, supervisor, conflict_id, {"choose": "loser"})
    assert response.status_code == 403
    household = household_state(rt, register[VILLAGE_A1]["household"])
    assert household.village_code == VILLAGE_A1


@pytest.mark.parametrize(
    "body,path",
    [
        ({}, "value"),
        ({"value": 1, "choose": "winner"}, "choose"),
        ({"choose": "both"}, "choose"),
        ({"value": 1, "reason": "typo"}, "reason"),
    ],
)
def test_a_resolve_request_needs_exactly_one_of_value_and_choose(
    client, supervisor, make_conflict, body, path
):
    response = resolve(client, supervisor, make_conflict(), body)
    assert response.status_code == 422
    assert [d["path"] for d in response.get_json()["error"]["details"]["errors"]] == [path]


@pytest.mark.parametrize(
    "body,path,named",
    [
        ({}, "value", ['"choose"', '"winner"', '"loser"', '"value"']),
        ({"choice": "winner"}, "choice", ["accepted: choose, value"]),
        ({"chose": "loser"}, "chose", ["accepted: choose, value"]),
        ({"choose": "mine"}, "choose", ["winner", "loser"]),
        ({"value": 1, "choose": "winner"}, "choose", ['"choose" or "value"']),
    ],
    ids=["empty", "misspelt-choice", "misspelt-chose", "unknown-side", "both"],
)
def test_a_refused_resolve_request_names_the_keys_and_words_it_accepts(
    client, supervisor, make_conflict, body, path, named
):
    response = resolve(client, supervisor, make_conflict(), body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    [detail] = error["details"]["errors"]
    assert detail["path"] == path
    for text in named:
        assert text in detail["message"], detail


def test_resolving_to_null_clears_the_field(client, supervisor, make_conflict, register, rt):
    household_id = register[VILLAGE_A1]["household"]
    conflict_id = make_conflict(winner_value=6400.5, loser_value=None)
    response = resolve(client, supervisor, conflict_id, {"choose": "loser"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["resolution"]["value"] is None
    assert household_state(rt, household_id).per_capita_income is None
    with rt.db.unit_of_work(write=False) as session:
        latest = field_changes(session, household_id, "per_capita_income")[-1]
    assert latest.fields == {"per_capita_income": None} and latest.rev == 2
