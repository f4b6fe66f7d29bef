"""Every way a request body or path can be wrong gets a clear 4xx in the protocol's error shape."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from server.app import create_app
from tests.conftest import PASSWORD


def _assert_error(response, status: int, code: str) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


LOGIN = "/api/v1/auth/login"


def test_body_that_is_not_json_is_400(client):
    _assert_error(
        client.post(LOGIN, data=b"{not json", content_type="application/json"), 400, "bad_request"
    )


def test_body_that_is_not_utf8_is_400(client):
    _assert_error(
        client.post(
            LOGIN, data='{"username": "李"}'.encode("gbk"), content_type="application/json"
        ),
        400,
        "bad_request",
    )


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"null", b"42"])
def test_top_level_that_is_not_an_object_is_400(client, payload):
    _assert_error(
        client.post(LOGIN, data=payload, content_type="application/json"), 400, "bad_request"
    )


def test_nan_and_infinity_are_not_json(client):
    _assert_error(
        client.post(LOGIN, data=b'{"username": NaN}', content_type="application/json"),
        400,
        "bad_request",
    )


def test_absurdly_deep_nesting_is_400_not_500(client):
    payload = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _assert_error(
        client.post(LOGIN, data=payload, content_type="application/json"), 400, "bad_request"
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    _assert_error(
        client.post(LOGIN, data=b'{"username": "x"}', **kwargs), 415, "unsupported_media_type"
    )


def test_unknown_content_encoding_is_415(client):
    response = client.post(
        LOGIN,
        data=b'{"username": "x"}',
        content_type="application/json",
        headers={"Content-Encoding": "br"},
    )
    _assert_error(response, 415, "unsupported_media_type")


def test_gzip_body_is_accepted(client, create_user_):
    create_user_("li.ming")
    body = gzip.compress(json.dumps({"username": "li.ming", "password": PASSWORD}).encode())
    response = client.post(
        LOGIN, data=body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.get_json()["user"]["username"] == "li.ming"


def test_body_claiming_gzip_that_is_not_gzip_is_400(client):
    response = client.post(
        LOGIN,
        data=b'{"username": "x"}',
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )
    _assert_error(response, 400, "bad_request")


def test_truncated_gzip_is_400(client):
    body = gzip.compress(b'{"username": "x", "password": "yyyyyyyy"}')[:-12]
    response = client.post(
        LOGIN, data=body, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    _assert_error(response, 400, "bad_request")


@pytest.fixture
def small_app(settings) -> Iterator[Flask]:
    """The app with a 64 KiB body limit, to test limits without megabytes of test data."""
    app = create_app(settings.replace(max_body_size=64 * 1024))
    yield app
    app.extensions["fieldsync"].db.dispose()


def test_oversized_body_is_413(small_app):
    payload = json.dumps({"username": "x" * (70 * 1024), "password": "y"}).encode()
    response = small_app.test_client().post(LOGIN, data=payload, content_type="application/json")
    error = _assert_error(response, 413, "too_large")
    assert "limit" in error["message"]


def test_oversized_chunked_body_without_content_length_is_413(small_app):
    payload = json.dumps({"username": "x" * (70 * 1024)}).encode()
    builder = EnvironBuilder(
        path=LOGIN, method="POST", data=payload, content_type="application/json"
    )
    environ = builder.get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True
    body, status, headers = run_wsgi_app(small_app, environ, buffered=True)
    response = small_app.response_class(b"".join(body), status=status, headers=headers)
    _assert_error(response, 413, "too_large")


def test_gzip_bomb_is_refused_by_its_decompressed_size(small_app):
    # 50 MiB of spaces compresses to about 50 KiB: under the raw limit, far over once inflated.
    bomb = gzip.compress(b'{"username": "' + b" " * (50 * 1024 * 1024) + b'"}', compresslevel=9)
    assert len(bomb) < 64 * 1024
    response = small_app.test_client().post(
        LOGIN, data=bomb, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    error = _assert_error(response, 413, "too_large")
    assert "decompressed" in error["message"]


def test_default_body_limit_is_16_mib(settings):
    assert settings.max_body_size == 16 * 1024 * 1024


def test_unknown_path_is_json_404(client):
    _assert_error(client.get("/api/v1/no-such-thing"), 404, "not_found")


def test_wrong_method_is_json_405_with_allow(client):
    response = client.get(LOGIN)
    _assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_exception_is_a_json_500_without_internals(settings):
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internal detail")

    response = app.test_client().get("/boom")
    error = _assert_error(response, 500, "internal_error")
    assert "secret" not in json.dumps(error)
    app.extensions["fieldsync"].db.dispose()
