"""TabletClient against a fake network: login, forms with 304, filling offline, pushing in
persisted batches that survive crashes, results and conflicts, attachments, and paged pulls."""

from __future__ import annotations

import copy
import uuid

import pytest
import requests

from sync_protocol.client import TabletClient
from sync_protocol.client_errors import (
    AttachmentError,
    InvalidSubmission,
    NotLoggedIn,
    ProtocolViolation,
    UnknownForm,
)
from sync_protocol.clock import Hlc
from sync_protocol.messages import PushRequestSchema
from tests.client.conftest import HOUSEHOLD, MEMBERS, visit_answers
from tests.client.fakes import (
    PASSWORD,
    TOKEN,
    Reply,
    error_reply,
    form_hash,
    pulled,
    query,
    request_json,
)

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"
HH_KEY = f"household/{HOUSEHOLD}"


class SimulatedCrash(Exception):
    """The tablet dies here (not a network error: the client must not retry it)."""


def _pull_household(fake, tablet, rev=3, income=18000):
    fake.pull_pages.append(
        fake.page(
            [pulled("household", HOUSEHOLD, rev, {"annual_income": income}, fake.clock())],
            cursor="c1",
        )
    )
    tablet.pull()


# --- login and forms ---------------------------------------------------------------------


def test_login_binds_the_token_to_the_device_and_never_stores_the_password(
    open_tablet, fake, tablet_path
):
    client = open_tablet()
    user = client.login("collector", PASSWORD)
    assert user["username"] == "collector" and user["regions"] == ["990102001001"]
    [sent] = fake.adapter.sent_to("POST", "/api/v1/auth/login")
    assert request_json(sent)["device_id"] == client.device_id
    assert client.status()["logged_in"] is True
    client.close()
    assert PASSWORD.encode() not in tablet_path.read_bytes()


def test_a_refused_login_is_not_logged_in(open_tablet):
    with pytest.raises(NotLoggedIn, match="login refused"):
        open_tablet().login("collector", "wrong")


def test_calls_before_login_say_so(open_tablet):
    client = open_tablet()
    for call in (client.push, client.pull, client.refresh_forms):
        with pytest.raises(NotLoggedIn, match="log in"):
            call()


def test_forms_are_cached_and_refetched_only_when_their_hash_changes(open_tablet, fake):
    client = open_tablet()
    client.login("collector", PASSWORD)
    first = {r.form_id: r for r in client.refresh_forms()}
    assert all(r.fetched for r in first.values())
    assert first["household_visit"].hash == form_hash(fake.definitions["household_visit"])

    again = client.refresh_forms()
    assert not any(r.fetched for r in again)
    conditional = fake.adapter.sent_to("GET", "/api/v1/forms/household_visit")[-1]
    assert conditional.headers["If-None-Match"] == f'"{first["household_visit"].hash}"'

    changed = copy.deepcopy(fake.definitions["household_visit"])
    changed["version"] = 2
    changed["title"] = {"zh": "走访（新）", "en": "Visit (new)"}
    fake.definitions["household_visit"] = changed
    refreshed = {r.form_id: r for r in client.refresh_forms()}
    assert refreshed["household_visit"].fetched and refreshed["household_visit"].version == 2
    assert not refreshed["household_register"].fetched
    assert [f.version for f in client.forms() if f.form_id == "household_visit"] == [2]


def test_a_form_the_server_stops_offering_is_no_longer_current(tablet, fake):
    del fake.definitions["household_register"]
    tablet.refresh_forms()
    assert [f.form_id for f in tablet.forms()] == ["household_visit"]
    with pytest.raises(UnknownForm):
        tablet.fill("household_register", {})


# --- filling offline -----------------------------------------------------------------------


def test_fill_validates_locally_and_keeps_nothing_when_invalid(tablet):
    data = visit_answers(tablet)
    data["annual_income"] = -5
    del data["visit_date"]
    with pytest.raises(InvalidSubmission) as raised:
        tablet.fill("household_visit", data)
    paths = {issue["path"] for issue in raised.value.issues}
    assert {"data.annual_income", "data.visit_date"} <= paths
    assert tablet.outbox() == [] and tablet.entities() == []


