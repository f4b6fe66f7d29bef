"""Pull cursors: opaque to tablets, signed so they cannot be forged or edited, bound to the user and
to the scope (set of region grants) they were issued for.

A malformed cursor (not ours at all) is a 400; a well-formed one that fails its signature or names
someone else's or an unknown scope can no longer be honoured: 410, pull again from scratch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

from server.errors import BadRequest, ResyncRequired

VERSION = 1


@dataclass(frozen=True)
class Cursor:
    user_id: int | None
    scope: str  # digest of the scope snapshot the cursor was issued for
    phase: str  # "initial": paging through entities; "changes": paging through the change log
    lo: int  # changes phase: first txid not yet delivered (initial: where changes will start)
    hi: int | None = None  # changes phase: horizon pinned for the pass in progress
    after: Any = None  # initial: last household id served; changes: [txid, seq] served
    backfill_from: str | None = None  # initial phase after a scope grew: the previous scope


def encode(cursor: Cursor, secret: str) -> str:
    body = (
        base64.urlsafe_b64encode(
            json.dumps({"v": VERSION, **asdict(cursor)}, separators=(",", ":")).encode()
        )
        .decode()
        .rstrip("=")
    )
    return f"{body}.{_signature(body, secret)}"


def decode(text: str, secret: str, *, user_id: int | None) -> Cursor:
    body, dot, signature = text.partition(".")
    if not dot or not body or not signature:
        raise BadRequest("malformed cursor")
    try:
        raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("malformed cursor") from exc
    if not isinstance(raw, dict):
        raise BadRequest("malformed cursor")
    if not hmac.compare_digest(signature, _signature(body, secret)):
        raise ResyncRequired("this cursor was not issued by this server; pull from scratch")
    if raw.pop("v", None) != VERSION:
        raise ResyncRequired("cursor from another protocol version; pull from scratch")
    try:
        cursor = Cursor(**raw)
    except TypeError as exc:
        raise ResyncRequired("cursor cannot be honoured; pull from scratch") from exc
    if cursor.user_id != user_id:
        raise ResyncRequired("cursor belongs to another user; pull from scratch")
    return cursor


def _signature(body: str, secret: str) -> str:
    key = hashlib.sha256(f"fieldsync-cursor:{secret}".encode()).digest()
    return base64.urlsafe_b64encode(
        hmac.new(key, body.encode(), hashlib.sha256).digest()[:18]
    ).decode()
