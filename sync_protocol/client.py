"""The reference tablet client (`TabletClient`): log in, fetch forms, fill them offline, push and
pull, over `transport` and the local `replica`. Each step is one local transaction around one
exchange, so running it again after any interruption finishes it exactly once. Never imports
Flask or a database library."""

from __future__ import annotations

import json
import mimetypes
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import requests
from marshmallow import Schema, ValidationError

from forms.definition import FormDefinition
from forms.definition_schema import load_definition
from forms.issues import DefinitionError
from forms.submission import check_submission
from sync_protocol import local_register, outbox
from sync_protocol.client_errors import (
    AttachmentError,
    ClientError,
    InvalidSubmission,
    NotLoggedIn,
    ProtocolViolation,
    ServerError,
    UnknownForm,
)
from sync_protocol.clock import Hlc, wall_clock_ms
from sync_protocol.local_register import LocalEntity, LocalWrite
from sync_protocol.messages import (
    LoginResponseSchema,
    PullResponseSchema,
    PushResponseSchema,
    SubmissionSchema,
    entity_key,
    referenced_attachments,
    validation_details,
)
from sync_protocol.outbox import Batch, OutboxEntry
from sync_protocol.replica import CachedForm, Replica, to_json
from sync_protocol.transport import RetryPolicy, Transport

MAX_PUSH_BATCH = 500
MEDIA_TYPES_BY_SUFFIX = {
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".amr": "audio/amr",
    ".3ga": "audio/3gpp",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".3gp": "video/3gpp",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".heic": "image/heic",
}
"""Media types of the recordings tablets make, by file name suffix, for the ones the platform's
`mimetypes` may not know (an audio or video answer must declare `audio/*` / `video/*`)."""
DEFAULT_PULL_LIMIT = 500


@dataclass
class PushReport:
    """What one `push()` did: batches sent and each outcome counted."""

    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    conflicts: int = 0
    attachments_uploaded: int = 0
    attachments_unavailable: list[str] = field(default_factory=list)


@dataclass
class PullReport:
    """What one `pull()` did: pages read, entities stored and removed, whether it started over."""

    pages: int = 0
    entities: int = 0
    removed: int = 0
    resynced: bool = False


@dataclass(frozen=True)
class SyncReport:
    push: PushReport
    pull: PullReport
    forms: list[FormRefresh] = field(default_factory=list)


@dataclass(frozen=True)
class FormRefresh:
    """One form after `refresh_forms()`: `fetched` false when the cached copy was current (304)."""

    form_id: str
    version: int
    hash: str
    fetched: bool


def guess_media_type(filename: str) -> str:
    """The media type of a file by its name (`application/octet-stream` when unknown)."""
    suffix = Path(filename).suffix.lower()
    known = MEDIA_TYPES_BY_SUFFIX.get(suffix)
    return known or mimetypes.guess_type(filename)[0] or "application/octet-stream"