def test_fill_refuses_answers_referencing_an_attachment_the_tablet_does_not_hold(tablet):
    data = visit_answers(tablet)
    data["house_photo"] = {**data["house_photo"], "attachment": "sha256:" + "ab" * 32}
    with pytest.raises(AttachmentError):
        tablet.fill("household_visit", data)


def test_fill_stamps_clock_sequence_and_base_revisions_and_shows_the_values_at_once(tablet, fake):
    _pull_household(fake, tablet, rev=3)
    first = tablet.fill("household_visit", visit_answers(tablet, annual_income=30000))
    second = tablet.fill("household_visit", visit_answers(tablet, annual_income=31000))
    a, b = tablet.outbox()
    assert (a.instance_id, b.instance_id) == (first, second)
    assert (a.device_seq, b.device_seq) == (1, 2)
    assert Hlc.parse(b.hlc) > Hlc.parse(a.hlc)
    assert Hlc.parse(a.hlc).node == tablet.device_id
    assert a.base_revs == {HH_KEY: 3}  # members were never pulled: no base revision claimed
    assert a.form_version == 1 and a.state == "pending"
    shown = tablet.entity("household", HOUSEHOLD)
    assert shown.fields["annual_income"] == 31000 and shown.rev == 3
    assert "per_capita_income" in shown.local_fields  # calculated, bound: applied like the server
    member = tablet.entity("member", MEMBERS[0])
    assert member.fields["household_id"] == HOUSEHOLD and member.rev is None


def test_the_outbox_survives_closing_and_reopening(tablet, open_tablet, tablet_path):
    instance_id = tablet.fill("household_visit", visit_answers(tablet))
    tablet.close()
    reopened = open_tablet()
    [entry] = reopened.outbox()
    assert entry.instance_id == instance_id and entry.state == "pending"
    assert entry.data["household_id"] == HOUSEHOLD
    assert reopened.status()["next_device_seq"] == 2


def test_submissions_are_what_the_server_schema_accepts(tablet, fake):
    tablet.fill("household_visit", visit_answers(tablet))
    tablet.push()
    body = request_json(fake.adapter.sent_to("POST", PUSH)[0])
    loaded = PushRequestSchema().load(body)
    assert [item.errors for item in loaded["submissions"]] == [[]]
    assert body["device_id"] == tablet.device_id


# --- push --------------------------------------------------------------------------------


def test_push_sends_gzip_batches_of_at_most_the_batch_size(open_tablet, fake):
    client = open_tablet(batch_size=2)
    client.login("collector", PASSWORD)
    client.refresh_forms()
    ids = [client.fill("household_visit", visit_answers(client)) for _ in range(5)]
    report = client.push()
    pushes = fake.adapter.sent_to("POST", PUSH)
    assert [len(request_json(p)["submissions"]) for p in pushes] == [2, 2, 1]
    assert all(p.headers["Content-Encoding"] == "gzip" for p in pushes)
    assert all(p.headers["Authorization"] == f"Bearer {TOKEN}" for p in pushes)
    sent_ids = [s["instance_id"] for p in pushes for s in request_json(p)["submissions"]]
    assert sent_ids == ids
    assert (report.batches, report.accepted) == (3, 5)
    assert {e.state for e in client.outbox()} == {"accepted"}
    assert client.push().batches == 0  # nothing left


