"""Exports stream: rows are read through one read-only unit of work while the body is being sent,
and a client that goes away (the WSGI iterable is closed) ends the query and frees its
connection at once."""

from __future__ import annotations

from server.exports import formats
from server.users.models import Role
from tests.conftest import bearer


def test_closing_the_response_stops_the_export_and_frees_the_connection(
    app, rt, client, create_user_, login, village_households, monkeypatch
):
    monkeypatch.setattr(formats, "CHUNK_ROWS", 1)  # one chunk per row
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    pool = rt.db.engine.pool
    response = client.get("/api/v1/exports/members", headers=bearer(token), buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    header = next(chunks)
    assert header.startswith(b"id,household_id")
    first_row = next(chunks)
    assert first_row.count(b"\r\n") == 1
    assert pool.checkedout() == 1  # the export's read is under way
    response.close()
    assert pool.checkedout() == 0  # …and ended with the response


def test_a_complete_export_frees_its_connection(
    rt, client, create_user_, login, village_households
):
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    response = client.get("/api/v1/exports/members", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_data().count(b"\r\n") == 1 + 3
    assert rt.db.engine.pool.checkedout() == 0
