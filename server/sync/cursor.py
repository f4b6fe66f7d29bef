"""Pull cursors: opaque to tablets, signed so they cannot be forged or edited, bound to the user and
to the scope (set of region grants) they were issued for.

Decoding is total: whatever string arrives, the answer is a cursor or a protocol error, never an
exception of another kind. A malformed cursor (not shaped like ours) is a 400; one shaped like ours
whose signature fails, or whose signed content cannot be honoured (another user's, another
version's, fields of the wrong kind), is a 410: pull again from scratch. The length is bounded and
the signature checked before any JSON is parsed, so no unauthenticated text reaches the parser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any, cast

from server.errors import BadRequest, ResyncRequired

VERSION = 1
# The longest cursor accepted (the query parameter's bound too). Real ones are under 400.
MAX_LENGTH = 2048
# Largest value a transaction id or change sequence number can take (signed 64-bit).
_MAX_POSITION = 2**63 - 1
_SIGNATURE_BYTES = 18
_BODY = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{24}")  # 18 bytes in unpadded base64url
_DIGEST = re.compile(r"[0-9a-f]{64}")
_PHASES = ("initial", "changes")
_FIELDS = {"v", "user_id", "scope", "phase", "lo", "hi", "after", "backfill_from"}


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


def decode(text: object, secret: str, *, user_id: int | None) -> Cursor:
    """The cursor `text` stands for, or BadRequest (malformed) / ResyncRequired (cannot be
    honoured). Never raises anything else, whatever `text` is."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise BadRequest("malformed cursor", details={"max_length": MAX_LENGTH})
    body, dot, signature = text.partition(".")
    if not dot or not _BODY.fullmatch(body) or not _SIGNATURE.fullmatch(signature):
        raise BadRequest("malformed cursor")
    if len(body) % 4 == 1:  # no base64 text has this length
        raise BadRequest("malformed cursor")
    # Both sides are ASCII here (checked above), as compare_digest needs.
    if not hmac.compare_digest(signature.encode("ascii"), _signature(body, secret).encode()):
        raise ResyncRequired("this cursor was not issued by this server; pull from scratch")
    cursor = _signed_content(body)
    if cursor.user_id != user_id:
        raise ResyncRequired("cursor belongs to another user; pull from scratch")
    return cursor


def _signed_content(body: str) -> Cursor:
    """The cursor in a body whose signature holds. Anything unexpected in it is a 410: only a
    holder of the key could have written it, and the server cannot honour it."""
    unusable = ResyncRequired("cursor cannot be honoured; pull from scratch")
    try:
        raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise unusable from exc
    if not isinstance(raw, dict) or set(raw) - _FIELDS:
        raise unusable
    if raw.get("v") != VERSION:
        raise ResyncRequired("cursor from another protocol version; pull from scratch")
    user_id, scope, phase = raw.get("user_id"), raw.get("scope"), raw.get("phase")
    lo, hi, after = raw.get("lo"), raw.get("hi"), raw.get("after")
    backfill_from = raw.get("backfill_from")
    if not (
        (user_id is None or _is_position(user_id))
        and _is_digest(scope)
        and phase in _PHASES
        and _is_position(lo)
        and (hi is None or _is_position(hi))
        and (backfill_from is None or (_is_digest(backfill_from) and phase == "initial"))
        and (after is None or _is_after(phase, after))
    ):
        raise unusable
    return Cursor(
        user_id=user_id,
        scope=cast(str, scope),
        phase=cast(str, phase),
        lo=cast(int, lo),
        hi=hi,
        after=after,
        backfill_from=backfill_from,
    )


def _is_position(value: object) -> bool:
    return type(value) is int and 0 <= value <= _MAX_POSITION


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def _is_after(phase: str, after: object) -> bool:
    if phase == "changes":
        return isinstance(after, list) and len(after) == 2 and all(_is_position(p) for p in after)
    if not isinstance(after, str) or len(after) != 36:
        return False
    try:
        return str(uuid.UUID(after)) == after
    except ValueError:
        return False


def _signature(body: str, secret: str) -> str:
    key = hashlib.sha256(f"fieldsync-cursor:{secret}".encode()).digest()
    return base64.urlsafe_b64encode(
        hmac.new(key, body.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    ).decode()
