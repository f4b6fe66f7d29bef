"""Requests at the edges of what the OpenAPI description allows get a documented 4xx, never a 500:
ids no object can have, numbers past the database's columns, text PostgreSQL cannot store, empty
and non-ASCII query values. Each was a 500 on SQLite or PostgreSQL before."""

from __future__ import annotations

import json

import pytest

from server.auth.actor import system_actor
from server.forms.library import install_bundled_forms
from server.users.models import Role
from tests.conftest import COUNTY, bearer

JSON = "application/json"


@pytest.fixture
def admin(client, create_user_, login):
    create_user_("admin", Role.ADMIN)
    return bearer(login("admin"))


@pytest.fixture
def supervisor(client, create_user_, login):
    create_user_("supervisor", Role.SUPERVISOR, regions=[COUNTY])
    return bearer(login("supervisor"))


@pytest.fixture
def published(rt):
    with rt.db.unit_of_work() as session:
        install_bundled_forms(session, system_actor())


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/v1/forms/a%00b"),
        ("get", "/api/v1/forms/a%00b/versions"),
        ("get", "/api/v1/forms/a%00b/versions/1"),
        ("get", "/api/v1/forms/a%00b/diff?from=1&to=2"),
        ("get", "/api/v1/forms/a%00b/draft"),
        ("post", "/api/v1/forms/a%00b/draft/validate"),
        ("post", "/api/v1/forms/a%00b/publish"),
        ("post", "/api/v1/forms/a%00b/retire"),
        ("get", "/api/v1/forms/Household_Visit"),
        ("get", "/api/v1/forms/" + "x" * 300),
    ],
)
def test_a_form_id_no_form_can_have_is_404(client, admin, method, path):
    response = getattr(client, method)(path, headers=admin)
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["error"]["code"] == "not_found"


def test_replacing_the_draft_of_an_impossible_form_id_is_404(client, admin):
    response = client.put("/api/v1/forms/a%00b/draft", json={}, headers=admin)
    assert response.status_code == 404


@pytest.mark.parametrize("version", ["0", "2147483648", "99999999999999999999"])
def test_a_version_number_past_the_column_names_no_version(client, admin, published, version):
    response = client.get(f"/api/v1/forms/household_visit/versions/{version}", headers=admin)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "query,path",
    [
        ("from=1", "to"),
        ("from=1&to=", "to"),
        ("from=1&to=99999999999999999999", "to"),
        ("from=%C2%B2&to=1", "from"),  # "²" is a digit to str.isdigit, not to int()
        ("from=0&to=1", "from"),
    ],
)
def test_diff_arguments_are_checked_with_422(client, admin, published, query, path):
    response = client.get(f"/api/v1/forms/household_visit/diff?{query}", headers=admin)
    assert response.status_code == 422, response.get_json()
    assert [e["path"] for e in response.get_json()["error"]["details"]["errors"]] == [path]


@pytest.mark.parametrize("body", [{"version": 99999999999999999999}, {"version": "one"}, {"x": 1}])
def test_retire_arguments_are_checked_with_422(client, admin, published, body):
    response = client.post("/api/v1/forms/household_visit/retire", json=body, headers=admin)
    assert response.status_code == 422, response.get_json()


@pytest.mark.parametrize("listing", ["households/flagged", "submissions/quarantine"])
@pytest.mark.parametrize(
    "query", ["offset=99999999999999999999999", "offset=%C2%B2", "limit=", "offset="]
)
def test_listing_arguments_past_the_columns_or_not_ascii_are_422(
    client, supervisor, listing, query
):
    response = client.get(f"/api/v1/{listing}?{query}", headers=supervisor)
    assert response.status_code == 422, response.get_json()


@pytest.mark.parametrize("text", ["a\u0000b", "a\ud800b"])
@pytest.mark.parametrize("how", ["create", "replace"])
def test_a_draft_with_text_that_cannot_be_stored_is_422(client, admin, text, how):
    body = {"form_id": "probe_form", "title": {"en": text}, "fields": []}
    raw = json.dumps(body)  # ASCII escapes: "\ud800" arrives as a lone surrogate
    if how == "replace":
        created = client.post("/api/v1/forms", json={**body, "title": {"en": "ok"}}, headers=admin)
        assert created.status_code == 201
        response = client.put(
            "/api/v1/forms/probe_form/draft", data=raw, content_type=JSON, headers=admin
        )
    else:
        response = client.post("/api/v1/forms", data=raw, content_type=JSON, headers=admin)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"]["errors"][0]["path"] == "title.en"


def test_a_username_longer_than_any_account_is_refused_with_422(client):
    response = client.post("/api/v1/auth/login", json={"username": "u" * 65, "password": "x"})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["errors"][0]["path"] == "username"
