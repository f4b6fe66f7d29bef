"""Accepting a push: every submission of a batch is stored once, forever, with its outcome, and the
accepted ones are merged field by field into the register — all in one transaction, so a batch is
either wholly applied or not at all, and a retry after any failure completes it exactly once.

Per-item outcomes: one bad submission never sinks the others. Work is set-based: a batch costs a
fixed number of statements (locks, lookups, the merge's writes), not a few per submission.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session, defer

from forms.bindings import EntityUpdate
from forms.register import ENTITIES
from forms.submission import check_submission
from server.auth.actor import Actor
from server.bulk import codec_for, insert_rows, select_in
from server.config import Settings
from server.devices.models import Device, DeviceSequenceGap
from server.errors import Forbidden
from server.forms.models import FormVersion
from server.forms.service import acceptance_of, published_definition
from server.json_codec import (
    ascii_json,
    storable,
    storable_text,
    stored_document,
)
from server.monitoring import intake as monitoring_intake
from server.monitoring.intake import AcceptedSubmission
from server.regions.models import Region
from server.sensitive import SensitiveCodec
from server.submissions.models import Submission, SubmissionStatus
from server.submissions.payload import protect_submission_row
from server.sync.apply import (
    AppliedConflict,
    EntityState,
    Origin,
    Workspace,
    load_locked,
)
from server.sync.feed import transaction_marker
from sync_protocol.clock import Hlc, HybridClock, is_too_far_ahead
from sync_protocol.errors import ItemErrorCode
from sync_protocol.merge import EntityMergeOutcome, MergeInputError
from sync_protocol.messages import (
    PushRequest,
    SubmissionItem,
    entity_key,
    submission_fingerprint,
)
from sync_protocol.messages import (
    Submission as LoadedSubmission,
)

SUBMISSIONS = cast(Table, Submission.__table__)
FORM_ID_COLUMN = SUBMISSIONS.c.form_id.type.length  # type: ignore[attr-defined]
HLC_COLUMN = SUBMISSIONS.c.hlc.type.length  # type: ignore[attr-defined]

log = logging.getLogger("fieldsync.sync.push")


@dataclass
class ItemOutcome:
    result: dict[str, Any]
    store: bool = True  # False for re-sends: the first version is kept as it is
    status: SubmissionStatus | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    village_code: str | None = None


@dataclass(frozen=True)
class PushResult:
    batch_id: str
    clock: str
    results: list[dict[str, Any]]
    referenced_attachments: list[str]  # every digest the accepted submissions refer to
    attachment_refs: list[tuple[str, uuid.UUID, str | None]]


def _error(code: str, message: str, path: str = "") -> dict[str, Any]:
    return {"path": path, "code": code, "message": message}


def _rejected(instance_id: str | None, errors: list[dict[str, Any]]) -> ItemOutcome:
    # Paths and ids may hold what the client sent (NUL, lone surrogates): made storable here, so
    # the answer, its stored copy and its replay are the same valid JSON.
    errors = storable(errors)
    return ItemOutcome(
        result={
            "instance_id": None if instance_id is None else storable_text(instance_id),
            "status": "rejected",
            "errors": errors,
        },
        status=SubmissionStatus.REJECTED,
        errors=errors,
    )


@dataclass(frozen=True)
class PushPlan:
    """What a batch asks for, decided without writing: each item's rejection, or the register
    updates it binds to; and each item's content fingerprint."""

    request: PushRequest
    device_id: uuid.UUID
    planned: dict[int, list[EntityUpdate]]
    outcomes: dict[int, ItemOutcome]
    fingerprints: list[str]
    # Every version of each form the batch names (to find answers bound to sensitive fields).
    forms: dict[tuple[str, int], FormVersion] = field(default_factory=dict)


# On SQLite, a batch of more items than this is planned in a read transaction of its own, before
# the write transaction (see `plans_in_write_transaction`).
SQLITE_PLAN_APART_ABOVE = 20


