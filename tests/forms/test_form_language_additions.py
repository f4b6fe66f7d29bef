"""The form language additions of issue 13 (what real XLSForms need): time, labels in more
languages, audio/video/file attachments, barcode, range `step`, repeat `count`, geotrace,
geoshape, rank and `choices_file` — their definition checks, answer validation, register
compatibility and round trip through `to_dict()`."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forms.answer_types import AnswerProblem, parse_answer, parse_time
from forms.compatibility import check_register_compatibility
from forms.definition import AttachmentMedia, FieldType, FormDefinition, Text
from forms.definition_schema import load_definition
from forms.issues import DefinitionError, IssueCode
from forms.validation import validate_submission

TODAY = date(2026, 12, 5)
DIGEST = "sha256:" + "cd" * 32


def form(*fields: dict[str, Any], **extra: Any) -> FormDefinition:
    return load_definition(
        {"form_id": "lang_test", "title": "测试", "fields": list(fields), **extra}
    )


def refused(*fields: dict[str, Any], **extra: Any) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        form(*fields, **extra)
    return [(issue.path, issue.code.value) for issue in caught.value.issues]


def issues(definition: FormDefinition, data: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (issue.path, issue.code.value)
        for issue in validate_submission(definition, data, today=TODAY)
    ]


def round_trips(definition: FormDefinition) -> None:
    again = load_definition(definition.to_dict())
    assert again == definition
    assert again.content_hash() == definition.content_hash()


# --- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("00:00", "00:00:00"),
        ("23:59", "23:59:00"),
        ("08:30:15", "08:30:15"),
        ("14:30:00.000+08:00", "14:30:00"),
        ("14:30:00.250Z", "14:30:00.25"),
        ("07:05-05:30", "07:05:00"),
    ],
)
def test_time_answers_read_as_wall_clock_text(raw: str, value: str) -> None:
    assert parse_answer(FieldType.TIME, raw) == value


@pytest.mark.parametrize(
    "raw", ["24:00", "12:60", "9:30", "12:30:60", "12", "12:30+8", "T12:30", "12:30 ", 1230, True]
)
def test_malformed_times_are_invalid_time(raw: object) -> None:
    definition = form({"name": "t", "type": "time"})
    expected_code = "invalid_time"
    assert issues(definition, {"t": raw}) == [("data.t", expected_code)]


def test_time_bounds_compare_the_wall_clock_time() -> None:
    definition = form({"name": "t", "type": "time", "min": "08:00", "max": "17:30:00"})
    assert issues(definition, {"t": "08:00"}) == []
    assert issues(definition, {"t": "17:30:00.000+08:00"}) == []
    assert issues(definition, {"t": "07:59:59"}) == [("data.t", "below_min")]
    assert issues(definition, {"t": "17:30:00.001"}) == [("data.t", "above_max")]
    round_trips(definition)


def test_time_bounds_are_checked_at_load() -> None:
    assert refused({"name": "t", "type": "time", "min": "8 am"}) == [
        ("fields[0].min", "invalid_definition")
    ]
    assert refused({"name": "t", "type": "time", "min": "18:00", "max": "08:00"}) == [
        ("fields[0].min", "invalid_definition")
    ]


def test_time_value_reaches_expressions_and_constraints() -> None:
    definition = form(
        {"name": "start", "type": "time"},
        {"name": "end", "type": "time", "constraint": ". > ${start}"},
        {"name": "why", "type": "text", "required": "${start} >= '20:00:00'"},
    )
    # Times are HH:MM:SS text and text that is not a number orders as text: as the times do.
    assert issues(definition, {"start": "08:00", "end": "17:00+08:00"}) == []
    assert issues(definition, {"start": "20:00", "end": "19:59:59"}) == [
        ("data.end", "constraint_failed"),
        ("data.why", "required"),
    ]


_times = st.builds(
    lambda h, m, s, frac, offset: (
        f"{h:02d}:{m:02d}" + (f":{s:02d}{frac}" if s is not None else "") + offset
    ),
    st.integers(0, 23),
    st.integers(0, 59),
    st.none() | st.integers(0, 59),
    st.sampled_from(["", ".0", ".5", ".123", ".000"]),
    st.sampled_from(["", "Z", "+08:00", "-03:30"]),
)


@given(_times, _times)
@settings(max_examples=200, deadline=None)
def test_time_texts_order_as_the_times_they_name(a: str, b: str) -> None:
    def seconds(text: str) -> float:
        clock = text[:12].rstrip("Z+-")
        parts = clock.split("+")[0].split("-")[0].split(":")
        return (
            int(parts[0]) * 3600 + int(parts[1]) * 60 + (float(parts[2]) if len(parts) > 2 else 0)
        )

    pa, pb = parse_time(a), parse_time(b)
    assert pa is not None and pb is not None
    assert (pa < pb) == (seconds(a) < seconds(b))
    assert (pa == pb) == (seconds(a) == seconds(b))


@given(st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_time_reader_never_raises(raw: str) -> None:
    result = parse_answer(FieldType.TIME, raw)
    if isinstance(result, AnswerProblem):
        assert result.code is IssueCode.INVALID_TIME
    else:
        assert result is None or isinstance(result, str)


# --- labels in more languages --------------------------------------------------------------


def test_labels_in_more_languages_load_and_round_trip() -> None:
    definition = form(
        {
            "name": "water",
            "type": "select_one",
            "label": {"zh": "水源", "en": "Water source", "fr": "Source d'eau", "pt-br": "Fonte"},
            "hint": {"zh": "提示", "en": "Hint", "sw": "Kidokezo"},
            "choices": [
                {"code": "well", "label": {"zh": "井", "en": "Well", "sw": "Kisima"}},
                {"code": "tap", "label": "自来水"},
            ],
            "constraint": ". != 'x'",
            "constraint_message": {"zh": "错", "en": "Wrong", "fr": "Faux"},
        },
        title={"zh": "测试", "en": "Test", "fr": "Essai"},
    )
    water = definition.fields[0]
    assert water.label is not None
    assert water.label.zh == "水源" and water.label.en == "Water source"
    assert water.label.get("fr") == "Source d'eau"
    assert water.label.languages == ("zh", "en", "fr", "pt-br")
    assert water.label.in_language("pt-br") == "Fonte"
    assert water.label.in_language("pt") == "Water source"  # no `pt`: English
    assert water.label.in_language("fr-ca") == "Source d'eau"  # region dropped
    assert str(water.label) == "水源 / Water source"  # everything printing labels unchanged
    assert definition.title.get("fr") == "Essai"
    assert definition.to_dict()["fields"][0]["choices"][0]["label"] == {
        "zh": "井",
        "en": "Well",
        "sw": "Kisima",
    }
    round_trips(definition)


def test_extra_languages_change_the_content_hash() -> None:
    plain = form({"name": "a", "type": "text", "label": {"zh": "甲", "en": "A"}})
    more = form({"name": "a", "type": "text", "label": {"zh": "甲", "en": "A", "fr": "A"}})
    assert plain.content_hash() != more.content_hash()
    assert Text("甲", "A") == plain.fields[0].label


@pytest.mark.parametrize("tag", ["FR", "English", "pt_BR", "f", "french-language-tag-x1", "1a", ""])
def test_language_tags_must_be_lower_case_bcp47(tag: str) -> None:
    result = refused({"name": "a", "type": "text", "label": {"zh": "甲", "en": "A", tag: "x"}})
    assert result == [("fields[0].label", "invalid_definition")]


def test_zh_and_en_stay_required_and_every_text_non_empty() -> None:
    assert refused({"name": "a", "type": "text", "label": {"en": "A", "fr": "A"}}) == [
        ("fields[0].label", "invalid_definition")
    ]
    assert refused({"name": "a", "type": "text", "label": {"zh": "甲", "en": "A", "fr": " "}}) == [
        ("fields[0].label", "invalid_definition")
    ]


# --- media attachments ------------------------------------------------------------------------


def attachment(content_type: str, filename: str = "f.bin") -> dict[str, str]:
    return {"attachment": DIGEST, "filename": filename, "content_type": content_type}


def test_audio_video_and_file_attachments() -> None:
    definition = form(
        {"name": "voice", "type": "attachment", "media": "audio"},
        {"name": "clip", "type": "attachment", "media": "video"},
        {"name": "doc", "type": "attachment", "media": "file"},
        {"name": "photo", "type": "attachment"},
    )
    assert [f.media for f in definition.fields[:3]] == [
        AttachmentMedia.AUDIO,
        AttachmentMedia.VIDEO,
        AttachmentMedia.FILE,
    ]
    good = {
        "voice": attachment("audio/mp4", "voice.m4a"),
        "clip": attachment("video/3gpp", "clip.3gp"),
        "doc": attachment("application/pdf", "doc.pdf"),
        "photo": attachment("application/octet-stream"),  # as before: any type
    }
    assert issues(definition, good) == []
    unknown_type = {"voice": attachment("application/octet-stream")}
    assert issues(definition, unknown_type) == []
    wrong = {"voice": attachment("image/jpeg"), "clip": attachment("audio/mp4")}
    assert issues(definition, wrong) == [
        ("data.voice", "invalid_attachment"),
        ("data.clip", "invalid_attachment"),
    ]
    assert issues(definition, {"doc": {"attachment": "sha256:zz"}}) == [
        ("data.doc", "invalid_attachment")
    ]
    round_trips(definition)


def test_media_answers_are_referenced_attachments_for_push() -> None:
    from sync_protocol.messages import referenced_attachments

    data = {"voice": attachment("audio/mp4"), "clip": attachment("video/mp4")}
    assert referenced_attachments(data) == [DIGEST]


# --- barcode ----------------------------------------------------------------------------------


def test_barcode_is_text_with_the_same_checks() -> None:
    definition = form(
        {"name": "code", "type": "barcode", "pattern": "^[0-9]{13}$", "max_length": 13},
    )
    assert issues(definition, {"code": "6901234567892"}) == []
    assert issues(definition, {"code": "69012"}) == [("data.code", "pattern_mismatch")]
    assert issues(definition, {"code": 6901234567892}) == [("data.code", "invalid_type")]
    round_trips(definition)


def test_barcode_binds_to_register_text_and_is_interchangeable_with_text() -> None:
    entities = [{"name": "hh", "type": "household", "id_field": "household_id", "create": True}]
    for field_type in ("text", "barcode"):
        definition = form(
            {"name": "household_id", "type": "text"},
            {"name": "no", "type": field_type, "bind": "hh.household_no"},
            entities=entities,
        )
        assert check_register_compatibility(definition) == []
    timed = form(
        {"name": "household_id", "type": "text"},
        {"name": "no", "type": "time", "bind": "hh.household_no"},
        entities=entities,
    )
    assert [i.code for i in check_register_compatibility(timed)] == [IssueCode.INCOMPATIBLE_TYPE]


# --- range: step ------------------------------------------------------------------------------


def test_decimal_step_is_exact() -> None:
    definition = form({"name": "x", "type": "decimal", "min": 0, "max": 1, "step": 0.1})
    for ok in (0, 0.3, 0.7, 1, 0.9):
        assert issues(definition, {"x": ok}) == [], ok
    assert issues(definition, {"x": 0.35}) == [("data.x", "off_step")]
    assert issues(definition, {"x": 1.1}) == [("data.x", "above_max")]
    assert issues(definition, {"x": 1.15}) == [("data.x", "above_max"), ("data.x", "off_step")]
    round_trips(definition)


def test_step_grid_starts_at_min() -> None:
    definition = form({"name": "n", "type": "integer", "min": 1, "max": 10, "step": 3})
    assert [issues(definition, {"n": n}) == [] for n in range(1, 11)] == [
        n in (1, 4, 7, 10) for n in range(1, 11)
    ]
    message = validate_submission(definition, {"n": 2}, today=TODAY)[0].message
    assert message == "must be 1 plus a whole multiple of 3"
    no_min = form({"name": "n", "type": "decimal", "step": 0.25})
    assert issues(no_min, {"n": -0.75}) == []
    assert issues(no_min, {"n": 0.3}) == [("data.n", "off_step")]


def test_step_checks_at_load() -> None:
    assert refused({"name": "n", "type": "integer", "step": 0.5}) == [
        ("fields[0].step", "invalid_definition")
    ]
    assert refused({"name": "n", "type": "decimal", "step": 0}) == [
        ("fields[0].step", "invalid_definition")
    ]
    assert refused({"name": "n", "type": "text", "step": 1}) == [
        ("fields[0].step", "invalid_definition")
    ]
    assert refused({"name": "n", "type": "decimal", "step": "0.1"}) == [
        ("fields[0].step", "invalid_definition")
    ]


@given(
    st.integers(-1000, 1000),
    st.integers(1, 1000),
    st.integers(0, 4),
    st.integers(-10_000, 10_000),
)
@settings(max_examples=200, deadline=None)
def test_decimal_step_agrees_with_integer_arithmetic(
    origin: int, step: int, places: int, answer: int
) -> None:
    # All numbers scaled by 10**places: the grid check must agree with exact integers.
    scale = 10**places
    definition = form({"name": "x", "type": "decimal", "min": origin / scale, "step": step / scale})
    found = issues(definition, {"x": answer / scale})
    expected: list[tuple[str, str]] = []
    if answer < origin:
        expected.append(("data.x", "below_min"))
    if (answer - origin) % step:
        expected.append(("data.x", "off_step"))
    assert found == expected


# --- repeat count -----------------------------------------------------------------------------


def counted(**repeat: Any) -> FormDefinition:
    return form(
        {"name": "n", "type": "integer"},
        {
            "name": "people",
            "type": "repeat",
            "count": "${n}",
            "fields": [{"name": "who", "type": "text"}],
            **repeat,
        },
    )


def test_repeat_count_must_match_the_instances() -> None:
    definition = counted()
    two = [{"who": "a"}, {"who": "b"}]
    assert issues(definition, {"n": 2, "people": two}) == []
    assert issues(definition, {"n": 3, "people": two}) == [("data.people", "too_few_repeats")]
    assert issues(definition, {"n": 1, "people": two}) == [("data.people", "too_many_repeats")]
    assert issues(definition, {"n": 0, "people": []}) == []
    assert issues(definition, {"n": 0}) == []
    assert issues(definition, {"people": two}) == []  # no number: nothing to compare
    message = validate_submission(definition, {"n": 3, "people": two}, today=TODAY)[0].message
    assert message == "exactly 3 required (its count)"
    round_trips(definition)


def test_repeat_count_with_min_and_max_count() -> None:
    definition = counted(min_count=1, max_count=3)
    assert issues(definition, {"n": 0, "people": []}) == [("data.people", "too_few_repeats")]
    assert issues(definition, {"n": 5, "people": [{}] * 4}) == [("data.people", "too_many_repeats")]
    assert issues(definition, {"n": 2, "people": [{}] * 3}) == [("data.people", "too_many_repeats")]


def test_repeat_count_expression_is_checked() -> None:
    assert refused(
        {
            "name": "people",
            "type": "repeat",
            "count": "${nobody}",
            "fields": [{"name": "a", "type": "text"}],
        }
    ) == [("fields[0].count", "unknown_reference")]
    assert refused({"name": "n", "type": "integer", "count": "3"}) == [
        ("fields[0].count", "invalid_definition")
    ]
    assert (
        refused(
            {
                "name": "people",
                "type": "repeat",
                "count": "${n",
                "fields": [{"name": "a", "type": "text"}],
            }
        )[0][0]
        == "fields[0].count"
    )


def test_nested_repeat_count_reads_its_own_instance() -> None:
    definition = form(
        {
            "name": "households",
            "type": "repeat",
            "fields": [
                {"name": "size", "type": "integer"},
                {
                    "name": "members",
                    "type": "repeat",
                    "count": "${size}",
                    "fields": [{"name": "name", "type": "text"}],
                },
            ],
        }
    )
    data = {
        "households": [
            {"size": 1, "members": [{"name": "a"}]},
            {"size": 2, "members": [{"name": "b"}]},
        ]
    }
    assert issues(definition, data) == [("data.households[1].members", "too_few_repeats")]


# --- geotrace and geoshape -------------------------------------------------------------------


def test_geotrace_and_geoshape() -> None:
    definition = form({"name": "road", "type": "geotrace"}, {"name": "field", "type": "geoshape"})
    trace = "26.1 107.5 1200 5;26.2 107.6 1210 4.5"
    shape = "26.1 107.5 0 0;26.2 107.5 0 0;26.2 107.6 0 0;26.1 107.5 0 0"
    assert issues(definition, {"road": trace, "field": shape}) == []
    assert issues(definition, {"road": "26.1 107.5; 26.2 107.6;"}) == []  # ODK's loose spacing
    assert issues(definition, {"road": "26.1 107.5"}) == [("data.road", "invalid_geotrace")]
    assert issues(definition, {"road": "95 107.5;26 107"}) == [("data.road", "invalid_geotrace")]
    assert issues(definition, {"road": "26 107 0 -1;26 107"}) == [("data.road", "invalid_geotrace")]
    assert issues(definition, {"road": "26 x;26 107"}) == [("data.road", "invalid_geotrace")]
    assert issues(definition, {"road": {"latitude": 1}}) == [("data.road", "invalid_geotrace")]
    assert issues(definition, {"field": trace}) == [("data.field", "invalid_geoshape")]
    open_shape = "26.1 107.5;26.2 107.5;26.2 107.6;26.1 107.6"
    assert issues(definition, {"field": open_shape}) == [("data.field", "invalid_geoshape")]
    round_trips(definition)


_points = st.lists(
    st.tuples(
        st.floats(-90, 90, allow_nan=False),
        st.floats(-180, 180, allow_nan=False),
        st.floats(-500, 9000, allow_nan=False),
        st.floats(0, 1000, allow_nan=False),
    ),
    min_size=1,
    max_size=30,
)


def _odk(points: list[tuple[float, ...]]) -> str:
    return ";".join(" ".join(repr(n) for n in point) for point in points)


@given(_points)
@settings(max_examples=200, deadline=None)
def test_generated_geotraces_are_accepted_exactly_when_they_have_two_points(
    points: list[tuple[float, ...]],
) -> None:
    result = parse_answer(FieldType.GEOTRACE, _odk(points))
    assert isinstance(result, str) == (len(points) >= 2)


@given(_points)
@settings(max_examples=200, deadline=None)
def test_generated_geoshapes_closed_with_four_points_are_accepted(
    points: list[tuple[float, ...]],
) -> None:
    closed = [*points, points[0]]
    result = parse_answer(FieldType.GEOSHAPE, _odk(closed))
    assert isinstance(result, str) == (len(closed) >= 4)


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_geo_readers_never_raise(raw: str) -> None:
    for field_type in (FieldType.GEOTRACE, FieldType.GEOSHAPE):
        parse_answer(field_type, raw)


# --- rank -----------------------------------------------------------------------------------


def ranked(**extra: Any) -> FormDefinition:
    return form(
        {"name": "kind", "type": "text"},
        {
            "name": "needs",
            "type": "rank",
            "choices": [
                {"code": "food", "label": "食"},
                {"code": "school", "label": "学", "attributes": {"kind": "k"}},
                {"code": "health", "label": "医"},
            ],
            **extra,
        },
    )


def test_rank_needs_every_choice_once() -> None:
    definition = ranked()
    assert issues(definition, {"needs": "health food school"}) == []
    assert issues(definition, {"needs": "health food"}) == [("data.needs", "invalid_rank")]
    assert issues(definition, {"needs": "health food food school"}) == [
        ("data.needs", "invalid_rank")
    ]
    assert issues(definition, {"needs": "health food school jobs"}) == [
        ("data.needs", "invalid_choice")
    ]
    assert issues(definition, {"needs": ["health", "food", "school"]}) == [
        ("data.needs", "invalid_type")
    ]
    round_trips(definition)


def test_rank_with_choice_filter_ranks_the_kept_choices() -> None:
    definition = ranked(choice_filter="kind = ${kind}")
    assert issues(definition, {"kind": "k", "needs": "school"}) == []
    assert issues(definition, {"kind": "k", "needs": "school food"}) == [
        ("data.needs", "invalid_choice")
    ]


def test_rank_value_reaches_expressions() -> None:
    definition = form(
        {
            "name": "needs",
            "type": "rank",
            "choices": [{"code": "a", "label": "甲"}, {"code": "b", "label": "乙"}],
        },
        {"name": "why", "type": "text", "required": "selected(${needs}, 'a')"},
    )
    assert issues(definition, {"needs": "b a"}) == [("data.why", "required")]


@given(st.permutations(["a", "b", "c", "d"]), st.integers(0, 4), st.booleans())
@settings(max_examples=200, deadline=None)
def test_rank_answers_valid_exactly_when_a_permutation(
    order: list[str], cut: int, duplicate: bool
) -> None:
    definition = form(
        {
            "name": "r",
            "type": "rank",
            "choices": [{"code": c, "label": c} for c in "abcd"],
        }
    )
    codes = order[:cut] if cut else list(order)
    if duplicate and codes:
        codes.append(codes[0])
    answer = " ".join(codes)
    found = issues(definition, {"r": answer})
    if not codes:
        assert found == []  # '' is unanswered
    elif sorted(codes) == ["a", "b", "c", "d"]:
        assert found == []
    else:
        assert found == [("data.r", "invalid_rank")]


# --- choices_file -----------------------------------------------------------------------------


def test_choices_file_is_informational() -> None:
    definition = form(
        {
            "name": "village",
            "type": "select_one",
            "choices_file": "villages.csv",
            "choices": [{"code": "v1", "label": "一村"}],
        }
    )
    assert definition.fields[0].choices_file == "villages.csv"
    assert issues(definition, {"village": "v1"}) == []
    assert issues(definition, {"village": "v2"}) == [("data.village", "invalid_choice")]
    round_trips(definition)
    assert refused(
        {"name": "v", "type": "select_one", "choices_file": "../x.csv", "choices": "library.yes_no"}
    ) == [("fields[0].choices_file", "invalid_definition")]
    assert refused({"name": "v", "type": "text", "choices_file": "x.csv"}) == [
        ("fields[0].choices_file", "invalid_definition")
    ]


# --- all of it together --------------------------------------------------------------------


def test_a_form_with_every_addition_round_trips_and_validates() -> None:
    definition = form(
        {"name": "n", "type": "integer", "min": 0, "max": 10, "step": 1},
        {"name": "at", "type": "time", "label": {"zh": "时间", "en": "Time", "sw": "Saa"}},
        {"name": "code", "type": "barcode"},
        {"name": "voice", "type": "attachment", "media": "audio"},
        {"name": "road", "type": "geotrace"},
        {"name": "plot", "type": "geoshape"},
        {
            "name": "prefs",
            "type": "rank",
            "choices_file": "prefs.csv",
            "choices": [{"code": "x", "label": "X"}, {"code": "y", "label": "Y"}],
        },
        {
            "name": "kids",
            "type": "repeat",
            "count": "${n}",
            "fields": [{"name": "age", "type": "decimal", "step": 0.5}],
        },
    )
    round_trips(definition)
    data = {
        "n": 2,
        "at": "09:15",
        "code": "ABC-123",
        "voice": attachment("audio/amr", "v.amr"),
        "road": "1 2;3 4",
        "plot": "1 2;1 3;2 3;1 2",
        "prefs": "y x",
        "kids": [{"age": 3.5}, {"age": 7}],
    }
    assert issues(definition, data) == []
    data["kids"] = [{"age": 3.25}]
    assert issues(definition, data) == [
        ("data.kids", "too_few_repeats"),
        ("data.kids[0].age", "off_step"),
    ]
