"""The tablet's SQLite file: identity and clock that survive restarts, transactions that leave no
trace when they fail, and the local register's view of server state plus unconfirmed writes."""

from __future__ import annotations

import sqlite3

import pytest

from sync_protocol import local_register
from sync_protocol.clock import Hlc
from sync_protocol.local_register import LocalEntity, LocalWrite
from sync_protocol.replica import Replica
from tests.client.fakes import pulled

HH = "6f1c2a4e-8b0d-4c3e-9a51-2d7e8f901a01"
SERVER_CLOCK = "1763795400000-00000-server"


def test_device_id_is_made_once_and_survives_reopening(tmp_path):
    with Replica(tmp_path / "t.db") as first:
        device = first.device_id
    with Replica(tmp_path / "t.db") as again:
        assert again.device_id == device
    with Replica(tmp_path / "other.db") as other:
        assert other.device_id != device


def test_clock_never_goes_backwards_across_restarts_even_when_the_wall_clock_does(tmp_path):
    with (
        Replica(tmp_path / "t.db", physical_time_ms=lambda: 2_000_000) as replica,
        replica.transaction(),
    ):
        first = replica.stamp()
        second = replica.stamp()
    assert second > first
    with (
        Replica(tmp_path / "t.db", physical_time_ms=lambda: 1_000_000) as restarted,
        restarted.transaction(),
    ):
        third = restarted.stamp()
    assert third > second
    assert third.node == restarted.device_id


def test_an_observed_server_clock_is_persisted(tmp_path):
    ahead = Hlc(9_000_000_000_000, 7, "server")
    with (
        Replica(tmp_path / "t.db", physical_time_ms=lambda: 1_000) as replica,
        replica.transaction(),
    ):
        replica.observe(ahead)
    with Replica(tmp_path / "t.db", physical_time_ms=lambda: 1_000) as replica:
        assert replica.clock_last is not None and replica.clock_last > ahead
        with replica.transaction():
            assert replica.stamp() > ahead


def test_a_failed_step_leaves_no_trace_not_even_a_used_clock_or_sequence(tmp_path):
    with Replica(tmp_path / "t.db", physical_time_ms=lambda: 5_000) as replica:
        with pytest.raises(RuntimeError), replica.transaction():
            replica.stamp()
            replica.next_device_seq()
            replica.set_meta("pull_cursor", "abc")
            raise RuntimeError("crash")
        assert replica.clock_last is None
        assert replica.get_meta("pull_cursor") is None
        with replica.transaction():
            assert replica.next_device_seq() == 1


def test_transactions_do_not_nest(tmp_path):
    with Replica(tmp_path / "t.db") as replica, replica.transaction():
        nested = replica.transaction()
        with pytest.raises(RuntimeError):
            nested.__enter__()


def test_attachments_are_stored_once_by_digest(tmp_path):
    with Replica(tmp_path / "t.db") as replica, replica.transaction():
        first = replica.add_attachment(b"photo", "a.jpg", "image/jpeg")
        again = replica.add_attachment(b"photo", "b.jpg", "image/jpeg")
        assert first == again
        assert first.digest.startswith("sha256:") and len(first.digest) == 71
        assert replica.require_upload([first.digest, "sha256:" + "0" * 64]) == [
            "sha256:" + "0" * 64
        ]
        assert replica.attachments_to_upload() == [first.digest]


# --- the local register ------------------------------------------------------------------


@pytest.fixture
def conn(tmp_path):
    with Replica(tmp_path / "t.db") as replica, replica.transaction() as connection:
        yield connection


def _find(conn: sqlite3.Connection, entity: str, entity_id: str) -> LocalEntity:
    shown = local_register.find_entity(conn, entity, entity_id)
    assert shown is not None
    return shown


def _stamp(millis: int, node: str = "tablet") -> Hlc:
    return Hlc(millis, 0, node)


def test_pulled_state_is_shown_as_sent(conn: sqlite3.Connection):
    local_register.store_pulled(
        conn, pulled("household", HH, 3, {"annual_income": 100}, SERVER_CLOCK)
    )
    shown = _find(conn, "household", HH)
    assert shown is not None
    assert (shown.rev, shown.fields, shown.local_fields) == (3, {"annual_income": 100}, ())
    assert shown.clocks == {"annual_income": SERVER_CLOCK}


