"""The reference client against the real server over real HTTP, on SQLite and PostgreSQL: a visit
reaches the register; three offline tablets converge whatever the order they sync in, losing
nothing; scope holds both ways; a lost push answer is re-sent and applied once."""

from __future__ import annotations

import copy
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select
from werkzeug.serving import make_server

from forms.bindings import derive_register_updates
from forms.bundled import load_bundled_form, load_sample_answers
from server.auth.actor import system_actor
from server.changes.models import Change
from server.conflicts.models import Conflict
from server.forms.library import install_bundled_forms
from server.households.loading import NewHousehold, load_households
from server.households.models import Household
from server.submissions.models import Submission
from server.users.models import Role
from server.users.service import grant_region, revoke_region
from sync_protocol.client import TabletClient
from sync_protocol.clock import Hlc
from sync_protocol.merge import canonical_value
from sync_protocol.tablet_cli import cli
from sync_protocol.tablet_samples import sample_answers
from sync_protocol.transport import RetryPolicy
from tests.conftest import PASSWORD, TOWNSHIP_A, VILLAGE_A1, VILLAGE_A2, VILLAGE_B1
from tests.patience import PATIENCE, wait_until

SAMPLE = load_sample_answers("household_visit")
VISIT = load_bundled_form("household_visit")


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


HH1, HH2, HH3, HH4 = _ids(4)  # HH1, HH2 in village A1; HH3 in A2; HH4 in B1
M1A, M1B, M2A, M3A, M4A = _ids(5)
MEMBERS_OF = {HH1: [M1A, M1B], HH2: [M2A], HH3: [M3A], HH4: [M4A]}


@pytest.fixture
def register(rt, regions) -> None:
    """The bundled forms, and four households loaded at revision 1."""
    adults = [("黄志强", "1978-03-12", "male"), ("覃美兰", "1980-05-21", "female")]
    households = []
    for (household_id, village), number in zip(
        [(HH1, VILLAGE_A1), (HH2, VILLAGE_A1), (HH3, VILLAGE_A2), (HH4, VILLAGE_B1)],
        itertools.count(1),
        strict=False,
    ):
        members = [
            (
                uuid.UUID(member_id),
                {
                    "name": name,
                    "birth_date": born,
                    "sex": sex,
                    "relation": "head" if i == 0 else "spouse",
                },
            )
            for i, (member_id, (name, born, sex)) in enumerate(
                zip(MEMBERS_OF[household_id], adults, strict=False)
            )
        ]
        households.append(
            NewHousehold(
                uuid.UUID(household_id),
                {
                    "village_code": village,
                    "household_no": f"{number:03d}",
                    "category": "lifted",
                    "head_member_id": MEMBERS_OF[household_id][0],
                    "annual_income": 18000,
                },
                members,
            )
        )
    stamp = Hlc(int(time.time() * 1000) - 60_000, 0, "server").format()
    with rt.db.unit_of_work() as session:
        install_bundled_forms(session, system_actor())
        load_households(session, rt.codec, households, clock=stamp)


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The real WSGI app served over HTTP on a free port, in a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=PATIENCE)
        server.server_close()


TabletFactory = Callable[..., TabletClient]


@pytest.fixture
def open_tablet(tmp_path, live_server) -> Iterator[TabletFactory]:
    """`open_tablet(name, username=None, **options)`: a tablet file `<name>.db` on the live
    server, logged in as `username` (if given) with the forms fetched."""
    opened: list[TabletClient] = []

    def factory(name: str, username: str | None = None, **options: Any) -> TabletClient:
        options.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=0.01))
        client = TabletClient(tmp_path / f"{name}.db", live_server, **options)
        opened.append(client)
        if username is not None:
            client.login(username, PASSWORD)
            client.refresh_forms()
        return client

    yield factory
    for client in opened:
        client.close()


