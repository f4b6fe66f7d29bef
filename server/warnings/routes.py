"""HTTP: warnings by region, rule, status, source; one warning with its history; refer, handle,
dismiss; the rules' configuration by year and province. Thin: parse, call one service, dump."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from server.auth.guard import authenticated, current_actor
from server.db import utcnow
from server.request_body import json_object, load_with, query_arguments
from server.runtime import runtime
from server.users.models import Role
from server.warnings import config, service
from server.warnings.schemas import (
    ConfigQuerySchema,
    ConfigSchema,
    ConfigUpdateSchema,
    DismissWarningSchema,
    HandleWarningSchema,
    ReferWarningSchema,
    WarningListQuerySchema,
    WarningPageSchema,
    WarningQuerySchema,
    WarningSchema,
)

bp = Blueprint("warnings", __name__, url_prefix="/api/v1")

STAFF = (Role.ADMIN, Role.SUPERVISOR)


@bp.get("/warnings")
@authenticated(*STAFF)
def list_warnings() -> dict[str, Any]:
    rt = runtime()
    args = load_with(WarningListQuerySchema(), query_arguments())
    filters = service.WarningFilters(
        region=args.get("region"),
        rule=args.get("rule"),
        status=args.get("status"),
        source=args.get("source"),
        holds=None if "holds" not in args else args["holds"] == "true",
        household_id=uuid.UUID(args["household_id"]) if "household_id" in args else None,
        limit=args["limit"],
        offset=args["offset"],
    )
    reveal = args.get("reveal") == "sensitive"
    with rt.db.unit_of_work(write=reveal) as session:  # a reveal is audited
        page = service.list_warnings(
            session, current_actor(), filters, reveal=reveal, settings=rt.settings
        )
    result: dict[str, Any] = WarningPageSchema().dump(page)
    return result


@bp.get("/warnings/<uuid:warning_id>")
@authenticated(*STAFF)
def get_warning(warning_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    args = load_with(WarningQuerySchema(), query_arguments())
    reveal = args.get("reveal") == "sensitive"
    with rt.db.unit_of_work(write=reveal) as session:  # a reveal is audited
        view = service.get_warning(
            session, current_actor(), warning_id, reveal=reveal, settings=rt.settings
        )
    result: dict[str, Any] = WarningSchema().dump(view)
    return result


@bp.post("/warnings/<uuid:warning_id>/refer")
@authenticated(*STAFF)
def refer_warning(warning_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(ReferWarningSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        view = service.refer_warning(
            session,
            current_actor(),
            warning_id,
            causes=body.get("causes"),
            note=body.get("note"),
            version=body.get("version"),
            now=utcnow(),
            clock=rt.clock,
            codec=rt.codec,
        )
    result: dict[str, Any] = WarningSchema().dump(view)
    return result


@bp.post("/warnings/<uuid:warning_id>/handle")
@authenticated(*STAFF)
def handle_warning(warning_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(HandleWarningSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        view = service.handle_warning(
            session,
            current_actor(),
            warning_id,
            note=body.get("note"),
            version=body.get("version"),
            now=utcnow(),
        )
    result: dict[str, Any] = WarningSchema().dump(view)
    return result


@bp.post("/warnings/<uuid:warning_id>/dismiss")
@authenticated(*STAFF)
def dismiss_warning(warning_id: uuid.UUID) -> dict[str, Any]:
    rt = runtime()
    body = load_with(DismissWarningSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        view = service.dismiss_warning(
            session,
            current_actor(),
            warning_id,
            reason=body["reason"],
            version=body.get("version"),
            now=utcnow(),
        )
    result: dict[str, Any] = WarningSchema().dump(view)
    return result


@bp.get("/warnings/config")
@authenticated(*STAFF)
def get_config() -> dict[str, Any]:
    rt = runtime()
    args = load_with(ConfigQuerySchema(), query_arguments())
    province = args.get("province", config.EVERY_PROVINCE)
    with rt.db.unit_of_work(write=False) as session:
        values = config.describe(session, args["year"], province)
    return _config_body(args["year"], province, values, [], {})


@bp.put("/warnings/config")
@authenticated(Role.ADMIN)
def put_config() -> dict[str, Any]:
    rt = runtime()
    body = load_with(ConfigUpdateSchema(), json_object(rt.settings.max_body_size))
    with rt.db.unit_of_work() as session:
        changed, outcome = service.change_config(
            session, current_actor(), body["year"], body["province"], body["values"], now=utcnow()
        )
        values = config.describe(session, body["year"], body["province"])
    return _config_body(body["year"], body["province"], values, changed, outcome.as_dict())


def _config_body(
    year: int,
    province: str,
    values: list[config.ConfigValue],
    changed: list[str],
    reevaluated: dict[str, int],
) -> dict[str, Any]:
    result: dict[str, Any] = ConfigSchema().dump(
        {
            "year": year,
            "province": province,
            "settings": [
                {
                    "name": v.spec.name,
                    "value": v.value,
                    "default": v.spec.default,
                    "minimum": v.spec.minimum,
                    "maximum": v.spec.maximum,
                    "label": v.spec.zh,
                    "set_for": None if v.set_for is None else f"{v.set_for[0]}/{v.set_for[1]}",
                }
                for v in values
            ],
            "changed": changed,
            "reevaluated": reevaluated,
        }
    )
    return result