def plans_in_write_transaction(database_kind: str, request: PushRequest) -> bool:
    """Whether `plan_push` runs inside the write transaction of `accept_push` (one transaction
    and one connection for the whole push) rather than in a read transaction before it.

    Planning only reads (the forms), so either is correct. PostgreSQL lets writers run side by
    side and the plan takes no lock: one transaction saves a connection checkout and a commit.
    SQLite has one writer at a time: a large batch's validation (milliseconds per item) should
    overlap another writer's turn instead of holding the write lock, while a small batch's is
    shorter than the second transaction it would cost (docs/benchmarks.md, "Everyday sync")."""
    if database_kind != "sqlite":
        return True
    return len(request["submissions"]) <= SQLITE_PLAN_APART_ABOVE


def plan_push(
    session: Session, actor: Actor, settings: Settings, request: PushRequest, *, now: datetime
) -> PushPlan:
    """Check and bind every item of a batch for `actor` (whose token must be bound to the batch's
    device). Only reads (the forms): in the write transaction, or before it in a read
    transaction of its own (`plans_in_write_transaction`)."""
    device_id = uuid.UUID(request["device_id"])
    if actor.device_id != device_id:
        raise Forbidden(
            "push with a token bound to this device (log in with its device_id)",
            details={"device_id": request["device_id"]},
        )
    items = request["submissions"]
    valid = [item for item in items if item.submission is not None]
    forms = _form_versions(session, valid)

    # 1. Pure checks and bindings, item by item (no database work). Whatever goes wrong judging
    #    one item is that item's rejection, never the batch's failure.
    planned: dict[int, list[EntityUpdate]] = {}
    outcomes: dict[int, ItemOutcome] = {}
    judge = _Judge(forms, now, settings.max_clock_skew, settings.form_retire_grace_days)
    for item in items:
        try:
            judged = judge(item)
        except Exception:
            log.exception(
                "event=push_item_failed device_id=%s index=%d", request["device_id"], item.index
            )
            judged = _rejected(
                item.instance_id,
                [
                    _error(
                        ItemErrorCode.INTERNAL_ITEM_ERROR,
                        "the server could not judge this submission; it is kept in quarantine "
                        "for review",
                    )
                ],
            )
        if isinstance(judged, ItemOutcome):
            outcomes[item.index] = judged
        else:
            planned[item.index] = judged
    # Canonical JSON of every raw item: costly, so computed once per item.
    fingerprints = [_fingerprint(item.raw) for item in items]
    return PushPlan(request, device_id, planned, outcomes, fingerprints, forms)


