"""Planning and streaming an export. `plan_export` checks everything that can be refused (dataset,
filters, scope, reveal permission, cursor) and audits a reveal, inside the caller's unit of work,
before a single row is read; `stream_rows` then reads the rows through a server-side cursor in its
own read-only unit of work, so a client that goes away (the generator is closed) stops the query.
Never buffers a dataset, never shows a sensitive value in clear unless the plan reveals.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import Uuid, select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth.actor import Actor
from server.changes.models import Change
from server.config import Settings
from server.db import Database
from server.errors import Forbidden, NotFound, ValidationFailed
from server.exports import cursor as cursors
from server.exports import textrows
from server.exports.columns import HIDDEN, Column
from server.exports.registry import Dataset, ExportFilters, QueryContext, all_datasets
from server.regions.codes import RegionLevel, code_range
from server.regions.models import Region
from server.sensitive import SensitiveCodec
from server.sync.feed import visible_horizon
from sync_protocol.errors import ItemErrorCode

# Rows fetched per round trip from the server-side cursor.
BATCH_ROWS = 2000
# Changed entities read per query in an incremental export.
INCREMENT_CHUNK = 1000

CHANGE_COLUMN = Column(
    "change",
    "变更",
    "Change",
    doc="Incremental exports only: `changed` (the row's current state) or `removed` (left the "
    "export's region or filters, merged away or deleted: only the key is filled).",
)
LABELS = ("code", "zh", "en")


@dataclass(frozen=True)
class ExportOptions:
    filters: ExportFilters = field(default_factory=ExportFilters)
    reveal: bool = False
    labels: str = "code"
    cursor: str | None = None


@dataclass(frozen=True)
class ExportPlan:
    dataset: Dataset
    columns: tuple[Column, ...]  # with CHANGE_COLUMN first in an incremental export
    actor: Actor
    options: ExportOptions
    since_txid: int | None  # incremental: first change-log transaction to export
    horizon: int | None  # change-log transactions below this are covered by this export
    next_cursor: str | None

    @property
    def is_incremental(self) -> bool:
        return self.since_txid is not None


def dataset_named(name: str) -> Dataset:
    dataset = all_datasets().get(name)
    if dataset is None:
        raise NotFound(f"no dataset {name!r}", details={"datasets": sorted(all_datasets())})
    return dataset


def _problem(path: str, message: str) -> dict[str, str]:
    return {"path": path, "code": ItemErrorCode.INVALID_VALUE.value, "message": message}


def plan_export(
    session: Session,
    actor: Actor,
    settings: Settings,
    dataset_name: str,
    options: ExportOptions,
) -> ExportPlan:
    """What the export will read, or the error refusing it. Audits a reveal (the caller's unit of
    work must be a write one then)."""
    dataset = dataset_named(dataset_name)
    filters = options.filters
    given = set(filters.as_document())
    problems = [
        _problem(name, f"dataset {dataset.name} has no {name} filter")
        for name in sorted(given - dataset.filters)
    ]
    problems += [
        _problem(name, f"dataset {dataset.name} needs the {name} filter")
        for name in sorted(dataset.required - given)
    ]
    if options.cursor and dataset.change_entity is None:
        problems.append(_problem("cursor", f"dataset {dataset.name} has no incremental export"))
    if problems:
        raise ValidationFailed("the export's filters are invalid", problems)
    if filters.region is not None:
        actor.ensure_covers(filters.region, "the region asked for")
    if options.reveal and actor.role.value not in settings.reveal_roles:
        raise Forbidden("your role may not reveal identity numbers, phones, health or disability")
    columns = dataset.columns_of(session, filters)
    digest = cursors.filters_digest(
        {k: v for k, v in filters.as_document().items() if k != "changed_since"}
    )
    since_txid: int | None = None
    if options.cursor:
        cursor = cursors.decode(options.cursor, settings.secret_key)
        if (
            cursor.dataset != dataset.name
            or cursor.user_id != actor.user_id
            or cursor.filters != digest
        ):
            raise ValidationFailed(
                "the export cursor cannot be used",
                [_problem("cursor", "issued for another dataset, user or filters")],
            )
        since_txid = cursor.lo
    horizon: int | None = None
    next_cursor: str | None = None
    if dataset.change_entity is not None:
        # Read before any row: every change below it is in this export's rows (or removals).
        horizon = visible_horizon(session)
        next_cursor = cursors.encode(
            cursors.ExportCursor(dataset.name, actor.user_id, digest, horizon),
            settings.secret_key,
        )
    if since_txid is not None:
        columns = (CHANGE_COLUMN, *columns)
    if options.reveal:
        audit.record(
            session,
            "export_reveal",
            user_id=actor.user_id,
            object_type="export",
            object_id=dataset.name,
            region_code=filters.region,
            address=actor.address,
            details={
                "dataset": dataset.name,
                "filters": filters.as_document(),
                "incremental": since_txid is not None,
                "fields": [c.name for c in columns if c.sensitive],
            },
        )
    return ExportPlan(dataset, columns, actor, options, since_txid, horizon, next_cursor)


# --- rows ------------------------------------------------------------------------------------


@dataclass
class RowContext:
    """What column `derive` and dataset `explode` functions may read: the region names of the
    export's scope, the codec, whether to reveal, the read session, the caller and the filters,
    and a memo for what they compute once per export."""

    region_names: dict[str, str]
    codec: SensitiveCodec
    reveal: bool
    session: Session
    actor: Actor
    filters: ExportFilters
    memo: dict[Any, Any] = field(default_factory=dict)
    # Source columns holding UUIDs (shown as text); mappings from `explode` hold text already.
    uuid_sources: frozenset[str] = frozenset()


def _region_names(session: Session, actor: Actor, region: str | None) -> dict[str, str]:
    query = select(Region.code, Region.name)
    if region is not None:
        # The levels above the region are few: read them all, and the region's subtree.
        low, high = code_range(region)
        query = query.where(
            (Region.code >= low) & (Region.code <= high) | (Region.level != RegionLevel.VILLAGE)
        )
    return {code: name for code, name in session.execute(query)}


def _cell(column: Column, labels: str, context: RowContext) -> Callable[[Any], Any] | None:
    """The function turning a source value into the cell value (None: the value as read).
    Cell values are plain Python: str, int, Decimal, bool, date, datetime, list, dict, None."""
    derive = column.derive
    if derive is not None:
        return lambda value: derive(value, context)
    if column.cipher and context.reveal:
        kind = column.sensitive_kind or column.name
        codec = context.codec
        return lambda cipher: codec.reveal(kind, cipher) if cipher else None
    if column.sensitive and column.kind in ("choice", "choices") and not context.reveal:
        return lambda value: None if value is None else HIDDEN
    if column.answer_labels and labels != "code":
        return _answer_label(column, labels)
    if column.kind == "choice":
        if labels == "code" or column.choices is None:
            return lambda value: value.value if isinstance(value, Enum) else value
        choices = column.choices

        def label(value: Any) -> Any:
            if value is None:
                return None
            try:
                return choices(value).label(labels)  # type: ignore[call-arg]
            except ValueError:
                return value

        return label
    if column.kind == "choices":
        if labels == "code" or column.choices is None:
            return None
        many = column.choices

        def label_all(values: Any) -> Any:
            out = []
            for value in values or ():
                try:
                    out.append(many(value).label(labels))  # type: ignore[call-arg]
                except ValueError:
                    out.append(value)
            return out

        return label_all
    if column.kind == "text" and column.source_name in context.uuid_sources:
        return lambda value: None if value is None else str(value)
    return None


def _answer_label(column: Column, labels: str) -> Callable[[Any], Any]:
    """A form's choice answer (one code, or a list for `choices`) as its labels in `labels`;
    a code the form's list lacks (or a hidden `***`) stays as it is."""
    names = {code: zh if labels == "zh" else en for code, zh, en in column.answer_labels}
    if column.kind == "choices":
        return lambda values: (
            None
            if values is None
            else [names.get(v, v) if isinstance(v, str) else v for v in values]
        )
    return lambda value: names.get(value, value) if isinstance(value, str) else value


