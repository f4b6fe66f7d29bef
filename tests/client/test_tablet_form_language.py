"""The tablet with issue 13's form language, offline: it lists a form's questions in any label
language, keeps audio/video/other files and guesses their media types, and fills (checks) answers
of the new types exactly as the server will."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from forms.definition_schema import load_definition
from sync_protocol.client import TabletClient, guess_media_type
from sync_protocol.client_errors import InvalidSubmission
from sync_protocol.replica import CachedForm
from sync_protocol.tablet_cli import cli

FORM: dict[str, Any] = {
    "form_id": "water_point",
    "version": 1,
    "title": {"zh": "水点", "en": "Water point", "sw": "Kituo cha maji", "pt-br": "Ponto de água"},
    "fields": [
        {
            "name": "kind",
            "type": "select_one",
            "label": {"zh": "类型", "en": "Kind", "sw": "Aina"},
            "choices": [
                {"code": "well", "label": {"zh": "井", "en": "Well", "sw": "Kisima"}},
                {"code": "tap", "label": {"zh": "水龙头", "en": "Tap"}},
            ],
        },
        {"name": "opened", "type": "time", "label": {"zh": "开放时间", "en": "Opens"}},
        {"name": "depth", "type": "decimal", "min": 0, "max": 100, "step": 0.5},
        {"name": "sound", "type": "attachment", "media": "audio"},
        {
            "name": "ranking",
            "type": "rank",
            "choices": [{"code": "a", "label": "甲"}, {"code": "b", "label": "乙"}],
        },
    ],
}


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "tablet.db"
    definition = load_definition(FORM)
    with TabletClient(path, "http://127.0.0.1:9") as client, client.replica.transaction():
        client.replica.save_form(
            CachedForm("water_point", 1, "hash", FORM["title"], definition.to_dict(), True)
        )
    return path


def _run(db, *args):
    return CliRunner().invoke(cli, ["--db", str(db), "--retries", "1", *args])


def test_questions_print_labels_in_the_asked_language_with_fallbacks(db):
    swahili = _run(db, "questions", "water_point", "--lang", "sw")
    assert swahili.exit_code == 0, swahili.output
    lines = swahili.output.splitlines()
    assert lines[0] == "Kituo cha maji"
    assert "kind [select_one] Aina" in lines
    assert "  - well: Kisima" in lines
    assert "  - tap: Tap" in lines  # no Swahili label: English
    assert "sound [attachment:audio]" in lines
    chinese = _run(db, "questions", "water_point").output.splitlines()
    assert chinese[0] == "水点" and "opened [time] 开放时间" in chinese
    brazil = _run(db, "questions", "water_point", "--lang", "pt-br").output.splitlines()
    assert brazil[0] == "Ponto de água"


def test_questions_of_a_form_not_on_the_tablet_is_a_clear_error(db):
    result = _run(db, "questions", "nothing_here")
    assert result.exit_code == 1 and "error:" in result.output
    assert "Traceback" not in result.output


def test_attach_keeps_a_recording_and_prints_its_reference(db, tmp_path):
    recording = tmp_path / "voice.m4a"
    recording.write_bytes(b"....ftypM4A a recording")
    result = _run(db, "attach", str(recording))
    assert result.exit_code == 0, result.output
    reference = json.loads(result.output)
    assert reference["content_type"] == "audio/mp4"
    assert reference["filename"] == "voice.m4a"
    assert reference["attachment"].startswith("sha256:")
    with TabletClient(db, "http://127.0.0.1:9") as client:
        assert client.replica.attachment(reference["attachment"]) is not None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.amr", "audio/amr"),
        ("clip.3gp", "video/3gpp"),
        ("x.MP4", "video/mp4"),
        ("photo.jpg", "image/jpeg"),
        ("data.unknownext", "application/octet-stream"),
    ],
)
def test_media_types_are_guessed_for_recordings(name: str, kind: str):
    assert guess_media_type(name) == kind


def test_fill_checks_the_new_types_as_the_server_does(db):
    with TabletClient(db, "http://127.0.0.1:9") as client:
        sound = client.add_attachment(b"#!AMR recording", filename="s.amr")
        good = {
            "kind": "well",
            "opened": "07:30",
            "depth": 12.5,
            "sound": sound,
            "ranking": "b a",
        }
        assert client.fill("water_point", good)
        with pytest.raises(InvalidSubmission) as refused:
            client.fill(
                "water_point",
                {**good, "opened": "7:30", "depth": 12.25, "ranking": "b"},
            )
        assert [(e["path"], e["code"]) for e in refused.value.issues] == [
            ("data.opened", "invalid_time"),
            ("data.depth", "off_step"),
            ("data.ranking", "invalid_rank"),
        ]
        photo = client.add_attachment(b"\xff\xd8 jpeg", filename="p.jpg")
        with pytest.raises(InvalidSubmission) as wrong_media:
            client.fill("water_point", {**good, "sound": photo})
        assert [e["code"] for e in wrong_media.value.issues] == ["invalid_attachment"]