def _fingerprint(raw: Any) -> str:
    try:
        return submission_fingerprint(raw)
    except (TypeError, ValueError, RecursionError):
        # Not canonical JSON data (too deep for it): still a stable name for its content.
        text = ascii_json(raw, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class _Judge:
    """Judges one item of a batch: its rejection, or the register updates it binds to."""

    forms: dict[tuple[str, int], FormVersion]
    now: datetime
    max_clock_skew: int  # seconds
    grace_days: int  # FORM_RETIRE_GRACE_DAYS
    # Derived from the above, once per batch:
    now_ms: int = field(init=False)
    skew_ms: int = field(init=False)
    latest_collected_at: datetime = field(init=False)
    grace: timedelta = field(init=False)

    def __post_init__(self) -> None:
        skew = timedelta(seconds=self.max_clock_skew)
        object.__setattr__(self, "now_ms", int(self.now.timestamp() * 1000))
        object.__setattr__(self, "skew_ms", self.max_clock_skew * 1000)
        object.__setattr__(self, "latest_collected_at", self.now + skew)
        object.__setattr__(self, "grace", timedelta(days=self.grace_days))

    def __call__(self, item: SubmissionItem) -> ItemOutcome | list[EntityUpdate]:
        sub = item.submission
        if sub is None:
            return _rejected(item.instance_id, [dict(e) for e in item.errors])
        collected = sub["collected_at"]
        if is_too_far_ahead(sub["hlc"], self.now_ms, self.skew_ms):
            return self._clock_ahead(sub, "hlc", "clock")
        if collected > self.latest_collected_at:
            return self._clock_ahead(sub, "collected_at", "collected_at")
        forms = self.forms
        row = forms.get((sub["form_id"], sub["form_version"]))
        if row is None:
            known = any(form_id == sub["form_id"] for form_id, _ in forms)
            code = ItemErrorCode.UNKNOWN_FORM_VERSION if known else ItemErrorCode.UNKNOWN_FORM
            return _rejected(
                sub["instance_id"],
                [
                    _error(
                        code,
                        f"no published form {sub['form_id']} version {sub['form_version']}",
                        "form_version" if known else "form_id",
                    )
                ],
            )
        acceptance = acceptance_of(row, now=self.now, grace=self.grace)
        if not acceptance.accepted:
            return _rejected(
                sub["instance_id"],
                [
                    _error(
                        ItemErrorCode.FORM_VERSION_RETIRED,
                        acceptance.reason or "retired",
                        "form_version",
                    )
                ],
            )
        definition = published_definition(row)
        checked = check_submission(definition, sub["data"], today=collected.date(), now=collected)
        if checked.issues:
            return _rejected(
                sub["instance_id"],
                [{**issue.to_dict(), "path": issue.path} for issue in checked.issues],
            )
        refused = _refused_writes(checked.updates)
        if refused:
            return _rejected(sub["instance_id"], refused)
        return checked.updates

    def _clock_ahead(self, sub: LoadedSubmission, path: str, what: str) -> ItemOutcome:
        return _rejected(
            sub["instance_id"],
            [
                _error(
                    ItemErrorCode.CLOCK_AHEAD,
                    f"the submission's {what} is more than {self.max_clock_skew} s ahead of the "
                    "server's clock; fix the tablet's date",
                    path,
                )
            ],
        )


def accept_push(
    session: Session,
    actor: Actor,
    settings: Settings,
    codec: SensitiveCodec,
    clock: HybridClock,
    plan: PushPlan,
    *,
    now: datetime,
) -> PushResult:
    """Apply a planned batch in the caller's write transaction; exactly once per instance id,
    whatever was committed before (a re-sent item answers `duplicate` or `instance_conflict`)."""
    request, device_id, planned, outcomes = (
        plan.request,
        plan.device_id,
        plan.planned,
        plan.outcomes,
    )
    items, fingerprints = request["submissions"], plan.fingerprints

    # 2. Lock the households this batch writes and read them, then what was stored before (in
    #    this order, so that a concurrent copy of the same batch sees our committed submissions
    #    once it gets the locks).
    named = _named(planned.values())
    workspace = load_locked(session, codec, named.households, named.members, named.written)
    device = session.scalars(select(Device).where(Device.id == device_id).with_for_update()).one()
    if device.owner_id != actor.user_id or device.is_revoked:
        # Reassigned or revoked after the token was checked: under the device's lock, nothing of
        # the batch is written for an account the device no longer belongs to.
        raise Forbidden(
            "this device no longer belongs to your account; log in again",
            details={"device_id": request["device_id"]},
        )
    storage_ids = [_storage_id(item, fp) for item, fp in zip(items, fingerprints, strict=True)]
    stored = _stored_submissions(session, storage_ids)
    villages = _known_villages(session, planned.values())
    txid = transaction_marker(session)
    batch = _Batch(workspace, _Scope(actor), device_id, str(device_id), villages, named.ids)

    # 3. Items in batch order: re-sends, then the merge.
    seen: dict[str, tuple[str, dict[str, Any], bool]] = {
        str(instance_id): (before.content_hash, before.result, before.is_sent_by(batch.scope))
        for instance_id, before in stored.items()
    }
    attachment_refs: list[tuple[str, uuid.UUID, str | None]] = []
    results: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    accepted: list[AcceptedSubmission] = []
    latest: Hlc | None = None  # the latest stamp accepted: the server clock observes it
    for item, fingerprint, instance_id in zip(items, fingerprints, storage_ids, strict=True):
        key = str(instance_id)
        if key in seen:
            outcome = _resend(item, fingerprint, *seen[key])
        else:
            outcome = outcomes.get(item.index) or _merge_item(batch, item, planned[item.index])
            seen[key] = (fingerprint, outcome.result, True)
            new_rows.append(
                _submission_row(
                    item,
                    instance_id,
                    fingerprint,
                    outcome,
                    actor,
                    device_id,
                    request["batch_id"],
                    now,
                    codec,
                    plan.forms,
                )
            )
            if outcome.status is SubmissionStatus.ACCEPTED and item.submission is not None:
                for digest in item.submission["referenced_attachments"]:
                    attachment_refs.append((digest, instance_id, outcome.village_code))
                latest = max(latest, item.submission["hlc"]) if latest else item.submission["hlc"]
                accepted.append(
                    _accepted(item.submission, instance_id, outcome, planned[item.index], batch)
                )
        results.append(outcome.result)

    if latest is not None:
        clock.observe(latest)  # after which the clock is past every accepted stamp

    # 4. Write: register, change log, conflicts, submissions, device sequence bookkeeping.
    workspace.flush(txid)
    if new_rows:
        connection = session.connection()
        submissions = codec_for(SUBMISSIONS, connection.dialect)
        columns = tuple(new_rows[0])
        rows = [submissions.written(columns, tuple(row.values())) for row in new_rows]
        insert_rows(connection, submissions, columns, rows)
    _record_sequence(session, device, [r["device_seq"] for r in new_rows if r["device_seq"]], now)
    monitoring_intake.on_accepted(session, actor, accepted, now, clock=clock, codec=codec)
    if not is_too_far_ahead(
        request["clock"], int(now.timestamp() * 1000), settings.max_clock_skew * 1000
    ):
        clock.observe(request["clock"])
    digests = sorted({digest for digest, _, _ in attachment_refs})
    return PushResult(
        batch_id=request["batch_id"],
        clock=str(clock.now()),
        results=results,
        referenced_attachments=digests,
        attachment_refs=attachment_refs,
    )


def _refused_writes(updates: list[EntityUpdate]) -> list[dict[str, Any]]:
    """Writes no submission may make: server-owned fields, and masked sensitive values (a tablet
    only ever sees identity numbers masked; writing one back would destroy the real number)."""
    errors = []
    for u in updates:
        for name, value in u.fields.items():
            spec = ENTITIES[u.type].fields[name]
            if spec.server_owned:
                errors.append(
                    _error(
                        ItemErrorCode.FIELD_READ_ONLY,
                        f"{u.type}.{name} is decided by the review "
                        "workflow and cannot be written by a submission",
                        f"{u.path}.{name}",
                    )
                )
            elif spec.sensitive and isinstance(value, str) and "*" in value:
                errors.append(
                    _error(
                        ItemErrorCode.INVALID_VALUE,
                        f"{u.type}.{name} looks masked; send the full value or leave it unanswered",
                        f"{u.path}.{name}",
                    )
                )
    return errors


def _form_versions(
    session: Session, items: list[SubmissionItem]
) -> dict[tuple[str, int], FormVersion]:
    pairs = {
        (i.submission["form_id"], i.submission["form_version"])
        for i in items
        if i.submission is not None
    }
    form_ids = {form_id for form_id, _ in pairs}
    if not pairs:
        return {}
    # Every version of each named form: also tells "unknown version" from "unknown form". The
    # definitions (tens of kilobytes of JSON each) are read only for a version this process has
    # not parsed yet: published versions never change, and their parse is kept by content hash.
    rows = session.scalars(
        select(FormVersion)
        .where(FormVersion.form_id.in_(form_ids))
        .options(defer(FormVersion.definition))
    ).all()
    for row in rows:
        # Loads the definition now, while the session is open, if this process has not parsed it.
        # One that fails to parse is loaded all the same, and refuses its items one by one in
        # the judge, as before.
        with contextlib.suppress(Exception):
            published_definition(row)
    return {(row.form_id, row.version): row for row in rows}


@dataclass(frozen=True)
class _Named:
    """The entities a batch's planned updates name: every id parsed (parents included), the
    households and members to load, and the fields written, by entity type."""

    ids: dict[str, uuid.UUID]
    households: set[uuid.UUID]
    members: set[uuid.UUID]
    written: dict[str, set[str]]


def _named(plans: Iterable[list[EntityUpdate]]) -> _Named:
    named = _Named({}, set(), set(), {"household": set(), "member": set()})

    def parsed(text: str) -> uuid.UUID:
        entity_id = named.ids.get(text)
        if entity_id is None:
            entity_id = named.ids[text] = uuid.UUID(text)
        return entity_id

    for updates in plans:
        for u in updates:
            named.written[u.type].update(u.fields)
            if u.type == "household":
                named.households.add(parsed(u.id))
                continue
            named.members.add(parsed(u.id))
            if u.parent is not None:
                named.households.add(parsed(u.parent[1]))
    return named


def _storage_id(item: SubmissionItem, fingerprint: str) -> uuid.UUID:
    """The submission's key: its instance id, or for a submission too broken to have one, a name
    derived from its content (so re-sending it is still recognised)."""
    try:
        return uuid.UUID(str(item.instance_id))
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"fieldsync:unidentified:{fingerprint}")


