"""Forms imported from XLSForm loops and search() files, taken through the real app end to end:
uploaded, published, and answered by a tablet's push — accepted when right, rejected with the
path and code of what is wrong."""

from __future__ import annotations

import io
from typing import Any

import pytest

from server.users.models import Role
from tests.conftest import VILLAGE_A1, bearer
from tests.forms.test_form_xlsform_loops import FRUITS_CSV, crop_form, search_form


@pytest.fixture
def admin(client: Any, create_user_: Any, login: Any) -> dict[str, str]:
    create_user_("admin", Role.ADMIN)
    return bearer(login("admin"))


def _upload(
    client: Any, admin: dict[str, str], content: bytes, files: dict[str, bytes] | None = None
) -> Any:
    data: dict[str, Any] = {"file": (io.BytesIO(content), "form.xlsx")}
    if files:
        data["choices_file"] = [(io.BytesIO(b), name) for name, b in files.items()]
    return client.post(
        "/api/v1/forms/import/xlsform",
        headers=admin,
        data=data,
        content_type="multipart/form-data",
    )


def _push(rt: Any, client: Any, create_user_: Any, form_id: str, answers: list[dict[str, Any]]):
    from tests.sync.helpers import Tablet, load_register

    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    tablet = Tablet.login(client, "collector")
    response = tablet.push([tablet.submission(a, form_id=form_id) for a in answers])
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def test_answers_to_an_imported_loop_are_checked_through_push(
    rt: Any, client: Any, admin: dict[str, str], create_user_: Any
) -> None:
    upload = _upload(client, admin, crop_form())
    assert upload.status_code == 201, upload.get_json()
    assert any(w["row"] == 3 and "expanded" in w["message"] for w in upload.get_json()["warnings"])
    assert client.post("/api/v1/forms/crops_survey/publish", headers=admin).status_code == 200

    right = {"n_crops": 2, "crop_loop_maize_area": 1.5, "crop_loop_rice_area": 0.5}
    wrong = {"n_crops": 2, "crop_loop_maize_area": 1.5, "crop_loop_rice_area": -2}
    results = _push(rt, client, create_user_, "crops_survey", [right, wrong])

    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert [(e["path"], e["code"]) for e in results[1]["errors"]] == [
        ("data.crop_loop_rice_area", "constraint_failed")
    ]


def test_answers_to_a_search_select_are_checked_against_the_uploaded_file(
    rt: Any, client: Any, admin: dict[str, str], create_user_: Any
) -> None:
    content = search_form("search('fruits', 'matches', 'colour', ${colour})")
    upload = _upload(client, admin, content, {"fruits.csv": FRUITS_CSV})
    assert upload.status_code == 201, upload.get_json()
    assert client.post("/api/v1/forms/fruit_search/publish", headers=admin).status_code == 200

    right = {"colour": "green", "fruit": "kiwi"}
    filtered_out = {"colour": "green", "fruit": "mango"}
    results = _push(rt, client, create_user_, "fruit_search", [right, filtered_out])

    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert [e["path"] for e in results[1]["errors"]] == ["data.fruit"]