def row_function(
    columns: tuple[Column, ...], source_names: list[str] | None, labels: str, context: RowContext
) -> Callable[[Any], list[Any]]:
    """Turns one source row (a SELECT row, or a mapping when `source_names` is None) into the
    cells of `columns`, in order."""
    steps: list[tuple[Any, Callable[[Any], Any] | None]] = []
    for column in columns:
        name = column.cipher if (column.cipher and context.reveal) else column.source_name
        where: Any = name if source_names is None else source_names.index(name)
        steps.append((where, _cell(column, labels, context)))
    plain = [where for where, cell in steps]
    if source_names is None:  # mappings: an answer left out is an empty cell
        return lambda row: [
            row.get(where) if cell is None else cell(row.get(where)) for where, cell in steps
        ]
    if all(cell is None for _, cell in steps):
        return lambda row: [row[where] for where in plain]
    return lambda row: [row[where] if cell is None else cell(row[where]) for where, cell in steps]


def stream_rows(db: Database, codec: SensitiveCodec, plan: ExportPlan) -> Iterator[list[Any]]:
    """The export's rows as cell lists in `plan.columns` order. Reads through a server-side cursor
    in its own read-only unit of work; closing the generator ends the query."""
    with db.unit_of_work(write=False) as session:
        yield from _rows(session, codec, plan)


