"""Fetching a department source's file over HTTP with `requests`: a timeout per attempt, a few
attempts with growing pauses, and a body checked whole (its declared length, the size limit)
before it is imported. A failed or partial fetch applies nothing and is recorded with its error.
The token, if the source names one, comes from the environment and never appears in a record.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from server.auth.actor import system_actor
from server.departments.importing import ImportRefused, import_content, record_failure
from server.departments.models import DepartmentSource, ImportOrigin
from server.departments.reading import MAX_FILE_BYTES
from server.errors import AppError
from server.runtime import Runtime

log = logging.getLogger("fieldsync.departments")

ATTEMPTS = 3
BACKOFF_SECONDS = 2.0  # pause before the second attempt; doubled before each next one
_CHUNK = 256 * 1024


class FetchFailed(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True)
class FetchResult:
    source: str
    status: str  # "applied", "unchanged" or "failed"
    import_id: uuid.UUID | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": self.status,
            "import_id": str(self.import_id) if self.import_id else None,
            "error": self.error,
        }


def download(source: DepartmentSource) -> bytes:
    """The whole body at the source's URL, or FetchFailed (retry says whether trying again may
    help: a timeout, a broken connection or a 5xx, not a 4xx or an oversized body)."""
    assert source.url is not None
    headers = {
        "Accept": "text/csv, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, */*"
    }
    if source.token_env:
        token = os.environ.get(source.token_env)
        if not token:
            raise FetchFailed(f"environment variable {source.token_env} is not set", retry=False)
        headers["Authorization"] = f"Bearer {token}"
    try:
        with requests.get(
            source.url, headers=headers, timeout=source.timeout_seconds, stream=True
        ) as response:
            if response.status_code >= 500:
                raise FetchFailed(f"HTTP {response.status_code}", retry=True)
            if response.status_code != 200:
                raise FetchFailed(f"HTTP {response.status_code}", retry=False)
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_FILE_BYTES:
                raise FetchFailed(f"the body is {declared} bytes, over the limit", retry=False)
            body = bytearray()
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > MAX_FILE_BYTES:
                    raise FetchFailed(f"the body is over {MAX_FILE_BYTES} bytes", retry=False)
            if declared is not None and declared.isdigit() and len(body) != int(declared):
                raise FetchFailed(f"partial body: {len(body)} of {declared} bytes", retry=True)
            return bytes(body)
    except requests.Timeout as exc:
        raise FetchFailed(f"timed out after {source.timeout_seconds} s", retry=True) from exc
    except requests.RequestException as exc:
        # A connection refused or broken mid-body (urllib3 checks the declared length too).
        raise FetchFailed(f"{type(exc).__name__}: the fetch did not complete", retry=True) from exc


def fetch_source(
    rt: Runtime,
    source_id: uuid.UUID,
    now: datetime,
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
) -> FetchResult:
    """Fetch one source and import what it gives, in a unit of work of its own; a failure of
    either is recorded (as a failed import) and nothing of it applied."""
    with rt.db.unit_of_work(write=False) as session:
        source = session.get(DepartmentSource, source_id)
        if source is None or source.url is None:
            raise AppError("the source has no URL to fetch")
        session.expunge(source)
    content: bytes | None = None
    error: dict[str, Any] | None = None
    for attempt in range(1, attempts + 1):
        try:
            content = download(source)
            break
        except FetchFailed as failed:
            error = {"stage": "fetch", "message": str(failed), "attempts": attempt}
            log.warning(
                "event=department_fetch_failed source=%s attempt=%d error=%r",
                source.name,
                attempt,
                str(failed),
            )
            if not failed.retry or attempt == attempts:
                break
            time.sleep(backoff * 2 ** (attempt - 1))
    if content is not None:
        try:
            with rt.db.unit_of_work() as session:
                outcome = import_content(
                    session,
                    system_actor("scheduler"),
                    rt.codec,
                    session.merge(source, load=True),
                    content,
                    origin=ImportOrigin.HTTP,
                    filename=source.url.rsplit("/", 1)[-1][:255],
                    now=now,
                )
            status = "unchanged" if outcome.unchanged else "applied"
            log.info("event=department_fetch source=%s status=%s", source.name, status)
            return FetchResult(source.name, status, outcome.record.id)
        except ImportRefused as refused:
            error = {"stage": "import", "message": refused.message, "errors": refused.errors}
        except AppError as failed:
            error = {"stage": "import", "message": failed.message}
    assert error is not None
    with rt.db.unit_of_work() as session:
        record = record_failure(
            session,
            session.merge(source, load=True),
            origin=ImportOrigin.HTTP,
            error=error,
            now=now,
            content=content,
        )
    return FetchResult(source.name, "failed", record.id, error["message"])
