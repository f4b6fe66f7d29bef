"""Identity numbers and phones in stored submissions and in the quarantine are kept as ciphertext
and mask, shown masked, revealed only to `REVEAL_ROLES` with an audit entry; and nothing of a
submission or a file crosses a region because someone knows its id or digest."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text

from forms.bundled import load_sample_answers
from server import migrate
from server.app import create_app
from server.attachments.models import AttachmentHolder
from server.audit.models import AuditEntry
from server.sensitive import SensitiveCodec
from server.submissions.models import Submission
from server.submissions.payload import (
    MARK,
    looks_sensitive,
    masked_text,
    protect_submission_row,
    shown_payload,
)
from server.users.models import Role
from sync_protocol.clock import Hlc
from sync_protocol.messages import submission_fingerprint
from tests.conftest import COUNTY, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, VILLAGE_B1, bearer
from tests.sync.helpers import (
    HOUSEHOLD_A,
    HOUSEHOLD_B,
    MEMBER_B,
    SAMPLE,
    Tablet,
    load_register,
    visit,
)

REGISTER = load_sample_answers("household_register")
ID_A = "45280219780312001X"
ID_B = "452802198005210028"
PHONE = "13907711234"
OLD_ID = "452802780312001"  # the 15-digit form
CLEAR = (ID_A, ID_B, PHONE, OLD_ID, "4528021978031200")


@pytest.fixture
def people(client, rt, create_user_):
    """Collectors of village A1 (township A) and B1 (township B) with tablets; supervisors of
    each township and of the county; an admin."""
    load_register(rt)
    create_user_("collector_a", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("collector_b", Role.COLLECTOR, [VILLAGE_B1])
    create_user_("supervisor_a", Role.SUPERVISOR, [TOWNSHIP_A])
    create_user_("supervisor_b", Role.SUPERVISOR, [TOWNSHIP_B])
    create_user_("county", Role.SUPERVISOR, [COUNTY])
    return Tablet.login(client, "collector_a"), Tablet.login(client, "collector_b")


def registration(village: str = VILLAGE_A1, **first_member: object) -> dict:
    """A new household registered with two members whose identity numbers and phone are set."""
    data = copy.deepcopy(REGISTER)
    members = data["members"][:2]  # type: ignore[index]
    members[0].update(member_id=str(uuid.uuid4()), id_number=ID_A, phone=PHONE, **first_member)
    members[1].update(member_id=str(uuid.uuid4()), id_number=ID_B)
    data.update(household_id=str(uuid.uuid4()), village_code=village, members=members)
    return data


def stored_rows(rt) -> list[Submission]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(Submission)))


def stored_text(row: Submission) -> str:
    return json.dumps(
        [row.payload, row.errors, row.result, row.quarantine_reason, row.form_id, row.hlc],
        ensure_ascii=False,
    )


def audits(rt, action: str = "reveal_sensitive") -> list[AuditEntry]:
    with rt.db.unit_of_work(write=False) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def quarantined_items(tablet: Tablet) -> list[dict]:
    """A rejected registration whose error quotes a phone typed into a choice, an item of an
    unknown form and one too broken to read, each holding identity numbers or phones."""
    bad_choice = tablet.submission(
        registration(relation=PHONE), form_id="household_register", version=1
    )
    unknown_form = tablet.submission(
        {"note": f"身份证{ID_B}，旧证{OLD_ID}", "numbers": [13907711234], ID_A: "key"},
        form_id="no_such_form",
    )
    broken = {
        "instance_id": str(uuid.uuid4()),
        "form_id": f"x{ID_A}",
        "hlc": f"{PHONE}-1",
        "phone": PHONE,
    }
    return [bad_choice, unknown_form, broken]


# --- stored payloads ------------------------------------------------------------------------------


def test_no_identity_number_or_phone_is_stored_in_clear_and_resends_are_still_recognised(
    people, rt
):
    tablet, _ = people
    accepted = tablet.submission(registration(), form_id="household_register")
    # An identity number with a typo is not found by its shape, but the form binds it.
    typo = registration()
    typo["members"][1]["id_number"] = "4528021978031200"
    rejected = tablet.submission(typo, form_id="household_register")
    items = [accepted, rejected, *quarantined_items(tablet)]
    first = tablet.push(items).get_json()["results"]
    assert [r["status"] for r in first] == ["accepted", *["rejected"] * 4]

    rows = stored_rows(rt)
    assert len(rows) == 5
    for row in rows:
        assert not any(value in stored_text(row) for value in CLEAR), stored_text(row)
    by_id = {str(row.instance_id): row for row in rows}
    kept = by_id[accepted["instance_id"]].payload["data"]["members"][0]
    assert kept["id_number"][MARK] == "id_number"
    assert kept["id_number"]["masked"] == "4528**********001X"
    assert kept["phone"]["masked"] == "139****1234"
    assert kept["id_number"]["hash"] == rt.codec.lookup_hash("id_number", ID_A)
    # Idempotency is decided on what was sent: the fingerprint of the raw item.
    assert by_id[accepted["instance_id"]].content_hash == submission_fingerprint(accepted)
    again = tablet.push(items).get_json()["results"]
    assert [r["status"] for r in again] == ["duplicate", *["rejected"] * 4]
    assert again[0]["revs"] == first[0]["revs"]
    assert len(stored_rows(rt)) == 5


def test_a_stored_payload_reveals_exactly_what_was_sent_and_nothing_else_opens_it(rt):
    codec = rt.codec
    raw: dict[str, Any] = {
        "instance_id": str(uuid.uuid4()),
        "data": {
            "text": f"tel：{PHONE}\x00",
            "n": 452802197803120011,
            "full_width": "４５２８０２１９７８０３１２００１Ｘ",
            "lone": "\ud800" + ID_B,
            "photo": {"attachment": "sha256:" + "1" * 64},
            "household_no": "4528021010010037",
            "forged": {MARK: "text", "masked": "x", "cipher": "AAAA"},
        },
    }
    row = {
        "instance_id": raw["instance_id"],
        "payload": raw,
        "errors": [],
        "result": {},
        "quarantine_reason": None,
    }
    stored = protect_submission_row(codec, {}, row)["payload"]
    data = stored["data"]
    assert data["photo"] == raw["data"]["photo"]
    assert data["household_no"] == "4528021010010037"  # 16 digits: neither kind
    assert data["forged"][MARK] == "text" and data["forged"]["cipher"] != "AAAA"
    assert not any(looks_sensitive(json.dumps(v)) for v in data.values() if "cipher" not in v)
    assert shown_payload(codec, stored, raw["instance_id"], reveal=True).payload == raw
    masked = shown_payload(codec, stored, raw["instance_id"], reveal=False).payload
    assert masked["data"]["n"] == "4528**********0011"
    assert masked["data"]["text"] == "tel：139****1234\x00"
    # A ciphertext is bound to its submission and to the key.
    other = shown_payload(codec, stored, uuid.uuid4(), reveal=True)
    assert other.revealed == [] and other.payload == masked
    stranger = SensitiveCodec(b"another key" * 3)
    assert shown_payload(stranger, stored, raw["instance_id"], reveal=True).revealed == []
    # A row stored in clear (before protection existed) is masked too, and revealing it counts.
    old = {"data": {PHONE: f"证{ID_B}"}}
    assert shown_payload(codec, old, uuid.uuid4(), reveal=False).payload == {
        "data": {"139****1234": "证4528**********0028"}
    }
    assert shown_payload(codec, old, uuid.uuid4(), reveal=True).revealed == ["text", "text"]


# --- the quarantine -------------------------------------------------------------------------------


def test_the_quarantine_shows_sensitive_values_masked_and_audits_every_reveal(
    people, client, login, rt
):
    tablet, _ = people
    items = quarantined_items(tablet)
    tablet.push(items)
    token = bearer(login("supervisor_a"))

    listing = client.get("/api/v1/submissions/quarantine", headers=token)
    assert listing.status_code == 200
    body = listing.get_data(as_text=True)
    assert not any(value in body for value in CLEAR), body
    shown = {row["instance_id"]: row for row in listing.get_json()["submissions"]}
    assert len(shown) == 3 and listing.get_json()["revealed"] is False
    bad_choice = shown[items[0]["instance_id"]]
    assert bad_choice["payload"]["data"]["members"][0]["id_number"] == "4528**********001X"
    assert "139****1234" in bad_choice["errors"][0]["message"]  # the error quotes the mask
    assert audits(rt) == []

    revealed = client.get(
        "/api/v1/submissions/quarantine?reveal=sensitive",
        headers=token,
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert revealed.status_code == 200 and revealed.get_json()["revealed"] is True
    rows = {row["instance_id"]: row for row in revealed.get_json()["submissions"]}
    assert rows[items[0]["instance_id"]]["payload"] == items[0]
    assert rows[items[1]["instance_id"]]["payload"] == items[1]
    assert rows[items[2]["instance_id"]]["payload"] == items[2]
    # Error texts stay masked: the payload is where the values are revealed.
    assert PHONE not in json.dumps(rows[items[0]["instance_id"]]["errors"])
    entries = audits(rt)
    assert {e.object_id for e in entries} == {i["instance_id"] for i in items}
    with rt.db.unit_of_work(write=False) as session:
        supervisor = session.execute(text("SELECT id FROM users WHERE username = 'supervisor_a'"))
        supervisor_id = supervisor.scalar_one()
    for entry in entries:
        assert entry.object_type == "submission"
        assert entry.user_id == supervisor_id and entry.address == "10.1.2.3"
        assert entry.at is not None and entry.details["fields"]


def test_a_role_outside_reveal_roles_sees_the_quarantine_masked_and_may_not_reveal(
    people, settings, rt
):
    tablet, _ = people
    tablet.push(quarantined_items(tablet))
    narrow = create_app(dataclasses.replace(settings, reveal_roles=("admin",)))
    try:
        client = narrow.test_client()
        login = client.post(
            "/api/v1/auth/login",
            json={"username": "supervisor_a", "password": "correct-horse-battery"},
        )
        token = bearer(login.get_json()["token"])
        listing = client.get("/api/v1/submissions/quarantine", headers=token)
        assert listing.status_code == 200 and len(listing.get_json()["submissions"]) == 3
        assert not any(value in listing.get_data(as_text=True) for value in CLEAR)
        refused = client.get("/api/v1/submissions/quarantine?reveal=sensitive", headers=token)
        assert refused.status_code == 403
        assert (
            client.get("/api/v1/submissions/quarantine?reveal=1", headers=token).status_code == 422
        )
    finally:
        narrow.extensions["fieldsync"].db.dispose()
    assert audits(rt) == []


def test_existing_rows_are_protected_by_the_upgrade_and_a_second_run_changes_nothing(
    people, db_url, rt, client, login
):
    tablet, _ = people
    items = quarantined_items(tablet)
    tablet.push(items)
    with rt.db.unit_of_work() as session:
        # As the server stored them before protection existed: verbatim.
        for item in items:
            row = session.get(Submission, uuid.UUID(item["instance_id"]))
            row.payload = item
            row.quarantine_reason = f"not a valid choice here: '{PHONE}'"
        session.execute(delete(AttachmentHolder))
    rt.db.dispose()
    migrate.downgrade(db_url, "0006")
    migrate.upgrade(db_url, data_key=rt.settings.data_key_bytes)
    for row in stored_rows(rt):
        assert not any(value in stored_text(row) for value in CLEAR), stored_text(row)
    first = {str(row.instance_id): row.payload for row in stored_rows(rt)}
    migrate.downgrade(db_url, "0006")
    migrate.upgrade(db_url, data_key=rt.settings.data_key_bytes)
    assert {str(row.instance_id): row.payload for row in stored_rows(rt)} == first
    revealed = client.get(
        "/api/v1/submissions/quarantine?reveal=sensitive", headers=bearer(login("county"))
    ).get_json()
    assert {r["instance_id"]: r["payload"] for r in revealed["submissions"]} == {
        item["instance_id"]: item for item in items
    }


def test_the_protect_command_protects_rows_stored_in_clear_and_then_has_nothing_to_do(
    people, rt, cli
):
    tablet, _ = people
    items = quarantined_items(tablet)
    tablet.push(items)
    with rt.db.unit_of_work() as session:
        clear = session.get(Submission, uuid.UUID(items[1]["instance_id"]))
        clear.payload = items[1]  # as an old worker of a rolling deploy would have stored it
    first = cli("submissions", "protect")
    assert first.exit_code == 0 and first.output == "submissions: 1 protected\n"
    for row in stored_rows(rt):
        assert not any(value in stored_text(row) for value in CLEAR), stored_text(row)
    assert cli("submissions", "protect").output == "submissions: 0 protected\n"


# --- nothing crosses a region by knowing an id ----------------------------------------------


def test_resending_another_regions_submission_reveals_nothing_of_it(people, client, rt):
    tablet_a, tablet_b = people
    # Two edits of one field from two of A's tablets, the second one stale: a conflict.
    base = {f"household/{HOUSEHOLD_A}": 1}
    other_a = Tablet.login(client, "collector_a")
    first = other_a.submission(visit(annual_income=21000), base_revs=base)
    tablet_a.clock.observe(Hlc.parse(first["hlc"]))
    assert other_a.push([first]).get_json()["results"][0]["status"] == "accepted"
    stale = tablet_a.submission(visit(annual_income=23000), base_revs=base)
    rejected = tablet_a.submission(visit(annual_income=-1))
    own = tablet_a.push([stale, rejected]).get_json()["results"]
    assert own[0]["status"] == "accepted" and own[0]["conflicts"]
    assert own[1]["status"] == "rejected"

    foreign = tablet_b.push([stale, rejected]).get_json()["results"]
    assert foreign == [
        {"instance_id": stale["instance_id"], "status": "duplicate"},
        {"instance_id": rejected["instance_id"], "status": "duplicate"},
    ]
    # The sender itself still gets its answer back.
    again = tablet_a.push([stale, rejected]).get_json()["results"]
    assert again[0]["status"] == "duplicate" and again[0]["revs"] == own[0]["revs"]
    assert again[0]["conflicts"] == own[0]["conflicts"]
    assert again[1] == own[1]
    assert len(stored_rows(rt)) == 3


def test_the_same_collector_on_another_tablet_gets_a_bare_duplicate(people, client, rt):
    tablet_a, _ = people
    item = tablet_a.submission(visit(annual_income=21000))
    tablet_a.push([item])
    other_tablet = Tablet.login(client, "collector_a")
    [result] = other_tablet.push([item]).get_json()["results"]
    assert result == {"instance_id": item["instance_id"], "status": "duplicate"}


def test_a_digest_from_another_region_neither_opens_the_file_nor_says_it_exists(
    people, client, login, rt
):
    tablet_a, tablet_b = people
    photo = b"\xff\xd8 the house of household A \xff\xd9"
    digest = "sha256:" + hashlib.sha256(photo).hexdigest()
    ref = {"attachment": digest, "filename": "house.jpg", "content_type": "image/jpeg"}
    url = f"/api/v1/attachments/{digest}"
    pushed_a = tablet_a.push([tablet_a.submission(visit(house_photo=ref))]).get_json()
    assert pushed_a["missing_attachments"] == [digest]
    upload = client.put(url, data=photo, headers={**tablet_a.headers, "Content-Type": "image/jpeg"})
    assert upload.status_code == 201

    # B names A's photo in a visit of its own household: accepted, but the server says it lacks
    # the file (as for any file B never uploaded) and B's supervisors cannot open it.
    member_b = {**SAMPLE["members"][0], "member_id": str(MEMBER_B)}  # type: ignore[index]
    pushed_b = tablet_b.push(
        [tablet_b.submission(visit(HOUSEHOLD_B, members=[member_b], house_photo=ref))]
    ).get_json()
    assert pushed_b["results"][0]["status"] == "accepted", pushed_b
    assert pushed_b["missing_attachments"] == [digest]
    supervisor_b = bearer(login("supervisor_b"))
    response = client.get(url, headers=supervisor_b, buffered=True)
    assert response.status_code == 404
    never = client.get(url[:-4] + "0000", headers=supervisor_b)
    assert response.get_json()["error"]["message"] == never.get_json()["error"]["message"]
    assert client.get(url, headers=bearer(login("supervisor_a")), buffered=True).status_code == 200

    # A's own re-upload is not new to A; and B learns nothing from an upload either: the first
    # time B sends bytes, they are new to B, whoever sent them before.
    again_a = client.put(url, data=photo, headers=tablet_a.headers)
    assert again_a.status_code == 200 and again_a.get_json()["created"] is False
    # A collector that really has the bytes proves it by uploading them: then B's reference counts.
    upload_b = client.put(url, data=photo, headers=tablet_b.headers)
    assert upload_b.status_code == 201 and upload_b.get_json()["created"] is True
    assert client.get(url, headers=supervisor_b, buffered=True).status_code == 200


# --- the rule, on any document --------------------------------------------------------------------

_CODEC = SensitiveCodec(b"a test data key of 32 bytes ...!")
_SENSITIVE_TEXTS = st.sampled_from(
    [ID_A, ID_B, PHONE, OLD_ID, "１３９０７７１１２３４", f"tel:{PHONE}", f"证{ID_B}号"]
)
_TEXTS = st.one_of(st.text(max_size=30), _SENSITIVE_TEXTS, st.just(MARK))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(_TEXTS, children, max_size=4))


_DOCUMENTS = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.sampled_from([13907711234, 452802197803120011]),
        st.floats(allow_nan=False, allow_infinity=False),
        _TEXTS,
    ),
    _containers,
    max_leaves=20,
)


@hypothesis_settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(document=st.dictionaries(_TEXTS, _DOCUMENTS, max_size=5))
def test_any_document_is_stored_without_a_clear_value_and_revealed_exactly(document):
    instance_id = str(uuid.uuid4())
    row = {
        "instance_id": instance_id,
        "payload": document,
        "errors": [{"message": json.dumps(document, ensure_ascii=False)}],
        "result": {},
        "quarantine_reason": None,
    }
    stored = protect_submission_row(_CODEC, {}, row)

    def clear_parts(value, inside_marker=False):
        if isinstance(value, dict):
            # A marker the server made; an object that merely has such keys (a document may)
            # is protected as a whole, and its masked copy is walked like any other object.
            if MARK in value and "cipher" in value and "masked" in value:
                yield from clear_parts(value["masked"], True)
                return
            for key, element in value.items():
                yield key
                yield from clear_parts(element, inside_marker)
        elif isinstance(value, list):
            for element in value:
                yield from clear_parts(element, inside_marker)
        elif isinstance(value, str):
            yield value
        elif isinstance(value, int) and not isinstance(value, bool):
            yield str(value)

    for part in clear_parts([stored["payload"], stored["errors"]]):
        assert not looks_sensitive(part), part
    shown = shown_payload(_CODEC, stored["payload"], instance_id, reveal=True)
    assert shown.payload == document
    masked = shown_payload(_CODEC, stored["payload"], instance_id, reveal=False).payload
    assert not any(looks_sensitive(part) for part in clear_parts(masked))


@pytest.mark.parametrize("depth", [70, 600, 950])
def test_a_deeply_nested_payload_is_protected_without_recursion_errors(depth):
    document = json.loads("[" * depth + json.dumps(f"tel {PHONE}") + "]" * depth)
    instance_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        "instance_id": instance_id,
        "payload": {"data": document},
        "errors": [],
        "result": {},
        "quarantine_reason": None,
    }
    stored = protect_submission_row(_CODEC, {}, row)
    assert PHONE not in repr(stored)
    masked = shown_payload(_CODEC, stored["payload"], instance_id, reveal=False)
    assert PHONE not in repr(masked.payload)
    if depth < 900:  # deeper than that only the ciphertext keeps it (no one can show it anyway)
        revealed = shown_payload(_CODEC, stored["payload"], instance_id, reveal=True)
        assert revealed.payload == row["payload"]


# How people write these numbers by hand: grouped by spaces or dashes.
WRITTEN = {
    "139-0771-1234": "139****1234",
    "139 0771 1234": "139****1234",
    "452802 19780312 001X": "4528**********001X",
    "452802-19800521-0028": "4528**********0028",
}


def test_numbers_grouped_by_spaces_or_dashes_or_long_name_are_not_kept_in_clear(
    people, client, login, rt
):
    tablet, _ = people
    note = (
        "户主"
        + "，".join(f"电话{written}" for written in WRITTEN)
        + "，办事日期2024-11-18 13907711234"
    )
    accepted = tablet.submission(visit(helper_observations=note))
    # Too long for the field, so quarantined.
    long_name = tablet.submission(
        visit(
            visitor_name=f"本户申请人本人居民身份证号码 {ID_B[:6]} {ID_B[6:14]} {ID_B[14:]}，"
            "代写人联系电话 139 0771 1234"
        )
    )
    results = tablet.push([accepted, long_name]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]

    clear = [*WRITTEN, ID_B, PHONE]
    for row in stored_rows(rt):
        assert not any(value in stored_text(row) for value in clear), stored_text(row)
    listing = client.get("/api/v1/submissions/quarantine", headers=bearer(login("supervisor_a")))
    assert listing.status_code == 200
    assert not any(value in listing.get_data(as_text=True) for value in clear)
    # Dates and other short groups of digits are not taken for a number.
    masked = listing.get_json()["submissions"][0]["payload"]["data"]["visitor_name"]
    assert masked == "本户申请人本人居民身份证号码 4528**********0028，代写人联系电话 139****1234"
    for written, mask in WRITTEN.items():
        assert masked_text(f"电话{written}。") == f"电话{mask}。"
    assert masked_text("2024-11-18 至 2024-12-01，编号 12-3456-7890") == (
        "2024-11-18 至 2024-12-01，编号 12-3456-7890"
    )
    # Reveal gives back exactly what was sent.
    revealed = client.get(
        "/api/v1/submissions/quarantine?reveal=sensitive", headers=bearer(login("supervisor_a"))
    )
    assert revealed.get_json()["submissions"][0]["payload"] == long_name
    # The same items sent again are recognised.
    again = tablet.push([accepted, long_name]).get_json()["results"]
    assert [r["status"] for r in again] == ["duplicate", "rejected"]
    assert len(stored_rows(rt)) == 2


def test_a_number_right_after_a_control_character_is_not_kept_in_clear(people, client, login, rt):
    tablet, _ = people
    # JSON writes a NUL as `\u0000`: its zeros must not hide the number that follows.
    in_value = tablet.submission(visit(helper_observations=f"户主\x00{ID_B}\x1f{PHONE}"))
    in_key = {**tablet.submission(visit()), f"\x00{ID_A}": 1}
    results = tablet.push([tablet.submission(visit()), in_value, in_key]).get_json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected"]

    rows = {str(row.instance_id): row for row in stored_rows(rt)}
    for item in (in_value, in_key):
        text = stored_text(rows[item["instance_id"]])
        assert not any(value in text for value in CLEAR), text
    listing = client.get("/api/v1/submissions/quarantine", headers=bearer(login("supervisor_a")))
    assert listing.status_code == 200
    assert not any(value in listing.get_data(as_text=True) for value in CLEAR)
    assert masked_text('["\\u00004528021978031200' + '1X"]') == '["\\u00004528**********001X"]'