def stream_csv_rows(db: Database, codec: SensitiveCodec, plan: ExportPlan) -> Iterator[Any]:
    """The export's rows with every cell already in its CSV text (`formats.write_csv(...,
    prepared=True)` writes them as they are). Whole exports of datasets read one row per source
    row let the database write most cells (`textrows`); the others convert `stream_rows`."""
    return _prepared_rows(db, codec, plan, "csv")


def stream_xlsx_rows(db: Database, codec: SensitiveCodec, plan: ExportPlan) -> Iterator[Any]:
    """The export's rows with every cell already as openpyxl is to write it (`formats.write_xlsx(
    ..., prepared=True)`): the same values as `stream_rows` converted by `formats.xlsx_converter`,
    but for whole exports of datasets read one row per source row the database gives most cells
    as they are to be written (`textrows`), and each remaining cell is converted by one function
    (reading and writing composed), not two passes."""
    return _prepared_rows(db, codec, plan, "xlsx")


def _prepared_rows(
    db: Database, codec: SensitiveCodec, plan: ExportPlan, target: str
) -> Iterator[Any]:
    from server.exports import formats

    labels = plan.options.labels
    writer_cell = formats.csv_cell if target == "csv" else formats.xlsx_cell
    if plan.is_incremental or plan.dataset.explode is not None:
        convert = (formats.csv_converter if target == "csv" else formats.xlsx_converter)(
            plan.columns, labels
        )
        for row in stream_rows(db, codec, plan):
            yield convert(row)
        return
    with db.unit_of_work(write=False) as session:
        filters = plan.options.filters
        context = RowContext(
            _region_names(session, plan.actor, filters.region),
            codec,
            plan.options.reveal,
            session,
            plan.actor,
            filters,
        )
        statement = plan.dataset.query(_query_context(plan))
        context.uuid_sources = _uuid_sources(statement)

        def python_cell(column: Column) -> Callable[[Any], Any] | None:
            read = _cell(column, labels, context)
            write = writer_cell(column, labels)
            if read is None or write is None:
                return read or write
            return lambda value: write(read(value))

        yield from textrows.csv_text_rows(
            session,
            statement,
            plan.columns,
            labels,
            plan.options.reveal,
            python_cell,
            BATCH_ROWS,
            target,
        )


def _query_context(plan: ExportPlan) -> QueryContext:
    return QueryContext(
        actor=plan.actor,
        filters=plan.options.filters,
        reveal=plan.options.reveal,
        scope=plan.actor.region_filter,
    )


