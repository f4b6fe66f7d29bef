"""Exports stream: rows are read through one read-only unit of work while the body is being sent,
and a client that goes away (the WSGI iterable is closed) ends the query and frees its
connection at once."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import load_workbook

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


def test_an_xlsx_export_streams_and_a_closed_response_ends_its_query(
    app, rt, client, create_user_, login, village_households, monkeypatch
):
    """The workbook's sheet goes out as it is written: bytes of the ZIP arrive while the rows are
    still being read, and closing the response then ends the read."""
    monkeypatch.setattr(formats, "XLSX_CHUNK_ROWS", 1)
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    pool = rt.db.engine.pool
    response = client.get(
        "/api/v1/exports/members?format=xlsx", headers=bearer(token), buffered=False
    )
    assert response.status_code == 200
    chunks = iter(response.response)
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04")  # the sheet member's header, before the last row
    assert b"xl/worksheets/sheet1.xml" in first
    assert pool.checkedout() == 1  # the rows are still being read
    response.close()
    assert pool.checkedout() == 0


def test_a_streamed_xlsx_opens_with_its_rows_and_legend(
    rt, client, create_user_, login, village_households, monkeypatch
):
    monkeypatch.setattr(formats, "XLSX_CHUNK_ROWS", 2)  # several chunks for three members
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    response = client.get("/api/v1/exports/members?format=xlsx", headers=bearer(token))
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
    assert book.sheetnames == ["members", "columns"]
    rows = list(book["members"].iter_rows(values_only=True))
    assert rows[0][:2] == ("成员ID", "农户ID")
    assert len(rows) == 1 + 3
    assert all(row[0] for row in rows[1:])
    legend = list(book["columns"].iter_rows(values_only=True))
    assert legend[1][:2] == ("members", "id")
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as package:
        assert package.testzip() is None
        assert package.namelist().count("xl/worksheets/sheet1.xml") == 1
    assert rt.db.engine.pool.checkedout() == 0


@pytest.mark.parametrize(
    ("per_sheet", "sheets"), [(2, ["members", "members (2)"]), (3, ["members"])]
)
def test_xlsx_rows_past_a_sheets_limit_continue_on_the_next_sheet(
    rt, client, create_user_, login, village_households, monkeypatch, per_sheet, sheets
):
    """Excel holds 1,048,576 rows a sheet: the rows past it go on `<dataset> (2)`, … (here with a
    limit of 2 or 3 rows for three members; a full last sheet is not followed by an empty one)."""
    monkeypatch.setattr(formats, "XLSX_SHEET_ROWS", per_sheet)
    monkeypatch.setattr(formats, "XLSX_CHUNK_ROWS", 1)
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    response = client.get("/api/v1/exports/members?format=xlsx", headers=bearer(token))
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
    assert book.sheetnames == [*sheets, "columns"]
    ids: list[str] = []
    for name in sheets:
        header, *rows = list(book[name].iter_rows(values_only=True))
        assert header[0] == "成员ID"
        assert 0 < len(rows) <= per_sheet
        ids += [str(row[0]) for row in rows]
    assert len(ids) == len(set(ids)) == 3
    assert rt.db.engine.pool.checkedout() == 0