@dataclass(frozen=True)
class _StoredSubmission:
    """What a re-send is answered from: the first version's fingerprint and result, and who sent
    it from where."""

    content_hash: str
    result: dict[str, Any]
    device_id: uuid.UUID
    user_id: int
    village_code: str | None

    def is_sent_by(self, scope: _Scope) -> bool:
        """Whether the caller sent it (same user, same device) and may still see where it went:
        only then does a re-send replay its result."""
        return (
            self.user_id == scope.actor.user_id
            and self.device_id == scope.actor.device_id
            and (self.village_code is None or scope.covers(self.village_code))
        )


def _stored_submissions(
    session: Session, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, _StoredSubmission]:
    """What is already stored of each of `ids`."""
    codec = codec_for(SUBMISSIONS, session.get_bind().dialect)
    columns = ("instance_id", "content_hash", "result", "device_id", "user_id", "village_code")
    rows = select_in(session.connection(), codec, columns, [("instance_id", set(ids))])
    if not rows:
        return {}
    read_id, read_result = codec.reader("instance_id"), codec.reader("result")
    read_device = codec.reader("device_id")
    return {
        read_id(key): _StoredSubmission(
            content_hash, read_result(result), read_device(device), user, village
        )
        for key, content_hash, result, device, user, village in rows
    }


