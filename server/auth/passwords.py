"""Password hashing with Argon2id (slow on purpose), and a dummy check for unknown users so that a
login for a missing account takes as long as one with a wrong password.

Argon2 runs in C without Python's interpreter lock, so in a threaded worker the other requests go
on while a password is checked. Each check holds `memory_kib` (64 MiB by default) while it runs:
at most `MAX_CONCURRENT_HASHES` run at once per process, the rest wait their turn, so that a
county's tablets logging in on the same morning neither exhaust memory nor starve the CPU that
other requests need."""

from __future__ import annotations

import threading
from functools import cached_property

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

# Hashes computed at once by one process (each uses Argon2's own 4 lanes). Two keep a core busy
# while the other hash waits on memory; more only add memory (docs/benchmarks.md, cold start).
MAX_CONCURRENT_HASHES = 2


class PasswordHasher:
    MIN_LENGTH = 8

    def __init__(self, *, time_cost: int, memory_kib: int) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._turns = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)

    @cached_property
    def _dummy(self) -> str:
        # Made on first use, not at construction: a command line that never checks a password
        # should not pay for a hash. The app makes it at start (`prepare`), so that no login,
        # the first included, takes longer for an unknown user.
        return self.hash("fieldsync-dummy-password")

    def prepare(self) -> None:
        """Make the dummy hash now (call once before serving logins)."""
        _ = self._dummy

    def hash(self, password: str) -> str:
        with self._turns:
            return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with `stored_hash` None, spend the same time and say no."""
        against = stored_hash or self._dummy
        try:
            with self._turns:
                matches = self._hasher.verify(against, password)
            return matches and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