class TabletClient:
    """One tablet: its SQLite file at `path`, talking to the server at `base_url`.

    `base_url` is remembered in the file; pass None to use the remembered one. `session` may carry
    test adapters; `clock` is the physical time source in Unix milliseconds (the HLC is built on
    it and persisted); `sleep` and `jitter` drive retry backoff (see `RetryPolicy`).
    """

    def __init__(
        self,
        path: str | Path,
        base_url: str | None = None,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        batch_size: int = MAX_PUSH_BATCH,
        pull_limit: int = DEFAULT_PULL_LIMIT,
    ) -> None:
        if not 1 <= batch_size <= MAX_PUSH_BATCH:
            raise ValueError(f"batch_size must be in 1..{MAX_PUSH_BATCH}")
        self.replica = Replica(path, physical_time_ms=clock)
        if base_url is not None:
            with self.replica.transaction():
                self.replica.set_meta("server_url", base_url.rstrip("/"))
        self._session = session
        self._retry = retry
        self._sleep = sleep
        self._jitter = jitter
        self._transport: Transport | None = None
        self.batch_size = batch_size
        self.pull_limit = pull_limit
        self._definitions: dict[tuple[str, int, str], FormDefinition] = {}

    def close(self) -> None:
        self.replica.close()

    def __enter__(self) -> TabletClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def device_id(self) -> str:
        """This tablet's id, generated when its file was created and never changed."""
        return self.replica.device_id

    @property
    def server_url(self) -> str | None:
        return self.replica.get_meta("server_url")

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            url = self.server_url
            if url is None:
                raise ClientError("no server configured: give the server URL once (--server)")
            self._transport = Transport(
                url,
                session=self._session,
                policy=self._retry,
                sleep=self._sleep,
                jitter=self._jitter,
            )
        return self._transport

    # --- login and forms ------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in and bind the token to this device; returns `{"username", "role", "regions",
        "expires_at"}`. The password is sent once and never stored. Logging in as another user
        drops the pulled register and the pull cursor (the outbox is kept).

        Raises `NotLoggedIn` when the server refuses the credentials, `ServerError` otherwise.
        """
        response = self.transport.request(
            "POST",
            "/api/v1/auth/login",
            json_body={"username": username, "password": password, "device_id": self.device_id},
        )
        body = _load(LoginResponseSchema(), response)
        user = body["user"]
        with self.replica.transaction() as conn:
            if self.replica.get_meta("username") not in (None, user["username"]):
                local_register.forget_server_state(conn)
                self.replica.set_meta("pull_cursor", None)
            self.replica.set_meta("token", body["token"])
            self.replica.set_meta("token_expires_at", body["expires_at"].isoformat())
            self.replica.set_meta("username", user["username"])
            self.replica.set_meta("role", user["role"])
            self.replica.set_meta("regions", to_json(user["regions"]))
        return {**user, "expires_at": body["expires_at"].isoformat()}

    def refresh_forms(self) -> list[FormRefresh]:
        """Fetch the published forms; a cached definition with the same hash is kept (304).

        Forms the server no longer lists stop being current (their definitions stay, for
        submissions already made). Raises `ProtocolViolation` for a definition this client
        cannot load.
        """
        token = self._token()
        listing = self.transport.request("GET", "/api/v1/forms", token=token).json()
        items = listing.get("forms") if isinstance(listing, dict) else None
        if not isinstance(items, list):
            raise ProtocolViolation("GET /api/v1/forms: expected {'forms': [...]}")
        refreshed = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("form_id"), str):
                raise ProtocolViolation(f"GET /api/v1/forms: bad entry {item!r:.200}")
            refreshed.append(self._refresh_form(token, item))
        with self.replica.transaction():
            self.replica.retire_forms_except({r.form_id for r in refreshed})
        return refreshed

    def _refresh_form(self, token: str, item: dict[str, Any]) -> FormRefresh:
        form_id = item["form_id"]
        cached = self.replica.current_form(form_id)
        headers = {"If-None-Match": f'"{cached.hash}"'} if cached else {}
        response = self.transport.request(
            "GET", f"/api/v1/forms/{form_id}", token=token, headers=headers, accept=(200, 304)
        )
        if response.status_code == 304 and cached is not None:
            return FormRefresh(form_id, cached.version, cached.hash, fetched=False)
        if response.status_code == 304:
            raise ProtocolViolation(f"GET /api/v1/forms/{form_id}: 304 without If-None-Match")
        raw = response.json()
        try:
            load_definition(raw)
        except DefinitionError as error:
            raise ProtocolViolation(
                f"form {form_id}: the server's definition is invalid"
            ) from error
        version = raw.get("version") if isinstance(raw.get("version"), int) else item["version"]
        content_hash = _etag(response) or str(item.get("hash"))
        with self.replica.transaction():
            self.replica.save_form(
                CachedForm(form_id, version, content_hash, raw.get("title"), raw, True)
            )
        return FormRefresh(form_id, version, content_hash, fetched=True)

    def forms(self) -> list[CachedForm]:
        """The cached current forms, by form id."""
        return self.replica.forms()

    # --- filling forms offline ------------------------------------------------------------

    def add_attachment(
        self,
        source: str | Path | bytes,
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, str]:
        """Keep a photo, signature, recording or file for upload; returns the reference to put in
        the answers (every attachment media alike):
        `{"attachment": "sha256:<hex>", "filename", "content_type"}`.

        `source` is a file path or the bytes themselves (then `filename` defaults to
        `attachment.bin`). The type is guessed from the name unless given.
        Raises `AttachmentError` if the file cannot be read.
        """
        if isinstance(source, bytes):
            content, name = source, filename or "attachment.bin"
        else:
            path = Path(source)
            try:
                content = path.read_bytes()
            except OSError as error:
                raise AttachmentError(f"cannot read {path}: {error.strerror}") from error
            name = filename or path.name
        kind = content_type or guess_media_type(name)
        with self.replica.transaction():
            stored = self.replica.add_attachment(content, name, kind)
        return stored.reference()

    def fill(self, form_id: str, data: dict[str, Any]) -> str:
        """Complete a form offline; returns its new `instance_id`.

        The answers are validated with the cached current definition exactly as the server will
        (`collected_at` is now, in local time). Then, in one transaction: stamped with the next
        HLC and `device_seq`, `base_revs` taken from the revisions last pulled of the entities
        the bindings touch, stored in the outbox, and its bound values shown in the local
        register at once. Raises `UnknownForm`, `InvalidSubmission`, or `AttachmentError` when the
        answers reference an attachment this tablet does not hold.
        """
        cached = self.replica.current_form(form_id)
        if cached is None:
            raise UnknownForm(form_id)
        definition = self._definition(cached)
        collected_at = datetime.fromtimestamp(self.replica.physical_time_ms() / 1000, UTC)
        collected_at = collected_at.astimezone()
        today = collected_at.date()
        checked = check_submission(definition, data, today=today, now=collected_at)
        if checked.issues:
            raise InvalidSubmission(form_id, [issue.to_dict() for issue in checked.issues])
        for digest in referenced_attachments(data):
            if self.replica.attachment(digest) is None:
                raise AttachmentError(
                    f"{digest} is not on this tablet: register the file with add_attachment()"
                )
        updates = checked.updates
        instance_id = str(uuid.uuid4())
        with self.replica.transaction() as conn:
            base_revs = {}
            for update in updates:
                rev = local_register.known_rev(conn, update.type, update.id)
                if rev is not None:
                    base_revs[entity_key(update.type, update.id)] = rev
            hlc = self.replica.stamp()
            entry = OutboxEntry(
                instance_id=instance_id,
                device_seq=self.replica.next_device_seq(),
                form_id=form_id,
                form_version=cached.version,
                collected_at=collected_at.isoformat(timespec="milliseconds"),
                hlc=hlc.format(),
                base_revs=base_revs,
                data=data,
            )
            try:  # the server's shape rules, checked before anything is kept
                SubmissionSchema().load(entry.wire())
            except ValidationError as error:
                raise InvalidSubmission(form_id, validation_details(error)) from error
            outbox.add_entry(conn, entry)
            local_register.record_writes(
                conn,
                instance_id,
                hlc,
                (
                    LocalWrite(update.type, update.id, name, value)
                    for update in updates
                    for name, value in update.fields.items()
                ),
            )
        return instance_id

    def definition(self, form_id: str) -> FormDefinition:
        """The cached current definition of `form_id` (what `fill` checks answers with); raises
        `UnknownForm` when this tablet has none."""
        cached = self.replica.current_form(form_id)
        if cached is None:
            raise UnknownForm(form_id)
        return self._definition(cached)

    def _definition(self, cached: CachedForm) -> FormDefinition:
        key = (cached.form_id, cached.version, cached.hash)
        if key not in self._definitions:
            self._definitions[key] = load_definition(cached.definition)
        return self._definitions[key]

    # --- push -----------------------------------------------------------------------------

    def push(self) -> PushReport:
        """Send every completed submission, in batches of at most `batch_size`, gzip-compressed.

        A batch is persisted before it is sent; a batch left open by an earlier failure is sent
        again first, identical (same batch_id and instance_ids), so the server answers
        `duplicate` for what it already has. Results are stored per submission (accepted,
        duplicate, rejected with errors), conflicts kept, the clock advanced, and attachments
        the server lacks uploaded. A batch the server finds too large (413: it had no effect)
        is split and its submissions sent again in smaller batches. Raises `NotLoggedIn`,
        `ServerError`, `ServerUnreachable` or `ProtocolViolation`; what was not processed is
        sent again by the next push.
        """
        token = self._token()
        report = PushReport()
        self._upload_attachments(token, report)
        limit = self.batch_size
        while True:
            with self.replica.transaction() as conn:
                batch = outbox.open_batch(conn) or outbox.start_batch(
                    conn, str(uuid.uuid4()), self.replica.stamp, limit
                )
            if batch is None:
                return report
            try:
                response = self.transport.request(
                    "POST",
                    "/api/v1/sync/push",
                    token=token,
                    json_body=batch.request(self.device_id),
                    compress=True,
                )
            except ServerError as error:
                if error.status != 413 or len(batch.entries) == 1:
                    raise
                with self.replica.transaction() as conn:
                    outbox.abandon_batch(conn, batch.batch_id)
                limit = max(1, len(batch.entries) // 2)
                continue
            self._apply_push_response(batch, _load(PushResponseSchema(), response), report)
            self._upload_attachments(token, report)

    def _apply_push_response(self, batch: Batch, body: dict[str, Any], report: PushReport) -> None:
        results = body["results"]
        if body["batch_id"] != batch.batch_id.lower():
            raise ProtocolViolation(f"push answered batch {body['batch_id']}, not {batch.batch_id}")
        sent = [entry.instance_id for entry in batch.entries]
        answered = [str(result["instance_id"]).lower() for result in results]
        if answered != [instance_id.lower() for instance_id in sent]:
            raise ProtocolViolation(
                f"push of batch {batch.batch_id}: results do not match the submissions sent"
            )
        with self.replica.transaction() as conn:
            for instance_id, result in zip(sent, results, strict=True):
                outbox.record_result(conn, instance_id, result)
                status = result["status"]
                if status == "rejected":
                    local_register.discard_writes(conn, instance_id)
                    report.rejected += 1
                    continue
                local_register.acknowledge_writes(conn, instance_id, result.get("revs") or {})
                report.conflicts += outbox.add_conflicts(
                    conn, instance_id, result.get("conflicts") or []
                )
                if status == "accepted":
                    report.accepted += 1
                else:
                    report.duplicate += 1
            unavailable = self.replica.require_upload(body["missing_attachments"])
            self.replica.observe(body["clock"])
            outbox.close_batch(conn, batch.batch_id)
        report.batches += 1
        report.attachments_unavailable.extend(unavailable)

    def _upload_attachments(self, token: str, report: PushReport) -> None:
        for digest in self.replica.attachments_to_upload():
            attachment = self.replica.attachment(digest)
            assert attachment is not None  # flagged rows exist by construction
            self.transport.request(
                "PUT",
                f"/api/v1/attachments/{digest}",
                token=token,
                raw_body=attachment.content,
                content_type="application/octet-stream",
                accept=(200, 201, 204),
            )
            with self.replica.transaction():
                self.replica.mark_uploaded(digest)
            report.attachments_uploaded += 1

    # --- pull -----------------------------------------------------------------------------

    def pull(self) -> PullReport:
        """Bring the local register up to date with the server, page by page until `more` is
        false; each page is stored (with the cursor) in one transaction.

        Pulled entities replace the local server state; local writes not yet confirmed stay
        shown where their clock is later. `removed` entities are dropped. The clock advances past
        the page's `clock` and every field clock pulled. On `410` the cursor
        and the pulled register are dropped and the pull starts over (once). Raises
        `NotLoggedIn`, `ServerError`, `ServerUnreachable` or `ProtocolViolation`.
        """
        token = self._token()
        report = PullReport()
        while True:
            cursor = self.replica.get_meta("pull_cursor")
            params: dict[str, str | int] = {"limit": self.pull_limit}
            if cursor is not None:
                params["cursor"] = cursor
            try:
                response = self.transport.request(
                    "GET", "/api/v1/sync/pull", token=token, params=params
                )
            except ServerError as error:
                if error.status != 410 or report.resynced:
                    raise
                with self.replica.transaction() as conn:
                    local_register.forget_server_state(conn)
                    self.replica.set_meta("pull_cursor", None)
                report.resynced = True
                continue
            page = _load(PullResponseSchema(), response)
            with self.replica.transaction() as conn:
                for pulled in page["entities"]:
                    local_register.store_pulled(conn, pulled)
                for gone in page["removed"]:
                    local_register.remove_entity(conn, gone["entity"], gone["id"])
                self.replica.set_meta("pull_cursor", page["cursor"])
                # Field clocks too: a write stamped ahead of the worker answering this page (the
                # server's clocks are per process) must still be behind this tablet's next write.
                field_clocks = (c for e in page["entities"] for c in e["clocks"].values())
                self.replica.observe(max([page["clock"], *field_clocks]))
            report.pages += 1
            report.entities += len(page["entities"])
            report.removed += len(page["removed"])
            if not page["more"]:
                return report
            if not page["entities"] and not page["removed"] and page["cursor"] == cursor:
                raise ProtocolViolation("pull says there is more but did not move the cursor")

    def sync(self) -> SyncReport:
        """`push()`, then `pull()`, then `refresh_forms()`: what a tablet does in coverage."""
        pushed = self.push()
        pulled = self.pull()
        return SyncReport(pushed, pulled, self.refresh_forms())

    # --- reading the replica --------------------------------------------------------------

    def entities(self, entity: str | None = None) -> list[LocalEntity]:
        """The local register as shown (server state plus unconfirmed local writes)."""
        return local_register.list_entities(self.replica.conn, entity)

    def entity(self, entity: str, entity_id: str) -> LocalEntity | None:
        return local_register.find_entity(self.replica.conn, entity, entity_id)

    def outbox(self, state: str | None = None) -> list[OutboxEntry]:
        """Completed submissions (all, or in one state: pending, sent, accepted, duplicate,
        rejected), oldest first, with the server's result once known."""
        return outbox.list_entries(self.replica.conn, state)

    def conflicts(self) -> list[dict[str, Any]]:
        """Conflicts the server reported for this tablet's submissions, oldest first."""
        return outbox.list_conflicts(self.replica.conn)

    def status(self) -> dict[str, Any]:
        """Counts and settings: device, server, user, clock, outbox states, register, forms."""
        conn = self.replica.conn
        regions = self.replica.get_meta("regions")
        clock: Hlc | None = self.replica.clock_last
        return {
            "device_id": self.device_id,
            "server": self.server_url,
            "username": self.replica.get_meta("username"),
            "role": self.replica.get_meta("role"),
            "regions": [] if regions is None else cast(list[str], json.loads(regions)),
            "logged_in": self.replica.get_meta("token") is not None,
            "clock": None if clock is None else clock.format(),
            "next_device_seq": int(self.replica.get_meta("next_device_seq") or "1"),
            "has_pull_cursor": self.replica.get_meta("pull_cursor") is not None,
            "outbox": outbox.count_states(conn),
            "entities": local_register.count_entities(conn),
            "unconfirmed_writes": int(
                conn.execute("SELECT count(*) FROM local_writes").fetchone()[0]
            ),
            "conflicts": int(conn.execute("SELECT count(*) FROM conflicts").fetchone()[0]),
            "forms": len(self.replica.forms()),
        }

    def _token(self) -> str:
        token = self.replica.get_meta("token")
        if token is None:
            raise NotLoggedIn("not logged in on this tablet: log in first")
        expires = self.replica.get_meta("token_expires_at")
        if expires is not None and datetime.fromisoformat(expires) <= datetime.now(UTC):
            raise NotLoggedIn("the login on this tablet has expired: log in again")
        return token


def _load(schema: Schema, response: requests.Response) -> dict[str, Any]:
    try:
        loaded = schema.load(response.json())
    except ValueError as error:  # also JSONDecodeError
        raise ProtocolViolation(
            f"{response.request.method} {response.url}: answer is not JSON"
        ) from error
    except ValidationError as error:
        raise ProtocolViolation(
            f"{response.request.method} {response.url}: answer does not match the protocol: "
            + "; ".join(f"{d['path']}: {d['message']}" for d in validation_details(error)[:5])
        ) from error
    return cast(dict[str, Any], loaded)


def _etag(response: requests.Response) -> str | None:
    value = response.headers.get("ETag")
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None
