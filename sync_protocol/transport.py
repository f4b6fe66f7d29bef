"""HTTP for the tablet client: sends a request, retries connection errors, timeouts, 5xx (bounded
exponential backoff with jitter) and 429 (after `Retry-After`) but never another 4xx, and turns
error answers into `ClientError`s. Only for requests the protocol makes safe to repeat; never
logs tokens or bodies."""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from marshmallow import ValidationError

from sync_protocol.client_errors import NotLoggedIn, ServerError, ServerUnreachable
from sync_protocol.messages import ErrorResponseSchema

log = logging.getLogger(__name__)

RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `max_attempts` sends in all (first one included).

    Before retry n (1, 2, …) the client sleeps `min(max_delay, base_delay * 2**(n-1))` scaled by a
    jitter factor in [0.5, 1.0] ("equal jitter": never immediately, never in lock-step with other
    tablets). A 429 waits `Retry-After` instead, unless that exceeds `max_retry_after`, in which
    case the 429 is raised as a `ServerError`.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0

    def backoff(self, retry: int, jitter: float) -> float:
        """The sleep before retry number `retry` (1-based), for a jitter draw in [0, 1]."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling * (0.5 + 0.5 * jitter)


class Transport:
    """Sends protocol requests to one server (`base_url`, e.g. `http://127.0.0.1:5000`).

    `session` may carry test adapters; `sleep` and `jitter` are injectable so tests run instantly
    and deterministically.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session if session is not None else requests.Session()
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        compress: bool = False,
        raw_body: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """Send one request (retrying as the policy allows) and return a response in `accept`.

        `json_body` is sent as UTF-8 JSON, gzip-compressed with `compress`; `raw_body` as is with
        `content_type`. The same bytes are sent on every attempt. Raises `NotLoggedIn` on 401,
        `ServerError` on any other status outside `accept`, `ServerUnreachable` when the network
        failed on every attempt.
        """
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        body: bytes | None = raw_body
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
            if compress:
                body = gzip.compress(body, mtime=0)
                all_headers["Content-Encoding"] = "gzip"
        elif content_type is not None:
            all_headers["Content-Type"] = content_type
        url = self.base_url + path
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(
                    method, url, data=body, headers=all_headers, params=params, timeout=timeout
                )
            except RETRYABLE_EXCEPTIONS as error:
                if attempt >= self.policy.max_attempts:
                    raise ServerUnreachable(
                        f"{method} {path}: no answer from {self.base_url} after {attempt} "
                        f"attempts ({type(error).__name__})"
                    ) from error
                self._wait(method, path, attempt, self._backoff(attempt), type(error).__name__)
                continue
            if response.status_code in accept:
                return response
            error_answer = parse_error(response)
            if response.status_code == 401:
                if token is None:
                    raise NotLoggedIn(f"login refused: {error_answer.message}")
                raise NotLoggedIn(
                    f"the server refused the stored login ({error_answer.message}); log in again"
                )
            if attempt >= self.policy.max_attempts or not _is_retryable(response.status_code):
                raise error_answer
            delay = self._backoff(attempt)
            if response.status_code == 429:
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if retry_after is not None:
                    if retry_after > self.policy.max_retry_after:
                        raise error_answer
                    delay = retry_after
            self._wait(method, path, attempt, delay, f"http_{response.status_code}")

    def _backoff(self, attempt: int) -> float:
        return self.policy.backoff(attempt, min(1.0, max(0.0, self._jitter())))

    def _wait(self, method: str, path: str, attempt: int, delay: float, reason: str) -> None:
        log.info(
            "event=retry method=%s path=%s attempt=%d delay=%.2f reason=%s",
            method,
            path,
            attempt,
            delay,
            reason,
        )
        self._sleep(delay)


def _is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def parse_error(response: requests.Response) -> ServerError:
    """The `ServerError` an error response stands for (`http_<status>` if not protocol JSON)."""
    try:
        loaded = ErrorResponseSchema().load(response.json())
    except (ValueError, ValidationError):
        text = " ".join(response.text.split())[:200] or response.reason or "no body"
        return ServerError(response.status_code, f"http_{response.status_code}", text)
    error = loaded["error"]
    return ServerError(response.status_code, error["code"], error["message"], error["details"])


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