def _resend(
    item: SubmissionItem,
    fingerprint: str,
    stored_hash: str,
    original: dict[str, Any],
    is_senders: bool,
) -> ItemOutcome:
    """The answer to a re-sent instance id. Only its own sender learns the first version's
    outcome; anyone else who sends the same content gets a bare `duplicate` (nothing of the
    stored submission: no revisions, conflicts or errors)."""
    if fingerprint != stored_hash:
        return ItemOutcome(
            result={
                "instance_id": _echoed_id(item),
                "status": "rejected",
                "errors": [
                    _error(
                        ItemErrorCode.INSTANCE_CONFLICT,
                        "this instance_id was already received with different content; the first "
                        "version is kept",
                        "instance_id",
                    )
                ],
            },
            store=False,
        )
    if not is_senders:
        return ItemOutcome(
            result={
                "instance_id": _echoed_id(item),
                "status": "duplicate",
            },
            store=False,
        )
    if original.get("status") == "rejected":
        return ItemOutcome(result=dict(original), store=False)
    replay = {
        "instance_id": original.get("instance_id"),
        "status": "duplicate",
        "revs": original.get("revs", {}),
    }
    if original.get("conflicts"):
        replay["conflicts"] = original["conflicts"]
    return ItemOutcome(result=replay, store=False)


