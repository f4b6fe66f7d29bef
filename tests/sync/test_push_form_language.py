"""Issue 13's form language additions end to end, on both databases: an admin publishes a form
with time, barcode, range step, repeat count, geotrace, geoshape, rank, audio and labels in
French; a tablet downloads it with every language and pushes submissions that are accepted when
right and rejected with the right path and code when wrong."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from server.households.models import Household
from server.users.models import Role
from tests.conftest import VILLAGE_A1, bearer
from tests.sync.helpers import HOUSEHOLD_A, Tablet, load_register

FORM: dict[str, Any] = {
    "form_id": "field_survey",
    "title": {"zh": "田野调查", "en": "Field survey", "fr": "Enquête de terrain"},
    "entities": [{"name": "hh", "type": "household", "id_field": "household_id", "create": False}],
    "fields": [
        {"name": "household_id", "type": "text", "required": True},
        {
            "name": "meter",
            "type": "barcode",
            "label": {"zh": "电表条码", "en": "Meter barcode", "fr": "Code-barres du compteur"},
            "max_length": 64,
            "bind": "hh.address",
        },
        {"name": "arrived", "type": "time", "min": "06:00", "max": "21:00"},
        {"name": "plots", "type": "integer", "min": 0, "max": 4},
        {"name": "share", "type": "decimal", "min": 0, "max": 1, "step": 0.05},
        {
            "name": "plot",
            "type": "repeat",
            "count": "${plots}",
            "fields": [{"name": "outline", "type": "geoshape", "required": True}],
        },
        {"name": "path", "type": "geotrace"},
        {
            "name": "needs",
            "type": "rank",
            "choices": [
                {"code": "water", "label": {"zh": "水", "en": "Water", "fr": "Eau"}},
                {"code": "road", "label": {"zh": "路", "en": "Road", "fr": "Route"}},
                {"code": "school", "label": {"zh": "学校", "en": "School", "fr": "École"}},
            ],
        },
        {"name": "voice", "type": "attachment", "media": "audio"},
    ],
}
SHAPE = "26.1 107.5 0 3;26.1 107.6 0 3;26.2 107.6 0 3;26.1 107.5 0 3"
RECORDING = b"#!AMR\n a short recording"
DIGEST = "sha256:" + hashlib.sha256(RECORDING).hexdigest()


def answers(**changed: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "household_id": str(HOUSEHOLD_A),
        "meter": "6901234567892",
        "arrived": "09:30:00.000+08:00",
        "plots": 2,
        "share": 0.35,
        "plot": [{"outline": SHAPE}, {"outline": SHAPE}],
        "path": "26.1 107.5 0 3;26.12 107.52 0 3",
        "needs": "road water school",
        "voice": {"attachment": DIGEST, "filename": "voice.amr", "content_type": "audio/amr"},
    }
    data.update(changed)
    return data


@pytest.fixture
def tablet(client, rt, create_user_, login):
    load_register(rt)
    create_user_("admin", Role.ADMIN)
    admin = bearer(login("admin"))
    created = client.post("/api/v1/forms", json=FORM, headers=admin)
    assert created.status_code == 201, created.get_json()
    published = client.post("/api/v1/forms/field_survey/publish", headers=admin)
    assert published.status_code == 200, published.get_json()
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return Tablet.login(client, "collector")


def test_the_form_api_returns_every_label_language(tablet, client):
    response = client.get("/api/v1/forms/field_survey", headers=tablet.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == FORM["title"]
    assert body["fields"][1]["label"]["fr"] == "Code-barres du compteur"
    assert body["fields"][7]["choices"][2]["label"] == {"zh": "学校", "en": "School", "fr": "École"}
    assert body["fields"][4]["step"] == 0.05
    assert body["fields"][5]["count"] == "${plots}"
    listing = client.get("/api/v1/forms", headers=tablet.headers).get_json()["forms"]
    assert [f["title"] for f in listing if f["form_id"] == "field_survey"] == [FORM["title"]]


def test_a_new_forms_listing_keeps_its_title_languages_before_publishing():
    from server.forms.service import _title

    title = {"zh": "甲", "en": "A", "fr": "A", "Not A Tag": "x", "de": 5}
    assert _title({"title": title}) == {"zh": "甲", "en": "A", "fr": "A"}


def test_a_right_submission_is_accepted_binds_the_barcode_and_asks_for_the_audio(
    tablet, client, rt
):
    first = tablet.push([tablet.submission(answers(), form_id="field_survey")]).get_json()
    assert first["results"][0]["status"] == "accepted", first
    assert first["missing_attachments"] == [DIGEST]
    with rt.db.unit_of_work(write=False) as session:
        household = session.get(Household, HOUSEHOLD_A)
        assert household is not None and household.address == "6901234567892"
    upload = client.put(
        f"/api/v1/attachments/{DIGEST}",
        data=RECORDING,
        headers={**tablet.headers, "Content-Type": "audio/amr"},
    )
    assert upload.status_code == 201


@pytest.mark.parametrize(
    ("changed", "path", "code"),
    [
        ({"arrived": "25:00"}, "data.arrived", "invalid_time"),
        ({"arrived": "05:59"}, "data.arrived", "below_min"),
        ({"share": 0.33}, "data.share", "off_step"),
        ({"plots": 3}, "data.plot", "too_few_repeats"),
        ({"plots": 1}, "data.plot", "too_many_repeats"),
        ({"plot": [{"outline": SHAPE}, {"outline": "26.1 107.5;26.2 107.6"}]}, None, None),
        ({"path": "26.1 107.5"}, "data.path", "invalid_geotrace"),
        ({"needs": "road water"}, "data.needs", "invalid_rank"),
        ({"needs": "road water school jobs"}, "data.needs", "invalid_choice"),
        (
            {"voice": {"attachment": DIGEST, "filename": "v.jpg", "content_type": "image/jpeg"}},
            "data.voice",
            "invalid_attachment",
        ),
        ({"meter": 6901234567892}, "data.meter", "invalid_type"),
    ],
)
def test_a_wrong_submission_is_rejected_with_path_and_code(
    tablet, changed: dict[str, Any], path: str | None, code: str | None
):
    if path is None:  # the open shape inside the second plot
        path, code = "data.plot[1].outline", "invalid_geoshape"
    submission = tablet.submission(answers(**changed), form_id="field_survey")
    result = tablet.push([submission]).get_json()["results"][0]
    assert result["status"] == "rejected"
    assert [(e["path"], e["code"]) for e in result["errors"]] == [(path, code)]
    assert uuid.UUID(result["instance_id"]) == uuid.UUID(submission["instance_id"])