def visit(
    client: TabletClient,
    household_id: str,
    *,
    annual_income: float,
    insured: dict[str, bool] | None = None,
    members: list[str] | None = None,
) -> dict[str, Any]:
    """A household_visit of `household_id` seeing `members` (default: all of them; each insured
    as `insured` says, else as in the sample), its photo registered on the tablet."""
    data = copy.deepcopy(SAMPLE)
    data["household_id"] = household_id
    data["annual_income"] = annual_income
    members = MEMBERS_OF[household_id] if members is None else members
    data["members"] = [
        {**row, "member_id": member_id, "insured": (insured or {}).get(member_id, row["insured"])}
        for row, member_id in zip(SAMPLE["members"][:2], members, strict=False)  # type: ignore[index]
    ]
    data["house_photo"] = client.add_attachment(
        f"photo of {household_id}".encode(), filename="house.jpg", content_type="image/jpeg"
    )
    return data


def admin_session(live_server: str, create_user_) -> requests.Session:
    create_user_("auditor", Role.ADMIN)
    token = requests.post(
        f"{live_server}/api/v1/auth/login",
        json={"username": "auditor", "password": PASSWORD},
        timeout=PATIENCE,
    ).json()["token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def server_household(session: requests.Session, live_server: str, household_id: str) -> Any:
    response = session.get(f"{live_server}/api/v1/households/{household_id}", timeout=PATIENCE)
    assert response.status_code == 200, response.text
    return response.json()


def open_conflicts(session: requests.Session, live_server: str) -> list[Any]:
    """Every open conflict, through GET /api/v1/conflicts (paged)."""
    found: list[Any] = []
    while True:
        response = session.get(
            f"{live_server}/api/v1/conflicts",
            params={"status": "open", "limit": "200", "offset": str(len(found))},
            timeout=PATIENCE,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["conflicts"]
        if len(found) >= page["total"] or not page["conflicts"]:
            return found


def register_fields(
    session: requests.Session, live_server: str, household_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """`"<entity>/<id>"` → fields, for these households and their members, from the server."""
    fields = {}
    for household_id in household_ids:
        body = server_household(session, live_server, household_id)
        fields[f"household/{household_id}"] = body["fields"]
        for member in body["members"]:
            fields[f"member/{member['id']}"] = member["fields"]
    return fields


def count(rt, model, *where) -> int:
    with rt.db.unit_of_work(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _register_differences(
    tablet: TabletClient, server: requests.Session, live_server: str, household_ids: list[str]
) -> list[str]:
    shown = {(e.entity, e.id): e for e in tablet.entities()}
    expected: dict[tuple[str, str], Any] = {}
    for household_id in household_ids:
        body = server_household(server, live_server, household_id)
        expected[("household", household_id)] = body
        for member in body["members"]:
            expected[("member", member["id"])] = member
    differences = [f"only on the tablet: {key}" for key in set(shown) - set(expected)]
    differences += [f"missing on the tablet: {key}" for key in set(expected) - set(shown)]
    for key in set(shown) & set(expected):
        local, body = shown[key], expected[key]
        if (local.rev, local.deleted, local.local_fields, local.fields) != (
            body["rev"],
            body["deleted"],
            (),
            body["fields"],
        ):
            differences.append(
                f"{key}: tablet rev {local.rev} {local.fields} "
                f"(unconfirmed {local.local_fields}), server {body}"
            )
    return differences


# A pull serves changes below the PostgreSQL visibility horizon, which is cluster-wide: any write
# transaction still running anywhere on the cluster (other test databases included) holds back
# what a pull may serve. The protocol promises "never skips", not read-your-writes, so a tablet
# may need another pull to see a change committed just before.


def assert_same_as_server(
    tablet: TabletClient, server: requests.Session, live_server: str, household_ids: list[str]
) -> None:
    """The tablet's register holds exactly these households and their members, each as the
    server has it (revision, deletion, every field), with no unconfirmed local value left —
    pulling again while a change is still held back by the visibility horizon."""
    differences: list[str] = []

    def settled() -> bool:
        nonlocal differences
        differences = _register_differences(tablet, server, live_server, household_ids)
        if differences:
            tablet.pull()
        return not differences

    wait_until(settled, what="the tablet's register settling", details=lambda: str(differences))


# --- (a) one tablet, one visit --------------------------------------------------------------


def test_a_visit_filled_offline_reaches_the_server_register(
    register, open_tablet, create_user_, live_server
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    tablet = open_tablet("ana", "ana")
    assert {f.form_id for f in tablet.forms()} >= {"household_visit", "household_register"}
    first = tablet.pull()
    assert first.entities == 5  # HH1, HH2 and their three members: village A1 only
    assert tablet.entity("household", HH1).rev == 1

    instance_id = tablet.fill(
        "household_visit", visit(tablet, HH1, annual_income=23456, insured={M1B: False})
    )
    report = tablet.sync()
    assert (report.push.accepted, report.push.rejected) == (1, 0)
    assert report.push.attachments_uploaded == 1  # the server asked for the photo; it got it
    [entry] = tablet.outbox()
    assert entry.instance_id == instance_id and entry.state == "accepted"

    server = admin_session(live_server, create_user_)
    body = server_household(server, live_server, HH1)
    assert body["rev"] == 2
    assert body["fields"]["annual_income"] == 23456
    assert body["fields"]["per_capita_income"] == round(23456 / 3, 2)
    members = {m["id"]: m["fields"] for m in body["members"]}
    assert members[M1B]["insured"] is False and members[M1A]["health"] == "chronic"
    assert_same_as_server(tablet, server, live_server, [HH1, HH2])
    photo = server.get(
        f"{live_server}/api/v1/attachments/{entry.data['house_photo']['attachment']}",
        timeout=PATIENCE,
    )
    assert photo.status_code == 200 and photo.content == f"photo of {HH1}".encode()


def test_a_household_registered_on_the_tablet_is_created_and_comes_back_from_the_server(
    register, open_tablet, create_user_, live_server
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    tablet = open_tablet("ana", "ana")
    tablet.pull()
    data = sample_answers(tablet, "household_register")  # fresh ids, village A1
    new_id = str(data["household_id"])
    tablet.fill("household_register", data)
    created = tablet.entity("household", new_id)
    assert created is not None and created.rev is None and created.local_fields

    report = tablet.sync()
    assert report.push.accepted == 1, tablet.outbox()[0].result
    server = admin_session(live_server, create_user_)
    body = server_household(server, live_server, new_id)
    assert body["fields"]["village_code"] == VILLAGE_A1 and len(body["members"]) == 3
    assert_same_as_server(tablet, server, live_server, [HH1, HH2, new_id])


# --- (b) three offline tablets, every order ------------------------------------------------


class SteppingClock:
    """A tablet's wall clock, `offset_ms` from real time and moving 1 ms per reading, so the
    three tablets' stamps order the same way in every run (all within the allowed skew)."""

    def __init__(self, offset_ms: int) -> None:
        self.now = int(time.time() * 1000) + offset_ms

    def __call__(self) -> int:
        self.now += 1
        return self.now


Edit = tuple[str, float, dict[str, bool]]


def _edits() -> dict[str, list[Edit]]:
    """Per tablet, the visits it makes offline: (household, annual income, insured by member;
    the members visited are those named).

    HH1's income is written by all three (T2 twice); M1A's `insured` by T1 (true) and T2 (false);
    M1B's by all three (false, false, true); HH2's income by T1 and T3 with the same value;
    HH3 only by T2.
    """
    return {
        "t1": [(HH1, 20000, {M1A: True, M1B: False}), (HH2, 15000, {M2A: True})],
        "t2": [
            (HH1, 21000, {M1A: False, M1B: False}),
            (HH1, 21500, {M1A: False, M1B: False}),
            (HH3, 9000, {M3A: True}),
        ],
        "t3": [(HH1, 22000, {M1B: True}), (HH2, 15000, {M2A: False})],
    }


@pytest.mark.parametrize("order", list(itertools.permutations(["t1", "t2", "t3"])), ids="-".join)
def test_three_offline_tablets_converge_in_every_sync_order_and_lose_nothing(
    order, register, open_tablet, create_user_, live_server, rt
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("bo", Role.COLLECTOR, [TOWNSHIP_A])
    users = {"t1": "ana", "t2": "bo", "t3": "ana"}
    # T1 < T2 < T3 in clock order, all ahead of the server by less than MAX_CLOCK_SKEW.
    clocks = {
        "t1": SteppingClock(60_000),
        "t2": SteppingClock(120_000),
        "t3": SteppingClock(180_000),
    }
    tablets = {name: open_tablet(name, users[name], clock=clocks[name]) for name in users}
    for tablet in tablets.values():
        tablet.pull()

    # Offline: every tablet fills its visits; nothing is sent yet.
    written: list[tuple[str, str, str, Hlc, Any]] = []  # (entity key, field, device, hlc, value)
    instance_ids = []
    for name, edits in _edits().items():
        tablet = tablets[name]
        for household_id, income, insured in edits:
            data = visit(
                tablet, household_id, annual_income=income, insured=insured, members=list(insured)
            )
            instance_ids.append(tablet.fill("household_visit", data))
            entry = tablet.outbox()[-1]
            for update in derive_register_updates(VISIT, data):
                for field_name, value in update.fields.items():
                    written.append(
                        (
                            f"{update.type}/{update.id}",
                            field_name,
                            tablet.device_id,
                            Hlc.parse(entry.hlc),
                            value,
                        )
                    )

    for name in order:
        report = tablets[name].sync()
        assert report.push.rejected == 0, tablets[name].outbox()
    for name in order:  # the final round: everyone hears about everyone
        assert tablets[name].sync().push.batches == 0

    server = admin_session(live_server, create_user_)
    assert_same_as_server(tablets["t1"], server, live_server, [HH1, HH2])
    assert_same_as_server(tablets["t3"], server, live_server, [HH1, HH2])
    assert_same_as_server(tablets["t2"], server, live_server, [HH1, HH2, HH3])

    # Last writer wins by clock, whatever the order: T3's income for HH1, T2's `insured` for M1A,
    # T3's for M1B and M2A.
    hh1 = server_household(server, live_server, HH1)
    assert hh1["fields"]["annual_income"] == 22000
    members = {m["id"]: m["fields"] for m in hh1["members"]}
    assert (members[M1A]["insured"], members[M1B]["insured"]) == (False, True)
    hh2 = server_household(server, live_server, HH2)
    assert hh2["fields"]["annual_income"] == 15000
    assert hh2["members"][0]["fields"]["insured"] is False

    # Every submission stored exactly once, all accepted.
    with rt.db.unit_of_work(write=False) as session:
        stored = session.execute(select(Submission.instance_id, Submission.status)).all()
    assert sorted(str(i) for i, _ in stored) == sorted(instance_ids)
    assert {status.value for _, status in stored} == {"accepted"}

    # Nothing lost: every value that is not the final one is the loser of an open conflict,
    # unless the same device replaced it later itself (it had seen it).
    recorded = open_conflicts(server, live_server)
    assert count(rt, Conflict) == len(recorded)  # the API lists every conflict, all open
    reported = {c["conflict_id"] for tablet in tablets.values() for c in tablet.conflicts()}
    assert reported and reported <= {c["id"] for c in recorded}
    lost = {
        (f"{c['entity']}/{c['entity_id']}", c["field"], canonical_value(c["loser"]["value"]))
        for c in recorded
    }
    final = register_fields(server, live_server, [HH1, HH2, HH3])
    for key, field_name, _, hlc, value in written:  # each field: the write with the latest clock
        latest = max(h for k, f, _, h, _ in written if (k, f) == (key, field_name))
        if hlc == latest:
            assert canonical_value(final[key][field_name]) == canonical_value(value), (
                key,
                field_name,
            )
    required = set()
    for key, field_name, device, hlc, value in written:
        if canonical_value(value) == canonical_value(final[key][field_name]):
            continue
        replaced_by_itself = any(
            k == key and f == field_name and d == device and h > hlc for k, f, d, h, _ in written
        )
        if not replaced_by_itself:
            required.add((key, field_name, canonical_value(value)))
    assert required, "the scenario must produce conflicts"
    assert required <= lost, sorted(required - lost)
    ours = set(instance_ids)
    for c in recorded:  # both sides name real writes: a submission of ours, or the import
        for side in (c["winner"], c["loser"]):
            assert side["instance_id"] in ours or (
                side["instance_id"] is None and side["clock"].endswith("-server")
            )


# --- (c) scope ---------------------------------------------------------------------------


def test_a_collector_never_receives_households_outside_its_regions_and_edits_to_them_are_rejected(
    register, open_tablet, create_user_, live_server, rt
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("wei", Role.COLLECTOR, [VILLAGE_B1])
    outsider = open_tablet("wei", "wei")
    outsider.pull()
    assert {e.id for e in outsider.entities("household")} == {HH4}

    # Someone in A1 edits HH1; the B1 tablet's next pull still brings nothing of A1.
    insider = open_tablet("ana", "ana")
    insider.fill("household_visit", visit(insider, HH1, annual_income=30000))
    insider.sync()
    assert outsider.pull().entities == 0
    assert {e.id for e in outsider.entities()} == {HH4, M4A}

    # The B1 tablet edits HH1 (it knows the id from elsewhere) and its own HH4 in one batch.
    foreign = outsider.fill("household_visit", visit(outsider, HH1, annual_income=1))
    own = outsider.fill("household_visit", visit(outsider, HH4, annual_income=12345))
    report = outsider.sync()
    assert (report.push.batches, report.push.accepted, report.push.rejected) == (1, 1, 1)
    results = {e.instance_id: e for e in outsider.outbox()}
    assert results[own].state == "accepted"
    assert results[foreign].state == "rejected"
    # docs/sync-protocol.md documents `forbidden` as the item code (ItemErrorCode has
    # OUT_OF_SCOPE for this, unused: reported to the lead).
    codes = {error["code"] for error in results[foreign].result["errors"]}
    assert codes == {"forbidden"}, results[foreign].result
    assert outsider.entity("household", HH1) is None  # its rejected write is no longer shown
    assert {e.id for e in outsider.entities()} == {HH4, M4A}

    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, uuid.UUID(HH1))
        assert household is not None and float(household.annual_income or 0) == 30000
        quarantined = session.get(Submission, uuid.UUID(foreign))
        assert quarantined is not None and quarantined.status.value == "rejected"


def test_the_tablet_follows_scope_changes_dropping_and_receiving_whole_households(
    register, open_tablet, create_user_, live_server, rt
):
    create_user_("bo", Role.COLLECTOR, [TOWNSHIP_A])
    tablet = open_tablet("bo", "bo")
    tablet.pull()
    assert {e.id for e in tablet.entities("household")} == {HH1, HH2, HH3}

    with rt.db.unit_of_work() as session:
        revoke_region(session, "bo", TOWNSHIP_A)
        grant_region(session, "bo", VILLAGE_A2)
    report = tablet.pull()
    assert report.removed == 5  # HH1, HH2 and their three members
    assert {e.id for e in tablet.entities()} == {HH3, M3A}

    with rt.db.unit_of_work() as session:
        grant_region(session, "bo", VILLAGE_A1)
    tablet.pull()  # HH1 and HH2 did not change, yet they come back
    assert {e.id for e in tablet.entities("household")} == {HH1, HH2, HH3}
    server = admin_session(live_server, create_user_)
    assert_same_as_server(tablet, server, live_server, [HH1, HH2, HH3])


def test_a_cursor_the_server_cannot_honour_makes_the_tablet_pull_from_scratch(
    register, open_tablet, create_user_, live_server
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("bo", Role.COLLECTOR, [TOWNSHIP_A])
    ana, bo = open_tablet("ana", "ana"), open_tablet("bo", "bo")
    ana.pull()
    bo.pull()
    with bo.replica.transaction():  # e.g. a restored backup of another user's tablet
        bo.replica.set_meta("pull_cursor", ana.replica.get_meta("pull_cursor"))
    report = bo.pull()
    assert report.resynced and report.entities == 7
    assert {e.id for e in bo.entities("household")} == {HH1, HH2, HH3}


# --- (d) crash and resume ------------------------------------------------------------------


class LoseAnswers(HTTPAdapter):
    """A real HTTP adapter that, for the next `count` pushes, lets the server process the
    request and then throws its answer away, raising `error` instead."""

    def __init__(self, error: Callable[[], Exception]) -> None:
        super().__init__()
        self.error = error
        self.count = 0
        self.pushes: list[bytes] = []

    def send(self, request, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        if request.method == "POST" and request.path_url.startswith("/api/v1/sync/push"):
            self.pushes.append(request.body)
            if self.count > 0:
                self.count -= 1
                raise self.error()
        return response


class SimulatedCrash(Exception):
    """The tablet died after the server answered, before it read the answer."""


def _tablet_with(open_tablet, name: str, adapter: HTTPAdapter, **options: Any) -> TabletClient:
    session = requests.Session()
    session.mount("http://", adapter)
    client: TabletClient = open_tablet(name, "ana", session=session, **options)
    return client


def test_a_lost_push_answer_is_retried_and_answered_duplicate_nothing_applied_twice(
    register, open_tablet, create_user_, live_server, rt
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    adapter = LoseAnswers(lambda: requests.ConnectionError("connection reset by peer"))
    tablet = _tablet_with(open_tablet, "ana", adapter)
    tablet.pull()
    tablet.fill("household_visit", visit(tablet, HH1, annual_income=31000))
    tablet.fill("household_visit", visit(tablet, HH2, annual_income=32000))
    changes_before = count(rt, Change)

    adapter.count = 1
    report = tablet.push()
    assert len(adapter.pushes) == 2 and adapter.pushes[0] == adapter.pushes[1]
    assert (report.duplicate, report.accepted) == (2, 0)
    applied = count(rt, Change)
    assert applied > changes_before
    assert count(rt, Submission) == 2
    server = admin_session(live_server, create_user_)
    body = server_household(server, live_server, HH1)
    assert (body["rev"], body["fields"]["annual_income"]) == (2, 31000)  # applied once
    assert_same_as_server(tablet, server, live_server, [HH1, HH2])
    assert count(rt, Change) == applied


def test_a_tablet_that_crashed_before_reading_the_answer_resends_after_restart(
    register, open_tablet, create_user_, live_server, rt
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    adapter = LoseAnswers(lambda: SimulatedCrash("battery died"))
    tablet = _tablet_with(open_tablet, "ana", adapter)
    tablet.pull()
    ids = [
        tablet.fill("household_visit", visit(tablet, HH1, annual_income=income))
        for income in (41000, 42000)
    ]
    adapter.count = 1
    with pytest.raises(SimulatedCrash):
        tablet.push()
    applied = count(rt, Change)
    conflicts = count(rt, Conflict)
    assert count(rt, Submission) == 2
    tablet.close()

    restarted = _tablet_with(open_tablet, "ana", LoseAnswers(SimulatedCrash))
    report = restarted.push()
    assert (report.batches, report.duplicate) == (1, 2)
    assert [e.instance_id for e in restarted.outbox()] == ids
    assert {e.state for e in restarted.outbox()} == {"duplicate"}
    assert count(rt, Change) == applied and count(rt, Conflict) == conflicts
    assert count(rt, Submission) == 2
    restarted.pull()
    shown = restarted.entity("household", HH1)
    assert shown is not None and shown.fields["annual_income"] == 42000


# --- the command line, end to end ---------------------------------------------------------


def test_the_command_line_tablet_logs_in_fills_a_sample_visit_and_syncs(
    register, create_user_, live_server, tmp_path
):
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    runner = CliRunner()
    base = ["--db", str(tmp_path / "cli.db"), "--server", live_server]

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(cli, [*base, *args], input=stdin, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "logged in as ana (collector)" in run(
        "login", "ana", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert "household_visit v1 updated" in run("forms")
    assert "unchanged" in run("forms")
    assert "5 entities" in run("pull")
    assert HH1 in run("show")
    assert "completed household_visit v1" in run(
        "fill", "household_visit", "--sample", "--household", HH1
    )
    synced = run("sync")
    assert "1 accepted" in synced and "1 attachment(s) uploaded" in synced
    assert "accepted" in run("show", "--outbox")
    assert M1A in run("show", "--members")
    assert "outbox: pending 0, sent 0, accepted 1" in run("status")
    run("conflicts")

    refused = runner.invoke(
        cli, [*base, "fill", "household_visit", "--sample", "--household", str(uuid.uuid4())]
    )
    assert refused.exit_code == 0  # the tablet cannot know; the server will refuse it
    rejected = runner.invoke(cli, [*base, "sync"])
    assert "1 rejected" in rejected.output


def test_a_new_tablet_can_sync_and_fill_a_sample_visit_without_naming_a_household(
    register, create_user_, live_server, tmp_path
):
    # The README's walk-through: log in, sync (which also fetches the forms), fill, sync.
    create_user_("ana", Role.COLLECTOR, [VILLAGE_A1])
    runner = CliRunner()
    base = ["--db", str(tmp_path / "new.db"), "--server", live_server]

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("login", "ana", "--password", PASSWORD)
    assert "downloaded" in run("sync")
    run("fill", "household_visit", "--sample")
    assert "1 accepted" in run("sync")
