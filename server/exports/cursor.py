"""Incremental-export cursors: where in the change log an export ended, signed so that it cannot
be forged, bound to its user, dataset and filters. Pure apart from the secret it is given."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from server.errors import ValidationFailed
from sync_protocol.errors import ItemErrorCode

MAX_LENGTH = 512


@dataclass(frozen=True)
class ExportCursor:
    dataset: str
    user_id: int | None
    filters: str  # digest of the filters the export was made with
    lo: int  # first change-log transaction not yet exported


def filters_digest(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:32]


def _signature(body: str, secret: str) -> str:
    key = hashlib.sha256(f"fieldsync-export-cursor:{secret}".encode()).digest()
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def encode(cursor: ExportCursor, secret: str) -> str:
    raw = json.dumps(
        [1, cursor.dataset, cursor.user_id, cursor.filters, cursor.lo], separators=(",", ":")
    )
    body = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{body}.{_signature(body, secret)}"


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(
        "the export cursor cannot be used",
        [{"path": "cursor", "code": ItemErrorCode.INVALID_VALUE.value, "message": message}],
    )


def decode(text: str, secret: str) -> ExportCursor:
    """The cursor `text` stands for, or a 422 naming `cursor`. Never raises anything else."""
    body, dot, signature = text.partition(".")
    if len(text) > MAX_LENGTH or not dot:
        raise _invalid("not an export cursor")
    if not hmac.compare_digest(signature.encode(), _signature(body, secret).encode()):
        raise _invalid("this cursor was not issued by this server")
    try:
        raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise _invalid("not an export cursor") from exc
    if not (
        isinstance(raw, list)
        and len(raw) == 5
        and raw[0] == 1
        and isinstance(raw[1], str)
        and (raw[2] is None or type(raw[2]) is int)
        and isinstance(raw[3], str)
        and type(raw[4]) is int
        and raw[4] >= 0
    ):
        raise _invalid("not an export cursor")
    return ExportCursor(dataset=raw[1], user_id=raw[2], filters=raw[3], lo=raw[4])
