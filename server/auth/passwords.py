"""Password hashing with Argon2id (slow on purpose), and a dummy check for unknown users so that a
login for a missing account takes as long as one with a wrong password."""

from __future__ import annotations

from functools import cached_property

import argon2
from argon2.exceptions import InvalidHashError, VerificationError


class PasswordHasher:
    MIN_LENGTH = 8

    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)

    @cached_property
    def _dummy(self) -> str:
        # Made on first use, not at construction: a command line that never checks a password
        # should not pay for a hash. The app makes it at start (`prepare`), so that no login,
        # the first included, takes longer for an unknown user.
        return self._hasher.hash("fieldsync-dummy-password")

    def prepare(self) -> None:
        """Make the dummy hash now (call once before serving logins)."""
        _ = self._dummy

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with `stored_hash` None, spend the same time and say no."""
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