def test_a_local_write_is_shown_at_once_and_a_pull_does_not_hide_it(conn):
    local_register.store_pulled(
        conn, pulled("household", HH, 3, {"annual_income": 100}, SERVER_CLOCK)
    )
    later = _stamp(1763795500000)
    local_register.record_writes(
        conn, "i1", later, [LocalWrite("household", HH, "annual_income", 200)]
    )
    assert _find(conn, "household", HH).fields["annual_income"] == 200
    # Someone else's older write arrives by pull: the unconfirmed later local write still shows.
    local_register.store_pulled(
        conn, pulled("household", HH, 4, {"annual_income": 150, "helper": "x"}, SERVER_CLOCK)
    )
    shown = _find(conn, "household", HH)
    assert shown.fields == {"annual_income": 200, "helper": "x"}
    assert shown.local_fields == ("annual_income",) and shown.rev == 4


def test_a_newer_server_value_wins_over_an_older_local_write_as_it_will_on_the_server(conn):
    local_register.record_writes(
        conn, "i1", _stamp(1763795300000), [LocalWrite("household", HH, "annual_income", 200)]
    )
    local_register.store_pulled(
        conn, pulled("household", HH, 5, {"annual_income": 999}, SERVER_CLOCK)
    )
    shown = _find(conn, "household", HH)
    assert shown.fields["annual_income"] == 999 and shown.local_fields == ()


def test_acknowledged_writes_stay_until_a_pull_reaches_the_reported_revision(conn):
    local_register.store_pulled(
        conn, pulled("household", HH, 3, {"annual_income": 100}, SERVER_CLOCK)
    )
    local_register.record_writes(
        conn, "i1", _stamp(1763795500000), [LocalWrite("household", HH, "annual_income", 200)]
    )
    local_register.acknowledge_writes(conn, "i1", {f"household/{HH}": 4})
    assert _find(conn, "household", HH).fields["annual_income"] == 200
    # The confirmed state arrives; the server may have decided differently (a later write won).
    later = "1763795600000-00000-other"
    local_register.store_pulled(conn, pulled("household", HH, 5, {"annual_income": 300}, later))
    shown = _find(conn, "household", HH)
    assert shown.fields["annual_income"] == 300 and shown.local_fields == ()
    assert conn.execute("SELECT count(*) FROM local_writes").fetchone()[0] == 0


def test_an_acknowledged_write_the_tablet_already_holds_the_revision_of_is_dropped_at_once(conn):
    local_register.store_pulled(
        conn, pulled("household", HH, 7, {"annual_income": 100}, SERVER_CLOCK)
    )
    local_register.record_writes(
        conn, "i1", _stamp(1763795500000), [LocalWrite("household", HH, "annual_income", 200)]
    )
    local_register.acknowledge_writes(conn, "i1", {f"household/{HH}": 7})
    assert _find(conn, "household", HH).fields["annual_income"] == 100


def test_rejected_writes_disappear_and_the_server_state_shows_again(conn):
    local_register.store_pulled(
        conn, pulled("household", HH, 3, {"annual_income": 100}, SERVER_CLOCK)
    )
    local_register.record_writes(
        conn, "i1", _stamp(1763795500000), [LocalWrite("household", HH, "annual_income", 200)]
    )
    local_register.discard_writes(conn, "i1")
    assert _find(conn, "household", HH).fields["annual_income"] == 100


def test_an_entity_created_on_the_tablet_is_shown_without_a_revision(conn):
    local_register.record_writes(
        conn,
        "i1",
        _stamp(1763795500000),
        [LocalWrite("household", HH, "village_code", "990102001001")],
    )
    shown = _find(conn, "household", HH)
    assert shown.rev is None and shown.fields == {"village_code": "990102001001"}
    assert [e.id for e in local_register.list_entities(conn, "household")] == [HH]
    assert local_register.list_entities(conn, "member") == []


def test_removed_entities_go_but_unconfirmed_writes_stay_for_the_outbox(conn):
    local_register.store_pulled(
        conn, pulled("household", HH, 3, {"annual_income": 100}, SERVER_CLOCK)
    )
    local_register.record_writes(
        conn, "i1", _stamp(1763795500000), [LocalWrite("household", HH, "helper", "y")]
    )
    local_register.remove_entity(conn, "household", HH)
    shown = _find(conn, "household", HH)
    assert shown is not None and shown.rev is None and shown.fields == {"helper": "y"}


def test_a_pull_never_goes_back_to_an_older_revision(conn):
    local_register.store_pulled(
        conn, pulled("household", HH, 5, {"annual_income": 500}, SERVER_CLOCK)
    )
    local_register.store_pulled(
        conn, pulled("household", HH, 4, {"annual_income": 400}, SERVER_CLOCK)
    )
    assert _find(conn, "household", HH).rev == 5