def _echoed_id(item: SubmissionItem) -> str | None:
    """The item's instance id as answers echo it (storable, whatever it holds)."""
    return storable_text(item.instance_id) if item.instance_id else None


def _known_villages(session: Session, plans: Iterable[list[EntityUpdate]]) -> set[str]:
    codes = {
        str(u.fields["village_code"])
        for updates in plans
        for u in updates
        if u.type == "household" and u.fields.get("village_code")
    }
    if not codes:
        return set()
    return set(session.scalars(select(Region.code).where(Region.code.in_(codes))))


def _accepted(
    sub: LoadedSubmission,
    instance_id: uuid.UUID,
    outcome: ItemOutcome,
    updates: list[EntityUpdate],
    batch: _Batch,
) -> AcceptedSubmission:
    """What the monitoring workflow is told about one accepted submission."""
    households: list[uuid.UUID] = []
    for u in updates:
        state = batch.workspace.find(u.type, batch.ids[u.id])
        household = (
            None if state is None else (state.id if u.type == "household" else state.household_id)
        )
        if household is not None and household not in households:
            households.append(household)
    return AcceptedSubmission(
        instance_id=instance_id,
        form_id=sub["form_id"],
        form_version=sub["form_version"],
        collected_at=sub["collected_at"],
        household_ids=tuple(households),
        village_code=outcome.village_code,
        data=sub["data"],
    )


@dataclass(frozen=True)
class _Batch:
    """What every item of a batch is merged with: the workspace, the caller's scope, the device
    (id and text), the villages the batch names that exist, and its entity ids parsed."""

    workspace: Workspace
    scope: _Scope
    device_id: uuid.UUID
    device: str
    villages: set[str]
    ids: dict[str, uuid.UUID]


def _merge_item(batch: _Batch, item: SubmissionItem, updates: list[EntityUpdate]) -> ItemOutcome:
    """Merge one valid submission, all of it or (on any refusal) none of it."""
    sub: LoadedSubmission = item.submission  # type: ignore[assignment]
    workspace, scope, ids = batch.workspace, batch.scope, batch.ids
    origin = Origin(
        origin=batch.device,
        submission_id=uuid.UUID(sub["instance_id"]),
        device_id=batch.device_id,
        user_id=scope.actor.user_id,
    )
    base_revs, hlc = sub["base_revs"], sub["hlc"]
    errors: list[dict[str, Any]] = []
    staged: list[tuple[EntityState, EntityMergeOutcome, str]] = []
    preview = _PreviewWorkspace(workspace)
    for u in updates:
        state = preview.find(u.type, ids[u.id])
        if state is None:
            if not u.create:
                errors.append(
                    _error(
                        ItemErrorCode.NOT_FOUND,
                        f"{u.type} {u.id} is not in the register and this form may not create it",
                        u.path,
                    )
                )
                continue
            state = workspace.new_entity(u.type, ids[u.id])
        key = entity_key(u.type, u.id)
        before = preview.village_of(state)
        try:
            outcome = workspace.preview(state, u.fields, hlc, base_revs.get(key), origin)
        except MergeInputError as exc:
            errors.append(_error(ItemErrorCode.INVALID_BASE_REV, str(exc), f'base_revs["{key}"]'))
            continue
        preview.stage(state, outcome)
        after = preview.village_of(state) if preview.may_have_moved(state) else before
        errors.extend(_scope_errors(scope, u, before, after, batch.villages))
        staged.append((state, outcome, key))
    if errors:
        return _rejected(sub["instance_id"], errors)
    revs: dict[str, int] = {}
    conflicts: list[AppliedConflict] = []
    for state, outcome, key in staged:
        conflicts.extend(workspace.commit(state, outcome, hlc, origin))
        revs[key] = outcome.rev
    village = next((workspace.village_of(s) for s, _, _ in staged if s.type == "household"), None)
    result: dict[str, Any] = {"instance_id": sub["instance_id"], "status": "accepted", "revs": revs}
    if conflicts:
        result["conflicts"] = [
            {
                "entity": c.entity,
                "id": str(c.entity_id),
                "field": c.field,
                "value": c.incoming_value,
                "other_value": c.other_value,
                "winner": "this" if c.incoming_won else "other",
                "conflict_id": str(c.id),
            }
            for c in conflicts
        ]
    return ItemOutcome(result=result, status=SubmissionStatus.ACCEPTED, village_code=village)


