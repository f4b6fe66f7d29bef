"""Where attachment bytes live: a small storage interface and its file-system implementation.

Files are named by their SHA-256 digest and never change, so storing one is idempotent and two
processes storing the same content concurrently cannot harm each other. A write streams into a
temporary file in the final folder while hashing and counting, is fsynced, and only then renamed
into place atomically: a crash or a refused upload never leaves a partial file under a real name.
This module knows nothing of HTTP, users or the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from server.config import Settings

DIGEST_PREFIX = "sha256:"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
CHUNK_SIZE = 64 * 1024


class AttachmentError(Exception):
    """Base of the store's refusals; the service turns them into protocol errors."""


class DigestMismatch(AttachmentError):
    """The bytes do not hash to the digest they were stored under."""

    def __init__(self, expected: str, actual: str, size: int) -> None:
        super().__init__(f"content hashes to {actual}, not {expected}")
        self.expected = expected
        self.actual = actual
        self.size = size


class AttachmentTooLarge(AttachmentError):
    """More than `limit` bytes were offered."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"attachment is larger than {limit} bytes")
        self.limit = limit


def is_valid_digest(digest: str) -> bool:
    """True for `sha256:` followed by exactly 64 lower-case hex digits (the wire form)."""
    return isinstance(digest, str) and _DIGEST_RE.fullmatch(digest) is not None


def _hex_of(digest: str) -> str:
    if not is_valid_digest(digest):
        raise ValueError(f"not an attachment digest: {digest[:80]!r}")
    return digest[len(DIGEST_PREFIX) :]


class AttachmentStore(Protocol):
    """Content-addressed storage of attachment bytes. Digests are in the wire form
    `sha256:<64 lower-case hex>`; a malformed digest is a `ValueError`."""

    def has(self, digest: str) -> bool:
        """Whether the complete content named `digest` is stored."""
        ...

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests of `digests` that are not stored, sorted and without repeats."""
        ...

    def put(self, digest: str, source: IO[bytes] | bytes, *, max_size: int | None = None) -> bool:
        """Store the bytes of `source` under `digest`; True if this call created the file.

        Reads `source` in chunks, never all at once. Raises `AttachmentTooLarge` as soon as more
        than `max_size` bytes arrive and `DigestMismatch` if the bytes hash to something else;
        either way nothing is stored. Storing content that is already there returns False."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """The stored content for reading; `FileNotFoundError` if there is none."""
        ...

    def size(self, digest: str) -> int:
        """The stored content's length in bytes; `FileNotFoundError` if there is none."""
        ...


class FileSystemStore:
    """Files under `root`, sharded by the first hex digits: `root/ab/cd/abcd…` (64 hex digits).

    The folder is created lazily on the first write; constructing a store touches nothing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        hex_digest = _hex_of(digest)
        return self.root / hex_digest[:2] / hex_digest[2:4] / hex_digest

    def has(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def missing(self, digests: Iterable[str]) -> list[str]:
        return sorted({digest for digest in digests if not self.has(digest)})

    def open(self, digest: str) -> BinaryIO:
        return self.path_for(digest).open("rb")

    def size(self, digest: str) -> int:
        return self.path_for(digest).stat().st_size

    def put(self, digest: str, source: IO[bytes] | bytes, *, max_size: int | None = None) -> bool:
        final = self.path_for(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file lives in the final folder so the rename below stays on one file
        # system (atomic), and its dot-name can never be mistaken for stored content.
        fd, temp_name = tempfile.mkstemp(
            dir=final.parent, prefix=f".{final.name[:16]}.", suffix=".part"
        )
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                hex_digest, size = _copy_counted(source, out, max_size)
                out.flush()
                os.fsync(out.fileno())
            actual = DIGEST_PREFIX + hex_digest
            if actual != digest:
                raise DigestMismatch(digest, actual, size)
            if final.is_file():
                return False
            # Two processes may both get here with the same digest: each rename atomically puts
            # identical bytes under the name, so readers only ever see one complete file.
            temp.replace(final)
            _fsync_directory(final.parent)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _copy_counted(
    source: IO[bytes] | bytes, out: BinaryIO, max_size: int | None
) -> tuple[str, int]:
    """Copy `source` to `out` chunk by chunk; its SHA-256 (hex) and length."""
    hasher = hashlib.sha256()
    size = 0
    chunks: Iterable[bytes]
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        chunks = (data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE))
    else:
        chunks = iter(lambda: source.read(CHUNK_SIZE), b"")
    for chunk in chunks:
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise AttachmentTooLarge(max_size)
        hasher.update(chunk)
        out.write(chunk)
    return hasher.hexdigest(), size


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable. Not every platform can open a directory (Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def store_for(settings: Settings) -> FileSystemStore:
    """The attachment store the settings configure (`ATTACHMENT_DIR`). Cheap: no I/O."""
    return FileSystemStore(settings.attachment_dir)