def test_a_batch_the_server_finds_too_large_is_split(open_tablet, fake):
    client = open_tablet()
    client.login("collector", PASSWORD)
    client.refresh_forms()
    ids = [client.fill("household_visit", visit_answers(client)) for _ in range(5)]
    server_push = fake.adapter.routes[("POST", PUSH)]

    def at_most_two(request):
        if len(request_json(request)["submissions"]) > 2:
            return error_reply(413, "too_large", "a batch holds at most 2 submissions")
        return server_push(request)

    fake.adapter.route("POST", PUSH, at_most_two)
    report = client.push()
    sizes = [len(request_json(p)["submissions"]) for p in fake.adapter.sent_to("POST", PUSH)]
    assert sizes == [5, 2, 2, 1]
    assert report.accepted == 5 and [e.state for e in client.outbox()] == ["accepted"] * 5
    sent = [
        s["instance_id"]
        for p in fake.adapter.sent_to("POST", PUSH)[1:]
        for s in request_json(p)["submissions"]
    ]
    assert sent == ids


def test_a_crash_after_sending_resends_the_identical_batch_which_comes_back_duplicate(
    tablet, fake, open_tablet
):
    ids = [tablet.fill("household_visit", visit_answers(tablet)) for _ in range(3)]
    server_push = fake.adapter.routes[("POST", PUSH)]

    def processed_then_crash(request):
        server_push(request)  # the server applies the batch ...
        return SimulatedCrash("power lost before the answer was read")  # ... the tablet dies

    fake.adapter.route("POST", PUSH, processed_then_crash)
    with pytest.raises(SimulatedCrash):
        tablet.push()
    assert {e.state for e in tablet.outbox()} == {"sent"}
    tablet.close()

    fake.adapter.route("POST", PUSH, server_push)
    restarted = open_tablet()
    report = restarted.push()
    first, second = fake.adapter.sent_to("POST", PUSH)
    assert second.body == first.body  # same batch_id, same instance_ids, same bytes
    assert request_json(second)["batch_id"] == request_json(first)["batch_id"]
    assert [s["instance_id"] for s in request_json(second)["submissions"]] == ids
    assert (report.duplicate, report.accepted) == (3, 0)
    assert {e.state for e in restarted.outbox()} == {"duplicate"}


def test_a_crash_before_sending_resends_the_persisted_batch_too(tablet, fake, open_tablet):
    tablet.fill("household_visit", visit_answers(tablet))
    server_push = fake.adapter.routes[("POST", PUSH)]
    fake.adapter.script("POST", PUSH, SimulatedCrash("died while connecting"))
    with pytest.raises(SimulatedCrash):
        tablet.push()
    tablet.fill("household_visit", visit_answers(tablet))  # completed after the crash
    fake.adapter.route("POST", PUSH, server_push)
    restarted = open_tablet()
    report = restarted.push()
    first, second, third = fake.adapter.sent_to("POST", PUSH)
    assert second.body == first.body
    assert len(request_json(third)["submissions"]) == 1  # the new one travels in a new batch
    assert request_json(third)["batch_id"] != request_json(first)["batch_id"]
    assert (report.batches, report.accepted) == (2, 2)


def test_a_lost_answer_is_retried_at_once_with_the_same_bytes(tablet, fake, sleeps):
    tablet.fill("household_visit", visit_answers(tablet))
    server_push = fake.adapter.routes[("POST", PUSH)]

    def processed_then_connection_reset(request):
        server_push(request)
        fake.adapter.route("POST", PUSH, server_push)
        return requests.ConnectionError("connection reset by peer")

    fake.adapter.route("POST", PUSH, processed_then_connection_reset)
    report = tablet.push()
    first, second = fake.adapter.sent_to("POST", PUSH)
    assert first.body == second.body and len(sleeps) == 1
    assert report.duplicate == 1


