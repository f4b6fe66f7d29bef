"""The tablet's HTTP layer: bounded exponential backoff with jitter for what may be retried, no
retry for client mistakes, Retry-After honoured, errors parsed, bodies really gzip-compressed."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from sync_protocol.client_errors import NotLoggedIn, ServerError, ServerUnreachable
from sync_protocol.transport import RetryPolicy, Transport, retry_after_seconds
from tests.client.fakes import BASE_URL, Reply, ScriptedAdapter, error_reply, session_with

PATH = "/api/v1/sync/push"


@pytest.fixture
def adapter():
    return ScriptedAdapter()


def _transport(adapter, sleeps, *, jitter=1.0, **policy):
    return Transport(
        BASE_URL,
        session=session_with(adapter),
        policy=RetryPolicy(**{"max_attempts": 5, **policy}),
        sleep=sleeps,
        jitter=lambda: jitter,
    )


def test_server_errors_are_retried_with_exponential_backoff_then_succeed(adapter, sleeps):
    adapter.script(
        "POST",
        PATH,
        error_reply(503, "unavailable"),
        error_reply(500, "internal_error"),
        Reply(502, raw=b"<html>bad gateway</html>"),
        Reply(200, {"ok": True}),
    )
    response = _transport(adapter, sleeps).request("POST", PATH, json_body={"a": 1})
    assert response.json() == {"ok": True}
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(adapter.sent) == 4


def test_jitter_spreads_each_delay_between_half_and_all_of_its_ceiling(adapter, sleeps):
    adapter.script(
        "POST",
        PATH,
        error_reply(503, "unavailable"),
        error_reply(503, "unavailable"),
        Reply(200, {}),
    )
    _transport(adapter, sleeps, jitter=0.0).request("POST", PATH, json_body={})
    assert sleeps == [0.25, 0.5]


def test_backoff_is_capped(adapter, sleeps):
    adapter.script("POST", PATH, error_reply(503, "unavailable"))
    with pytest.raises(ServerError) as raised:
        _transport(adapter, sleeps, max_attempts=8, base_delay=1.0, max_delay=5.0).request(
            "POST", PATH, json_body={}
        )
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert raised.value.status == 503 and raised.value.code == "unavailable"


def test_connection_errors_and_timeouts_are_retried_a_bounded_number_of_times(adapter, sleeps):
    adapter.script("POST", PATH, requests.ConnectionError("refused"), requests.ReadTimeout("slow"))
    with pytest.raises(ServerUnreachable, match="after 5 attempts"):
        _transport(adapter, sleeps).request("POST", PATH, json_body={})
    assert len(adapter.sent) == 5
    assert len(sleeps) == 4


def test_a_connection_error_then_success_sends_the_same_bytes_again(adapter, sleeps):
    adapter.script("POST", PATH, requests.ConnectionError("reset"), Reply(200, {}))
    _transport(adapter, sleeps).request("POST", PATH, json_body={"x": "值"}, compress=True)
    first, second = adapter.sent
    assert first.body == second.body


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (403, "forbidden"),
        (404, "not_found"),
        (409, "conflict"),
        (410, "resync_required"),
        (413, "too_large"),
        (422, "validation_error"),
    ],
)
def test_client_errors_are_never_retried(adapter, sleeps, status, code):
    adapter.script("POST", PATH, error_reply(status, code, "you did it wrong"))
    with pytest.raises(ServerError) as raised:
        _transport(adapter, sleeps).request("POST", PATH, json_body={})
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.message == "you did it wrong"
    assert len(adapter.sent) == 1 and sleeps == []


def test_error_details_are_parsed(adapter, sleeps):
    details = [{"path": "submissions[0].hlc", "code": "invalid_clock", "message": "bad"}]
    adapter.script(
        "POST",
        PATH,
        Reply(
            422, {"error": {"code": "validation_error", "message": "invalid", "details": details}}
        ),
    )
    with pytest.raises(ServerError) as raised:
        _transport(adapter, sleeps).request("POST", PATH, json_body={})
    assert raised.value.details == details


def test_rate_limiting_waits_as_long_as_retry_after_says(adapter, sleeps):
    adapter.script(
        "POST", PATH, error_reply(429, "rate_limited", **{"Retry-After": "7"}), Reply(200, {})
    )
    _transport(adapter, sleeps).request("POST", PATH, json_body={})
    assert sleeps == [7.0]


def test_a_retry_after_beyond_the_limit_is_raised_instead_of_waited(adapter, sleeps):
    adapter.script("POST", PATH, error_reply(429, "rate_limited", **{"Retry-After": "3600"}))
    with pytest.raises(ServerError) as raised:
        _transport(adapter, sleeps).request("POST", PATH, json_body={})
    assert raised.value.code == "rate_limited" and sleeps == []


def test_retry_after_may_be_an_http_date():
    later = datetime.now(UTC) + timedelta(seconds=120)
    seconds = retry_after_seconds(format_datetime(later, usegmt=True))
    assert seconds is not None and 100 < seconds <= 120
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_401_means_not_logged_in(adapter, sleeps):
    adapter.script("GET", "/api/v1/forms", error_reply(401, "unauthorized", "token expired"))
    with pytest.raises(NotLoggedIn, match="token expired"):
        _transport(adapter, sleeps).request("GET", "/api/v1/forms", token="t")
    assert len(adapter.sent) == 1


def test_the_token_travels_as_a_bearer_header(adapter, sleeps):
    adapter.script("GET", "/api/v1/forms", Reply(200, {}))
    _transport(adapter, sleeps).request("GET", "/api/v1/forms", token="secret-token")
    assert adapter.sent[0].headers["Authorization"] == "Bearer secret-token"


def test_compressed_bodies_are_really_gzip_and_say_so(adapter, sleeps):
    adapter.script("POST", PATH, Reply(200, {}))
    payload = {"submissions": [{"data": {"note": "重复的文字" * 200}}]}
    _transport(adapter, sleeps).request("POST", PATH, json_body=payload, compress=True)
    sent = adapter.sent[0]
    assert sent.headers["Content-Encoding"] == "gzip"
    assert sent.headers["Content-Type"] == "application/json"
    assert isinstance(sent.body, bytes) and sent.body[:2] == b"\x1f\x8b"
    plain = json.dumps(payload, ensure_ascii=False).encode()
    assert len(sent.body) < len(plain) / 10
    assert json.loads(gzip.decompress(sent.body)) == payload


def test_a_non_protocol_error_body_still_gives_a_server_error(adapter, sleeps):
    adapter.script("GET", "/x", Reply(404, raw=b"<h1>Not Found</h1>"))
    with pytest.raises(ServerError) as raised:
        _transport(adapter, sleeps).request("GET", "/x")
    assert raised.value.code == "http_404" and "Not Found" in raised.value.message