def _rows(session: Session, codec: SensitiveCodec, plan: ExportPlan) -> Iterator[list[Any]]:
    dataset = plan.dataset
    filters = plan.options.filters
    context = RowContext(
        _region_names(session, plan.actor, filters.region),
        codec,
        plan.options.reveal,
        session,
        plan.actor,
        filters,
    )
    ctx = _query_context(plan)
    statement = dataset.query(ctx)
    columns = plan.columns[1:] if plan.is_incremental else plan.columns
    exploded = dataset.explode is not None
    names = None if exploded else [str(c.key) for c in statement.selected_columns]
    context.uuid_sources = _uuid_sources(statement)
    make_row = row_function(columns, names, plan.options.labels, context)
    if not plan.is_incremental:
        # Core execution on the session's connection: plain rows, without the ORM's per-row
        # work (it cost several times the database's own time on a large export).
        result = session.connection().execute(
            statement, execution_options={"stream_results": True, "yield_per": BATCH_ROWS}
        )
        try:
            for row in result:
                if dataset.explode is not None:
                    for item in dataset.explode(row, context):
                        yield make_row(item)
                else:
                    yield make_row(row)
        finally:
            # Closed here, not left to the connection: a client that went away closes this
            # generator mid-stream, and PostgreSQL's server-side cursor must end with it.
            result.close()
        return
    yield from _incremental_rows(session, plan, statement, make_row)


def _uuid_sources(statement: Any) -> frozenset[str]:
    return frozenset(str(c.key) for c in statement.selected_columns if isinstance(c.type, Uuid))


def _incremental_rows(
    session: Session,
    plan: ExportPlan,
    statement: Any,
    make_row: Callable[[Any], list[Any]],
) -> Iterator[list[Any]]:
    """The rows whose entities the change log shows changed in [since_txid, horizon) within the
    caller's scope and region, in their current state; those now outside it are `removed`."""
    dataset = plan.dataset
    assert plan.since_txid is not None and plan.horizon is not None
    changed = select(Change.entity_id).where(
        Change.entity_type == dataset.change_entity,
        Change.txid >= plan.since_txid,
        Change.txid < plan.horizon,
        plan.actor.region_filter(Change.village_code),
    )
    if plan.options.filters.region:
        low, high = code_range(plan.options.filters.region)
        changed = changed.where(Change.village_code >= low, Change.village_code <= high)
    changed = changed.group_by(Change.entity_id)
    key_index = [c.name for c in plan.columns].index(dataset.key)
    width = len(plan.columns)
    ids = session.scalars(changed, execution_options={"stream_results": True, "yield_per": 5000})
    chunk: list[Any] = []
    try:
        for entity_id in ids:
            chunk.append(entity_id)
            if len(chunk) == INCREMENT_CHUNK:
                yield from _changed_chunk(
                    session, statement, dataset, chunk, make_row, key_index, width
                )
                chunk = []
    finally:
        ids.close()  # a client gone mid-stream: end PostgreSQL's server-side cursor now
    if chunk:
        yield from _changed_chunk(session, statement, dataset, chunk, make_row, key_index, width)


def _changed_chunk(
    session: Session,
    statement: Any,
    dataset: Dataset,
    ids: list[Any],
    make_row: Callable[[Any], list[Any]],
    key_index: int,
    width: int,
) -> Iterator[list[Any]]:
    present: set[str] = set()
    for row in session.execute(statement.where(dataset.key_expr.in_(ids))):
        cells = ["changed", *make_row(row)]
        present.add(str(cells[key_index]))
        yield cells
    for entity_id in ids:
        if str(entity_id) not in present:
            removed: list[Any] = [None] * width
            removed[0] = "removed"
            removed[key_index] = str(entity_id)
            yield removed


# --- whole files -------------------------------------------------------------------------------


def export_options(args: dict[str, Any]) -> ExportOptions:
    """The options of an export from its loaded query parameters (schemas.py)."""
    names = ExportFilters.__dataclass_fields__
    filters = ExportFilters(**{k: v for k, v in args.items() if k in names})
    return ExportOptions(
        filters=filters,
        reveal=args.get("reveal") == "sensitive",
        labels=args.get("labels", "code"),
        cursor=args.get("cursor"),
    )