def test_results_are_kept_rejected_writes_disappear_and_conflicts_are_stored(tablet, fake):
    _pull_household(fake, tablet, rev=3, income=18000)
    good = tablet.fill("household_visit", visit_answers(tablet, annual_income=25000))
    bad = tablet.fill("household_visit", visit_answers(tablet, annual_income=26000))
    conflict = {
        "entity": "household",
        "id": HOUSEHOLD,
        "field": "annual_income",
        "value": 25000,
        "other_value": 24000,
        "winner": "this",
        "conflict_id": str(uuid.uuid4()),
    }
    fake.conflicts_for[good] = [conflict]
    fake.reject.add(bad)
    report = tablet.push()
    assert (report.accepted, report.rejected, report.conflicts) == (1, 1, 1)
    states = {e.instance_id: e for e in tablet.outbox()}
    assert states[good].state == "accepted" and states[good].result["revs"][HH_KEY] == 4
    assert states[bad].state == "rejected"
    assert states[bad].result["errors"][0]["code"] == "out_of_scope"
    assert tablet.entity("household", HOUSEHOLD).fields["annual_income"] == 25000
    assert [c["conflict_id"] for c in tablet.conflicts()] == [conflict["conflict_id"]]
    assert tablet.conflicts()[0]["other_value"] == 24000


def test_push_advances_the_clock_past_the_servers(tablet, fake):
    fake.server_ms += 3_600_000  # the server is an hour ahead of this tablet
    tablet.fill("household_visit", visit_answers(tablet))
    tablet.push()
    later = tablet.fill("household_visit", visit_answers(tablet))
    stamp = Hlc.parse(next(e.hlc for e in tablet.outbox() if e.instance_id == later))
    assert stamp.millis >= fake.server_ms


def test_missing_attachments_are_uploaded_from_the_local_store(tablet, fake):
    data = visit_answers(tablet)
    digest = data["house_photo"]["attachment"]
    fake.missing_attachments = [digest, "sha256:" + "cd" * 32]
    fake.accept_uploads()
    tablet.fill("household_visit", data)
    report = tablet.push()
    assert fake.uploaded == {digest: b"\xff\xd8 a house photo"}
    [put] = fake.adapter.sent_to("PUT", f"/api/v1/attachments/{digest}")
    assert put.headers["Content-Type"] == "application/octet-stream"
    assert report.attachments_uploaded == 1
    assert report.attachments_unavailable == ["sha256:" + "cd" * 32]


def test_an_upload_that_failed_is_retried_by_the_next_push(tablet, fake):
    data = visit_answers(tablet)
    digest = data["house_photo"]["attachment"]
    fake.missing_attachments = [digest]
    fake.adapter.script("PUT", f"/api/v1/attachments/{digest}", error_reply(403, "forbidden"))
    tablet.fill("household_visit", data)
    with pytest.raises(Exception, match="forbidden"):
        tablet.push()
    assert tablet.outbox()[0].state == "accepted"  # the batch itself was processed
    fake.missing_attachments = []
    fake.accept_uploads()
    fake.adapter.route(
        "PUT", f"/api/v1/attachments/{digest}", lambda r: Reply(201, {"attachment": digest})
    )
    assert tablet.push().attachments_uploaded == 1


def test_push_with_an_expired_login_says_not_logged_in(tablet, fake):
    tablet.fill("household_visit", visit_answers(tablet))
    fake.adapter.script("POST", PUSH, error_reply(401, "unauthorized", "token revoked"))
    with pytest.raises(NotLoggedIn, match="token revoked"):
        tablet.push()
    assert tablet.outbox()[0].state == "sent"  # kept for the next push, after logging in


def test_an_answer_for_another_batch_is_a_protocol_violation(tablet, fake):
    tablet.fill("household_visit", visit_answers(tablet))
    fake.adapter.script(
        "POST",
        PUSH,
        Reply(200, {"batch_id": str(uuid.uuid4()), "clock": fake.clock(), "results": []}),
    )
    with pytest.raises(ProtocolViolation):
        tablet.push()
    assert tablet.outbox()[0].state == "sent"


# --- pull --------------------------------------------------------------------------------


