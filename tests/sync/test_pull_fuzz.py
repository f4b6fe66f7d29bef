"""Pull fuzzed through the real app on SQLite and PostgreSQL: arbitrary text, bytes and JSON in the
cursor and the query parameters, and real cursors tampered with field by field and re-signed with
the server's own key. Whatever arrives, the answer is 200, 400, 410 or 422 in the protocol's error
shape, and a page never names an entity outside the caller's villages.

Deterministic (derandomized) and bounded: a few hundred requests per database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.changes.models import ScopeSnapshot
from server.sync import cursor as cursors
from server.users.models import Role
from tests.conftest import VILLAGE_A1, VILLAGE_B1, bearer
from tests.sync.helpers import HOUSEHOLD_A, MEMBERS_A, Tablet, load_register, visit

ANSWERS = {200, 400, 410, 422}
CALLERS_IDS = {str(HOUSEHOLD_A), *(str(m) for m in MEMBERS_A)}
FIELDS = ["v", "user_id", "scope", "phase", "lo", "hi", "after", "backfill_from"]

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Scene:
    """A collector of village A1 with a real cursor, on a register that also holds village B1
    (whose collector and an administrator have pulled, so their scope snapshots exist)."""

    client: FlaskClient
    tablet: Tablet
    secret: str
    cursors: list[str]  # cursors of the collector: mid-initial, changes, mid-changes
    scopes: list[str]  # every scope snapshot's name (the collector's, the others', unbound ones)


@pytest.fixture
def scene(client, rt, create_user_, login, settings) -> Scene:
    load_register(rt)
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    create_user_("neighbour", Role.COLLECTOR, [VILLAGE_B1])
    create_user_("chief", Role.ADMIN)
    for other in ("neighbour", "chief"):
        assert client.get("/api/v1/sync/pull", headers=bearer(login(other))).status_code == 200
    tablet = Tablet.login(client, "collector")
    _, _, changes = tablet.pull_all()
    tablet.push([tablet.submission(visit(annual_income=21000))])
    tablet.push([tablet.submission(visit(annual_income=22000))])
    middle = client.get(f"/api/v1/sync/pull?limit=1&cursor={changes}", headers=tablet.headers)
    # The collector's one village fits one page: its mid-initial cursor is made as the server
    # would (the same content with the initial phase's fields), signed with the server's key.
    initial = {**_decoded(changes), "phase": "initial", "after": str(uuid.UUID(int=1))}
    real = [_signed(initial, settings.secret_key), changes, middle.get_json()["cursor"]]
    for cursor in real:
        page = client.get(f"/api/v1/sync/pull?cursor={cursor}", headers=tablet.headers)
        assert page.status_code == 200, page.get_json()
    with rt.db.unit_of_work(write=False) as session:
        scopes = list(session.scalars(select(ScopeSnapshot.digest)))
    unbound = [["*"], [VILLAGE_A1], [VILLAGE_B1], [VILLAGE_A1, VILLAGE_B1]]
    scopes += [hashlib.sha256(json.dumps(regions).encode()).hexdigest() for regions in unbound]
    return Scene(client, tablet, settings.secret_key, real, scopes)


def _pull(scene: Scene, query: str) -> Any:
    response = scene.client.get(f"/api/v1/sync/pull?{query}", headers=scene.tablet.headers)
    event(f"status {response.status_code}")
    _assert_answer(response)
    return response


def _assert_answer(response: Any) -> None:
    assert response.status_code in ANSWERS, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    if response.status_code == 200:
        named = {item["id"] for item in body["entities"] + body["removed"]}
        assert named <= CALLERS_IDS, named - CALLERS_IDS
    else:
        error = body["error"]
        assert set(error) >= {"code", "message"} and error["message"]
        assert error["code"] in {"bad_request", "resync_required", "validation_error"}


def _query_value(raw: bytes) -> str:
    return urllib.parse.quote_from_bytes(raw, safe="")


def _body_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _signed(value: Any, secret: str) -> str:
    body = _body_of(value)
    return f"{body}.{cursors._signature(body, secret)}"


def _decoded(cursor: str) -> dict[str, Any]:
    body = cursor.split(".")[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
texts = st.text(max_size=300)  # any code point, NUL and lone surrogates included
odd_bytes = st.binary(max_size=300) | st.sampled_from(
    [b"\x00", b"\xed\xa0\x80", b"\xff\xfe", "é".encode(), b"[" * 1500, b"." * 3000]
)


@FUZZ
@given(raw=odd_bytes | texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_as_a_cursor_are_answered_in_the_protocol(scene, raw):
    _pull(scene, f"cursor={_query_value(raw)}")


@FUZZ
@given(
    content=json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 3000).map(lambda n: b"[" * n)
    | st.binary(max_size=200),
    signature=st.none() | st.text(min_size=24, max_size=24) | st.text(max_size=40),
)
def test_any_content_in_a_cursor_body_with_any_signature_is_answered_in_the_protocol(
    scene, content, signature
):
    body = base64.urlsafe_b64encode(content).decode().rstrip("=")
    # No signature given: signed with the server's own key, as only a key holder could.
    signature = cursors._signature(body, scene.secret) if signature is None else signature
    cursor = f"{body}.{signature}"
    _pull(scene, f"cursor={_query_value(cursor.encode('utf-8', 'surrogatepass'))}")


def _plausible(scene: Scene, name: str) -> st.SearchStrategy[Any]:
    """Values a forger would try for a cursor field: near the real ones, other users' scopes."""
    positions = st.integers(0, 12) | st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64])
    digests = st.sampled_from(scene.scopes) | st.text("0123456789abcdef", min_size=64, max_size=64)
    by_field: dict[str, st.SearchStrategy[Any]] = {
        "v": st.sampled_from([1, 0, 2, "1", 1.0]),
        "user_id": st.none() | st.integers(0, 5),
        "scope": digests,
        "backfill_from": st.none() | digests,
        "phase": st.sampled_from(["initial", "changes", "Initial", ""]),
        "lo": positions,
        "hi": st.none() | positions,
        "after": st.none()
        | st.uuids().map(str)
        | st.sampled_from([str(HOUSEHOLD_A), str(uuid.UUID(int=0)), str(uuid.UUID(int=2**128 - 1))])
        | st.lists(positions, min_size=2, max_size=2),
    }
    return st.one_of(by_field[name], by_field[name], by_field[name], json_values)


