"""HTTP: exports of the register, visits, review queues, cases and summaries as streamed files,
and the paged JSON feed for BI tools. Thin: parse, plan (checks and audit in one unit of work),
then stream the rows read in their own read-only unit of work."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request, stream_with_context

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.errors import NotFound
from server.exports import odata, service
from server.exports.formats import MEDIA_TYPES, dumps
from server.exports.registry import all_datasets
from server.exports.schemas import (
    DatasetListSchema,
    ExportQuerySchema,
    FeedQuerySchema,
    FilterQuerySchema,
    ODataPageSchema,
    ODataQuerySchema,
    ODataServiceSchema,
)
from server.request_body import load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role

bp = Blueprint("exports", __name__, url_prefix="/api/v1/exports")

STAFF = (Role.ADMIN, Role.SUPERVISOR)
_EXTENSIONS = {"csv": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "zip": "zip"}


@bp.get("")
@authenticated(*STAFF)
def list_datasets() -> dict[str, Any]:
    datasets = [
        {
            "name": d.name,
            "zh": d.zh,
            "en": d.en,
            "filters": sorted(d.filters),
            "incremental": d.change_entity is not None,
            "columns": [_column_document(c) for c in d.columns],
        }
        for d in all_datasets().values()
    ]
    result: dict[str, Any] = DatasetListSchema().dump({"datasets": datasets})
    return result


def _column_document(column: Any) -> dict[str, Any]:
    return {
        "name": column.name,
        "zh": column.zh,
        "en": column.en,
        "type": column.kind,
        "sensitive": column.sensitive,
    }


@bp.get("/<dataset>")
@authenticated(*STAFF)
def export_dataset(dataset: str) -> Response:
    rt = runtime()
    args = load_with(ExportQuerySchema(), query_arguments())
    options = service.export_options(args)
    fmt = args["format"]
    with rt.db.unit_of_work(write=options.reveal) as session:
        if fmt == "zip":
            if dataset != "all":
                service.dataset_named(dataset)  # 404 for an unknown name
            plans = service.plan_bundle(session, current_actor(), rt.settings, options)
            if dataset != "all":
                plans = [p for p in plans if p.dataset.name == dataset]
        else:
            plans = [service.plan_export(session, current_actor(), rt.settings, dataset, options)]
    body = service.render(
        rt.db,
        rt.codec,
        plans,
        fmt,
        bom=args.get("bom") in ("true", "1"),
        header=args.get("header"),
    )
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    response = Response(stream_with_context(body), mimetype=MEDIA_TYPES[fmt])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{dataset}-{stamp}.{_EXTENSIONS[fmt]}"'
    )
    if len(plans) == 1 and plans[0].next_cursor:
        response.headers["X-Export-Cursor"] = plans[0].next_cursor
    return response


@bp.get("/<dataset>/feed")
@authenticated(*STAFF)
def dataset_feed(dataset: str) -> Response:
    rt = runtime()
    args = load_with(FeedQuerySchema(), query_arguments())
    options = service.export_options(args)
    with rt.db.unit_of_work(write=options.reveal) as session:
        plan = service.plan_export(session, current_actor(), rt.settings, dataset, options)
        rows, after = service.feed_page(
            session, rt.codec, plan, after=args.get("after"), limit=args["limit"]
        )
    keys = [c.name for c in plan.columns]
    page: dict[str, Any] = {
        "dataset": dataset,
        "columns": [_column_document(c) for c in plan.columns],
        "value": [dict(zip(keys, row, strict=True)) for row in rows],
    }
    if after is not None:
        query = {k: v for k, v in request.args.items() if k != "after"}
        page["next"] = f"{request.base_url}?{urlencode({**query, 'after': after})}"
    return Response(dumps(page), mimetype="application/json")


# --- OData v4 (exports/odata.py) -----------------------------------------------------------------


def _odata_root() -> str:
    return f"{request.host_url.rstrip('/')}{bp.url_prefix}/odata"


def _odata(document: dict[str, Any]) -> Response:
    response = Response(dumps(document), mimetype="application/json")
    response.headers["OData-Version"] = "4.0"
    return response


@bp.get("/odata")
@authenticated(*STAFF)
def odata_service() -> Response:
    root = _odata_root()
    sets = [
        {"name": d.name, "kind": "EntitySet", "url": d.name}
        for d in odata.feed_datasets(all_datasets().values())
    ]
    return _odata(ODataServiceSchema().dump({"odata_context": f"{root}/$metadata", "value": sets}))


@bp.get("/odata/$metadata")
@authenticated(*STAFF)
def odata_metadata() -> Response:
    body = odata.metadata_xml(odata.feed_datasets(all_datasets().values()))
    response = Response(body, mimetype="application/xml")
    response.headers["OData-Version"] = "4.0"
    return response


@bp.get("/odata/<dataset>")
@authenticated(*STAFF)
def odata_entity_set(dataset: str) -> Response:
    rt = runtime()
    args = load_with(ODataQuerySchema(), query_arguments())
    found = service.dataset_named(dataset)
    if found not in odata.feed_datasets([found]):
        raise NotFound(f"dataset {dataset!r} is not an OData entity set")
    raw_filters = odata.parse_filter(args["filter"], found) if "filter" in args else {}
    filters = load_with(FilterQuerySchema(), raw_filters)
    options = service.export_options(filters)
    with rt.db.unit_of_work(write=False) as session:
        plan = service.plan_export(session, current_actor(), rt.settings, dataset, options)
        chosen = odata.select_columns(args.get("select"), plan.columns)
        rows, after = service.feed_page(
            session,
            rt.codec,
            plan,
            after=args.get("skiptoken"),
            limit=args["top"],
            offset=args["skip"],
        )
    root = _odata_root()
    page: dict[str, Any] = {
        "odata_context": f"{root}/$metadata#{dataset}",
        "value": [odata.entity(plan.columns, row, chosen) for row in rows],
    }
    if after is not None and args["top"] > 0:
        query = {k: v for k, v in request.args.items() if k not in ("$skiptoken", "$skip")}
        page["next_link"] = f"{request.base_url}?{urlencode({**query, '$skiptoken': after})}"
    return _odata(ODataPageSchema().dump(page))