def test_pull_pages_until_more_is_false_and_remembers_the_cursor(tablet, fake, open_tablet):
    other = str(uuid.uuid4())
    fake.pull_pages += [
        fake.page(
            [pulled("household", HOUSEHOLD, 1, {"annual_income": 1}, fake.clock())],
            cursor="p1",
            more=True,
        ),
        fake.page([pulled("household", other, 1, {"annual_income": 2}, fake.clock())], cursor="p2"),
    ]
    report = tablet.pull()
    assert (report.pages, report.entities) == (2, 2)
    pulls = fake.adapter.sent_to("GET", PULL)
    assert "cursor" not in query(pulls[0]) and query(pulls[1])["cursor"] == "p1"
    assert query(pulls[0])["limit"] == "500"
    tablet.close()
    open_tablet().pull()
    assert query(fake.adapter.sent_to("GET", PULL)[-1])["cursor"] == "p2"


def test_removed_entities_are_dropped(tablet, fake):
    _pull_household(fake, tablet)
    fake.pull_pages.append(
        fake.page([], cursor="c2", removed=[{"entity": "household", "id": HOUSEHOLD}])
    )
    assert tablet.pull().removed == 1
    assert tablet.entities() == []


def test_resync_required_drops_cursor_and_register_then_pulls_from_scratch(tablet, fake):
    _pull_household(fake, tablet)
    tablet.fill("household_visit", visit_answers(tablet, annual_income=50000))
    fresh = str(uuid.uuid4())
    fake.pull_pages += [
        error_reply(410, "resync_required", "cursor too old"),
        fake.page(
            [pulled("household", fresh, 1, {"annual_income": 7}, fake.clock())], cursor="new"
        ),
    ]
    report = tablet.pull()
    assert report.resynced and report.entities == 1
    second = fake.adapter.sent_to("GET", PULL)[-1]
    assert "cursor" not in query(second)
    # The old household is gone from the pulled register, but the unsent visit still shows.
    old = tablet.entity("household", HOUSEHOLD)
    assert old.rev is None and old.fields["annual_income"] == 50000
    assert tablet.entity("household", fresh).rev == 1


def test_a_second_resync_request_in_one_pull_is_raised(tablet, fake):
    fake.pull_pages += [error_reply(410, "resync_required"), error_reply(410, "resync_required")]
    with pytest.raises(Exception, match="resync_required"):
        tablet.pull()


def test_pull_advances_the_clock(tablet, fake):
    fake.server_ms += 7_200_000
    tablet.pull()
    assert tablet.replica.clock_last.millis >= fake.server_ms


def test_pull_advances_the_clock_past_every_field_clock_too(tablet, fake):
    ahead = Hlc(fake.server_ms + 300_000, 4, "0a1b2c3d-other-device")
    fake.pull_pages.append(
        fake.page(
            [pulled("household", HOUSEHOLD, 2, {"annual_income": 1}, ahead.format())], cursor="c1"
        )
    )
    tablet.pull()
    tablet.fill("household_visit", visit_answers(tablet))
    assert Hlc.parse(tablet.outbox()[0].hlc) > ahead


def test_sync_is_push_then_pull_then_forms(tablet, fake):
    tablet.fill("household_visit", visit_answers(tablet))
    before = len(fake.adapter.sent)
    report = tablet.sync()
    assert report.push.accepted == 1 and report.pull.pages == 1
    paths = [(r.method, r.path_url.split("?")[0]) for r in fake.adapter.sent[before:]]
    assert paths[:3] == [
        ("POST", "/api/v1/sync/push"),
        ("GET", "/api/v1/sync/pull"),
        ("GET", "/api/v1/forms"),
    ]
    assert {form.form_id for form in report.forms} >= {"household_visit"}


def test_status_counts_everything(tablet, fake):
    _pull_household(fake, tablet)
    tablet.fill("household_visit", visit_answers(tablet))
    status = tablet.status()
    assert status["outbox"]["pending"] == 1
    assert status["entities"] == {"household": 1, "member": 3}
    assert status["forms"] == 2 and status["has_pull_cursor"] is True
    assert status["username"] == "collector"


def test_a_batch_size_over_the_protocol_limit_is_refused(tablet_path):
    with pytest.raises(ValueError):
        TabletClient(tablet_path, "http://x", batch_size=501)