@FUZZ
@given(which=st.integers(0, 2), data=st.data())
def test_a_real_cursor_with_any_field_changed_and_re_signed_stays_in_the_callers_villages(
    scene, which, data
):
    content = _decoded(scene.cursors[which])
    for name in data.draw(st.sets(st.sampled_from(FIELDS), min_size=1, max_size=2)):
        content[name] = data.draw(_plausible(scene, name), label=name)
    for name in data.draw(st.sets(st.sampled_from(FIELDS), max_size=1), label="dropped"):
        content.pop(name, None)
    content.update(data.draw(st.dictionaries(st.text(max_size=6), json_values, max_size=1)))
    _pull(scene, f"cursor={_query_value(_signed(content, scene.secret).encode())}")


@FUZZ
@given(
    which=st.integers(0, 2),
    position=st.integers(0, 10_000),
    replacement=st.characters(),
)
def test_a_real_cursor_with_one_character_changed_is_answered_in_the_protocol(
    scene, which, position, replacement
):
    cursor = scene.cursors[which]
    index = position % len(cursor)
    tampered = cursor[:index] + replacement + cursor[index + 1 :]
    _pull(scene, f"cursor={_query_value(tampered.encode('utf-8', 'surrogatepass'))}")


@FUZZ
@given(
    parameters=st.lists(
        st.tuples(
            st.sampled_from(["limit", "cursor", "reveal", "", "LIMIT", "limit[]"]) | st.text(),
            odd_bytes
            | st.integers(-(10**30), 10**30).map(lambda n: str(n).encode())
            | st.sampled_from(
                [b"", b"1", b"1000", b"1001", b"0", b"-1", b"1e3", b" 5", b"\xd9\xa3"]
            ),
        ),
        max_size=4,
    )
)
def test_any_query_parameters_are_answered_in_the_protocol(scene, parameters):
    query = "&".join(
        f"{_query_value(name.encode('utf-8', 'surrogatepass'))}={_query_value(value)}"
        for name, value in parameters
    )
    _pull(scene, query)
