"""Attachment logic: storing an upload, recording which submissions reference which files, listing
what is still missing, and letting supervisors download a file from their villages (audited:
photos of homes are personal data).

Knowing a digest is not having the file. A reference counts for downloads only when the user who
sent the submission has uploaded those bytes themselves (`attachment_holders`), and nothing a
user is told depends on whether someone else uploaded the same content: a push lists as missing
what the caller has not uploaded, an upload is `created` the first time the caller sends it, and
a download outside the caller's regions is the same 404 as a file that does not exist.

An upload is stored in two steps on purpose: the bytes go into the store first, outside any
database transaction (a slow tablet must not hold a write lock while it streams megabytes), then
the `attachments` row is recorded in the caller's unit of work. Both steps are idempotent, so a
failure between them is repaired by the client's retry.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from sqlalchemy import Insert, Table, select
from sqlalchemy.orm import Session

from server.attachments.models import Attachment, AttachmentHolder, AttachmentRef
from server.attachments.store import (
    DIGEST_PREFIX,
    AttachmentStore,
    AttachmentTooLarge,
    DigestMismatch,
    is_valid_digest,
)
from server.audit import service as audit
from server.auth.actor import Actor
from server.bulk import codec_for, insert_rows
from server.db import upsert_insert, utcnow
from server.errors import (
    NotFound,
    TooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from server.submissions.models import Submission, SubmissionStatus
from server.users.models import Role
from sync_protocol.errors import ItemErrorCode

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}")
DOWNLOAD_ROLES = (Role.SUPERVISOR, Role.ADMIN)


@dataclass(frozen=True)
class StoredUpload:
    digest: str
    size: int
    created: bool


@dataclass(frozen=True)
class Download:
    digest: str
    content_type: str
    size: int


def require_digest(digest: str) -> str:
    """`digest` if it is `sha256:<64 lower-case hex>`, else 404: the name can never exist."""
    if not is_valid_digest(digest):
        raise NotFound(
            "no such attachment: names are sha256: followed by 64 lower-case hex digits",
            details={"attachment": digest[:80]},
        )
    return digest


def upload_content_type(declared: str | None) -> str:
    """The media type to record for an upload (`application/octet-stream` when none is given);
    415 for a header that is not a media type."""
    if not declared:
        return DEFAULT_CONTENT_TYPE
    if _MEDIA_TYPE_RE.fullmatch(declared) is None:
        raise UnsupportedMediaType(
            "Content-Type is not a media type such as image/jpeg",
            details={"content_type": declared[:100]},
        )
    return declared.lower()


def store_upload(
    store: AttachmentStore,
    digest: str,
    body: IO[bytes],
    *,
    max_size: int,
    declared_size: int | None = None,
) -> StoredUpload:
    """Stream `body` into the store under `digest`, checking size and hash on the way.

    413 `too_large` when `declared_size` (the Content-Length) or the bytes read pass `max_size`,
    422 `validation_error` when the bytes hash to another digest; nothing is stored in either
    case. Storing content that is already there is not an error (`created` is False)."""
    require_digest(digest)
    if declared_size is not None and declared_size > max_size:
        raise TooLarge(
            "attachment is larger than the configured limit", details={"limit": max_size}
        )
    try:
        created = store.put(digest, body, max_size=max_size)
    except AttachmentTooLarge as exc:
        raise TooLarge(
            "attachment is larger than the configured limit", details={"limit": exc.limit}
        ) from exc
    except DigestMismatch as exc:
        raise ValidationFailed(
            "the body does not match the attachment's digest",
            [
                {
                    "path": "body",
                    "code": ItemErrorCode.INVALID_ATTACHMENT.value,
                    "message": f"{exc.size} bytes hash to {exc.actual}, not {exc.expected}",
                }
            ],
        ) from exc
    return StoredUpload(digest=digest, size=store.size(digest), created=created)


def record_upload(
    session: Session, actor: Actor, upload: StoredUpload, content_type: str | None
) -> bool:
    """The `attachments` row for a stored upload (the first upload's content type stays), and
    that `actor` holds the file. True if `actor` had not uploaded it before — whoever else did:
    the answer never tells one user about another's files."""
    statement = _insert_ignoring_existing(session, Attachment).values(
        digest=upload.digest,
        content_type=content_type or DEFAULT_CONTENT_TYPE,
        size=upload.size,
        uploaded_by_id=actor.user_id,
    )
    session.execute(statement)
    if actor.user_id is None:
        return upload.created
    held = (
        _insert_ignoring_existing(session, AttachmentHolder)
        .values(digest=upload.digest, user_id=actor.user_id, uploaded_at=utcnow())
        .returning(AttachmentHolder.user_id)
    )
    return session.execute(held).first() is not None


def record_references(session: Session, refs: Iterable[tuple[str, uuid.UUID, str | None]]) -> None:
    """Record that submissions refer to attachments: `(digest, instance_id, village_code)`.

    Set-based and idempotent: references already recorded are left as they are (the first
    village stays). Call it after the submissions' rows are flushed (foreign key). Digests must be
    in the wire form; anything else is a `ValueError` (the push schema has checked them)."""
    villages: dict[tuple[str, uuid.UUID], str | None] = {}
    for digest, instance_id, village_code in refs:
        if not is_valid_digest(digest):
            raise ValueError(f"not an attachment digest: {digest[:80]!r}")
        villages.setdefault((digest, instance_id), village_code)
    if not villages:
        return
    connection = session.connection()
    codec = codec_for(cast(Table, AttachmentRef.__table__), connection.dialect)
    columns = ("digest", "instance_id", "village_code", "created_at")
    now = utcnow()
    rows = [
        codec.written(columns, (digest, instance_id, village, now))
        for (digest, instance_id), village in villages.items()
    ]
    insert_rows(connection, codec, columns, rows, skip_existing=True)


def missing_attachments(
    session: Session, actor: Actor, store: AttachmentStore, digests: Iterable[str]
) -> list[str]:
    """The digests among `digests` that `actor` must upload: those the server has no file for,
    and those the caller has never uploaded (another user's upload of the same bytes does not
    count, and is not disclosed). Sorted, unique."""
    wanted = set(digests)
    if not wanted:
        return []
    held: set[str] = set()
    if actor.user_id is not None:
        held = set(
            session.scalars(
                select(AttachmentHolder.digest).where(
                    AttachmentHolder.user_id == actor.user_id,
                    AttachmentHolder.digest.in_(sorted(wanted)),
                )
            )
        )
    return sorted(set(store.missing(wanted)) | (wanted - held))


def open_download(
    session: Session, actor: Actor, store: AttachmentStore, digest: str, *, audited: bool = True
) -> Download:
    """Check that `actor` may download `digest` and describe the file; audit the download.

    Supervisors and admins only (403 otherwise, whatever the digest). A supervisor needs a
    submission accepted in a village of their regions that references the file and whose sender
    uploaded it; admins may download any file. Without that, or without the file, 404 — the same
    answer either way, so that nobody learns which files exist outside their regions.
    `audited=False` is for HEAD, which discloses no content."""
    require_digest(digest)
    actor.ensure_role(*DOWNLOAD_ROLES)
    held_reference = (
        select(AttachmentRef.village_code)
        .join(Submission, Submission.instance_id == AttachmentRef.instance_id)
        .join(
            AttachmentHolder,
            (AttachmentHolder.digest == AttachmentRef.digest)
            & (AttachmentHolder.user_id == Submission.user_id),
        )
        .where(
            AttachmentRef.digest == digest,
            Submission.status == SubmissionStatus.ACCEPTED,
            actor.region_filter(AttachmentRef.village_code),
        )
        .limit(1)
    )
    village = session.execute(held_reference).first()
    if (village is None and not actor.is_admin) or not store.has(digest):
        raise NotFound("no such attachment in your regions", details={"attachment": digest})
    row = session.get(Attachment, digest)
    download = Download(
        digest=digest,
        content_type=row.content_type if row is not None else DEFAULT_CONTENT_TYPE,
        size=store.size(digest),
    )
    if audited:
        audit.record(
            session,
            "download_attachment",
            user_id=actor.user_id,
            object_type="attachment",
            object_id=digest.removeprefix(DIGEST_PREFIX),  # the column holds 64 characters
            region_code=village[0] if village is not None else None,
            address=actor.address,
            details={
                "attachment": digest,
                "size": download.size,
                "content_type": download.content_type,
            },
        )
    return download


def open_content(store: AttachmentStore, download: Download) -> BinaryIO:
    """The bytes of a download checked by `open_download`, for streaming."""
    try:
        return store.open(download.digest)
    except FileNotFoundError as exc:  # removed by an operator between the check and now
        raise NotFound("no such attachment", details={"attachment": download.digest}) from exc


def _insert_ignoring_existing(
    session: Session, model: type[Attachment | AttachmentRef | AttachmentHolder]
) -> Insert:
    # INSERT … ON CONFLICT DO NOTHING on the primary key.
    return upsert_insert(session, model).on_conflict_do_nothing()