def plan_bundle(
    session: Session, actor: Actor, settings: Settings, options: ExportOptions
) -> list[ExportPlan]:
    """Plans for every dataset the bundle's filters suit (those needing a filter not given, or
    lacking one given, are left out)."""
    if options.cursor:
        raise ValidationFailed(
            "the export's filters are invalid",
            [_problem("cursor", "a ZIP bundle is never incremental")],
        )
    given = set(options.filters.as_document())
    plans = [
        plan_export(session, actor, settings, name, options)
        for name, dataset in sorted(all_datasets().items())
        if given <= dataset.filters and dataset.required <= given
    ]
    if not plans:
        raise ValidationFailed(
            "the export's filters are invalid",
            [_problem("format", "no dataset takes all of these filters")],
        )
    return plans


def render(
    db: Database,
    codec: SensitiveCodec,
    plans: list[ExportPlan],
    fmt: str,
    *,
    bom: bool = False,
    header: str | None = None,
    rows: Callable[[Iterator[list[Any]]], Iterator[list[Any]]] | None = None,
) -> Iterator[bytes]:
    """The bytes of the export in format `fmt` (a ZIP holds one CSV per plan). `rows`, when
    given, wraps each plan's row stream (the CLI counts rows through it)."""
    watch = rows or (lambda stream: stream)
    from server.exports import formats

    if fmt == "zip":
        members = (
            (
                f"{plan.dataset.name}.csv",
                formats.write_csv(
                    plan.columns,
                    watch(stream_csv_rows(db, codec, plan)),
                    labels=plan.options.labels,
                    header=header or "code",
                    bom=bom,
                    prepared=True,
                ),
            )
            for plan in plans
        )
        yield from formats.write_zip(members)
        return
    (plan,) = plans
    if fmt == "csv":
        yield from formats.write_csv(
            plan.columns,
            watch(stream_csv_rows(db, codec, plan)),
            labels=plan.options.labels,
            header=header or "code",
            bom=bom,
            prepared=True,
        )
        return
    if fmt == "jsonl":
        cells = watch(stream_rows(db, codec, plan))
        yield from formats.write_jsonl(plan.columns, cells, header=header or "code")
    else:
        yield from formats.write_xlsx(
            plan.dataset.name,
            plan.columns,
            watch(stream_xlsx_rows(db, codec, plan)),
            labels=plan.options.labels,
            header=header or "zh",
            prepared=True,
        )


# --- the BI feed -------------------------------------------------------------------------------


def feed_page(
    session: Session,
    codec: SensitiveCodec,
    plan: ExportPlan,
    *,
    after: str | None,
    limit: int,
    offset: int = 0,
) -> tuple[list[list[Any]], str | None]:
    """One page of the dataset ordered by its key: the rows (cells in `plan.columns` order) and
    the key to continue after (None on the last page), `offset` source rows after `after`. Rows
    of one source row (a visit's repeats) always travel together."""
    dataset = plan.dataset
    filters = plan.options.filters
    context = RowContext(
        _region_names(session, plan.actor, filters.region),
        codec,
        plan.options.reveal,
        session,
        plan.actor,
        filters,
    )
    statement = dataset.query(_query_context(plan))
    if dataset.key_expr is not None:
        if after is not None:
            try:
                position = uuid.UUID(after)
            except ValueError as exc:
                raise ValidationFailed(
                    "the feed position is invalid", [_problem("after", "not a row key")]
                ) from exc
            statement = statement.where(dataset.key_expr > position)
        statement = statement.add_columns(dataset.key_expr.label("_feed_key"))
        statement = statement.order_by(dataset.key_expr).offset(offset).limit(limit + 1)
    names = (
        None if dataset.explode is not None else [str(c.key) for c in statement.selected_columns]
    )
    context.uuid_sources = _uuid_sources(statement)
    make_row = row_function(plan.columns, names, plan.options.labels, context)
    source = session.execute(statement).all()
    more = dataset.key_expr is not None and len(source) > limit
    source = source[:limit]
    rows: list[list[Any]] = []
    for row in source:
        if dataset.explode is not None:
            rows.extend(make_row(item) for item in dataset.explode(row, context))
        else:
            rows.append(make_row(row))
    next_after = str(source[-1]._feed_key) if more and source else None
    return rows, next_after