class _Scope:
    """Which villages the caller covers, each answered once per batch."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self._covered: dict[str, bool] = {}

    def covers(self, village: str) -> bool:
        covered = self._covered.get(village)
        if covered is None:
            covered = self._covered[village] = self.actor.covers(village)
        return covered


def _scope_errors(
    scope: _Scope, u: EntityUpdate, before: str | None, after: str | None, villages: set[str]
) -> list[dict[str, Any]]:
    if after is None:
        what = "a village_code" if u.type == "household" else "its household in the register"
        return [_error(ItemErrorCode.INVALID_ENTITY, f"a new {u.type} needs {what}", u.path)]
    if u.type == "household" and u.fields.get("village_code") and after not in villages:
        return [
            _error(
                ItemErrorCode.UNKNOWN_REGION,
                f"no village {after} in the register",
                f"{u.path}.village_code",
            )
        ]
    for village in (before, after) if before != after else (after,):
        if village and not scope.covers(village):
            return [
                _error(
                    ItemErrorCode.FORBIDDEN,
                    f"{u.type} {u.id} is in village {village}, outside your regions",
                    u.path,
                )
            ]
    return []


class _PreviewWorkspace:
    """The workspace as an item would leave it, for checking the item before anything is kept:
    a member created by the same item belongs to a household the item also creates."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.staged: dict[tuple[str, uuid.UUID], tuple[EntityState, EntityMergeOutcome]] = {}

    def find(self, entity_type: str, entity_id: uuid.UUID) -> EntityState | None:
        staged = self.staged.get((entity_type, entity_id))
        return staged[0] if staged else self.workspace.find(entity_type, entity_id)

    def stage(self, state: EntityState, outcome: EntityMergeOutcome) -> None:
        self.staged[(state.type, state.id)] = (state, outcome)

    def may_have_moved(self, state: EntityState) -> bool:
        """Whether the staged writes may have put `state` in another village: it is new, or its
        village (a household's `village_code`, a member's household or that household's
        village) changed value. Otherwise its village is the one it had before."""
        if state.is_new:
            return True
        staged = self.staged.get((state.type, state.id))
        place = "village_code" if state.type == "household" else "household_id"
        if staged and place in staged[1].value_changed_fields:
            return True
        if state.type == "household" or state.household_id is None:
            return False
        household = self.staged.get(("household", state.household_id))
        return household is not None and self.may_have_moved(household[0])

    def _value(self, state: EntityState, name: str) -> Any:
        staged = self.staged.get((state.type, state.id))
        fields = staged[1].fields if staged else state.fields
        field_state = fields.get(name)
        return None if field_state is None else field_state.value

    def village_of(self, state: EntityState) -> str | None:
        if state.type == "household":
            value = self._value(state, "village_code")
            return str(value) if value else None
        staged = self.staged.get((state.type, state.id))
        if staged and "household_id" in staged[1].value_changed_fields:
            household_id: uuid.UUID | None = uuid.UUID(str(staged[1].fields["household_id"].value))
        else:
            household_id = state.household_id
        household = self.find("household", household_id) if household_id else None
        return self.village_of(household) if household else None


