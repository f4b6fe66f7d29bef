"""Protection of sensitive personal data (identity numbers, phones): a keyed hash to match on, a
masked form to show, and AES-GCM ciphertext for the few roles allowed to reveal the whole value.
Never log or return a clear value from here except through `reveal`, whose callers audit it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True)
class Protected:
    hash: str
    masked: str
    cipher: str


def normalize_id_number(value: str) -> str:
    return value.strip().replace(" ", "").upper()


def mask_id_number(value: str) -> str:
    """`452802199001011234` → `4528**********1234`: region start and last four only."""
    value = normalize_id_number(value)
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """`13812345678` → `138****5678`."""
    value = value.strip().replace(" ", "")
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


_MASKS = {"id_number": mask_id_number, "phone": mask_phone}
# The kinds of sensitive text fieldsync masks (and hashes for lookup).
MASKED_KINDS = frozenset(_MASKS)


def mask(kind: str, value: str) -> str:
    """The masked form of a sensitive value of `kind` (`id_number` or `phone`)."""
    return _MASKS[kind](value)


class SensitiveCodec:
    """Hashes, masks and encrypts sensitive values with keys derived from one 32-byte data key."""

    def __init__(self, data_key: bytes) -> None:
        self._hash_key = hmac.new(data_key, b"fieldsync:hash", hashlib.sha256).digest()
        self._aead = AESGCM(hmac.new(data_key, b"fieldsync:encrypt", hashlib.sha256).digest())

    def lookup_hash(self, kind: str, value: str) -> str:
        """The keyed hash used to find a record by its identity number without storing it."""
        normalized = normalize_id_number(value) if kind == "id_number" else value.strip()
        message = f"{kind}:{normalized}".encode()
        # The one-shot HMAC (OpenSSL in C): the same digest as hmac.new(...).hexdigest(), a few
        # times faster, which matters for department files of 200,000 identity numbers.
        return hmac.digest(self._hash_key, message, "sha256").hex()

    def protect(self, kind: str, value: str) -> Protected:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), kind.encode())
        return Protected(
            hash=self.lookup_hash(kind, value),
            masked=mask(kind, value),
            cipher=base64.b64encode(nonce + sealed).decode("ascii"),
        )

    def reveal(self, kind: str, cipher: str) -> str:
        raw = base64.b64decode(cipher)
        return self._aead.decrypt(raw[:12], raw[12:], kind.encode()).decode()

    def seal(self, text: str, context: str) -> str:
        """`text` encrypted and bound to `context` (e.g. the record it belongs to): it opens only
        with the same context, so a ciphertext copied elsewhere reveals nothing."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, text.encode(), f"sealed:{context}".encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def unseal(self, cipher: str, context: str) -> str | None:
        """The text `seal(text, context)` encrypted, or None if `cipher` is not one of ours (or
        was made for another context)."""
        try:
            raw = base64.b64decode(cipher, validate=True)
            text = self._aead.decrypt(raw[:12], raw[12:], f"sealed:{context}".encode())
        except (ValueError, InvalidTag):
            return None
        return text.decode()


def protected_for_review(codec: SensitiveCodec, kind: str | None, value: object) -> object:
    """How a value is kept where people review it later (conflict rows): sensitive text as
    `{"masked", "cipher"}` — shown masked, and still choosable as the real value — else as is.
    `kind` is the sensitive field's name, or None for an ordinary field."""
    if kind is None or value in (None, ""):
        return value
    protected = codec.protect(kind, str(value))
    return {"masked": protected.masked, "cipher": protected.cipher}