def _submission_row(
    item: SubmissionItem,
    instance_id: uuid.UUID,
    fingerprint: str,
    outcome: ItemOutcome,
    actor: Actor,
    device_id: uuid.UUID,
    batch_id: str,
    now: datetime,
    codec: SensitiveCodec,
    forms: dict[tuple[str, int], FormVersion],
) -> dict[str, Any]:
    sub = item.submission
    raw = item.raw if isinstance(item.raw, dict) else {"value": item.raw}
    status = outcome.status or SubmissionStatus.REJECTED
    errors = outcome.errors
    row = protect_submission_row(
        codec,
        forms,
        {
            "instance_id": instance_id,
            "batch_id": uuid.UUID(batch_id),
            "device_id": device_id,
            "user_id": actor.user_id,
            # A loaded submission's values fit their columns (the protocol's bounds are the
            # columns'); a rejected one's are cut to fit.
            "form_id": sub["form_id"] if sub else _column_text(raw.get("form_id"), FORM_ID_COLUMN),
            "form_version": sub["form_version"] if sub else 0,
            "collected_at": sub["collected_at"] if sub else None,
            "hlc": str(sub["hlc"]) if sub else _column_text(raw.get("hlc"), HLC_COLUMN),
            "device_seq": sub["device_seq"] if sub else None,
            "payload": raw,
            "content_hash": fingerprint,
            "status": status.value,
            "result": outcome.result,
            "errors": errors,
            "quarantine_reason": storable_text(str(errors[0]["message"]))[:255] if errors else None,
            "village_code": outcome.village_code,
            "received_at": now,
        },
    )
    if sub is None:
        # A loaded submission passed the protocol's text and number checks and is storable as it
        # is (protection only adds ASCII markers); an unreadable one may hold what no database
        # accepts as JSON, and is then kept as escaped JSON text.
        row["payload"] = stored_document(row["payload"])
    return row


def _column_text(value: object, length: int) -> str:
    return storable_text(value)[:length] if isinstance(value, str) else ""


def _record_sequence(session: Session, device: Device, seqs: list[int], now: datetime) -> None:
    """Remember which `device_seq` numbers were never received (a tablet's lost submissions), as
    ranges: the cost follows the number of submissions received, never the size of a gap."""
    if not seqs:
        return
    received = sorted(set(seqs))
    highest = device.highest_seq
    gaps = DeviceSequenceGap
    if received[0] <= highest:
        # Late arrivals fill known gaps: each gap they fall in is split around them.
        late = [s for s in received if s <= highest]
        touched = session.scalars(
            select(gaps).where(
                gaps.device_id == device.id,
                gaps.first_seq <= late[-1],
                gaps.last_seq >= late[0],
            )
        ).all()
        kept: list[dict[str, Any]] = []
        filled: list[int] = []
        for gap in touched:
            pieces = _split(gap.first_seq, gap.last_seq, late)
            if pieces == [(gap.first_seq, gap.last_seq)]:
                continue
            filled.append(gap.first_seq)
            noticed = gap.noticed_at
            kept.extend(
                {"device_id": device.id, "first_seq": a, "last_seq": b, "noticed_at": noticed}
                for a, b in pieces
            )
        if filled:
            session.execute(
                delete(gaps).where(gaps.device_id == device.id, gaps.first_seq.in_(filled))
            )
        if kept:
            session.execute(insert(gaps), kept)
    top = received[-1]
    if top > highest:
        new = _split(highest + 1, top - 1, [s for s in received if s > highest])
        if new:
            session.execute(
                insert(gaps),
                [
                    {"device_id": device.id, "first_seq": a, "last_seq": b, "noticed_at": now}
                    for a, b in new
                ],
            )
        device.highest_seq, device.last_seen_at = top, now


def _split(first: int, last: int, received: list[int]) -> list[tuple[int, int]]:
    """The parts of the range `first..last` (empty when last < first) that `received` (sorted)
    leaves uncovered."""
    pieces: list[tuple[int, int]] = []
    start = first
    for seq in received:
        if seq < start:
            continue
        if seq > last:
            break
        if seq > start:
            pieces.append((start, seq - 1))
        start = seq + 1
    if start <= last:
        pieces.append((start, last))
    return pieces
