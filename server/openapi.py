"""The OpenAPI 3 description of the HTTP API, built with apispec from one table of operations and
the protocol's own marshmallow schemas. A test holds the table and the app's URL map to each other,
so an endpoint cannot be added without being described. Served at `GET /api/v1/openapi.json`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint

from server import __version__
from server.auth.schemas import DeviceAssignRequestSchema
from sync_protocol.errors import ErrorCode
from sync_protocol.messages import (
    ErrorResponseSchema,
    LoginRequestSchema,
    LoginResponseSchema,
    PullResponseSchema,
    PushRequestSchema,
    PushResponseSchema,
)

ANY = ("admin", "supervisor", "collector")
STAFF = ("admin", "supervisor")
ADMIN = ("admin",)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /api/v1/forms/{form_id}
    summary: str
    tag: str
    roles: tuple[str, ...] | None = ANY  # None: no login needed
    request: str | None = None  # a registered schema, or "json" / "multipart" / "binary"
    response: str | None = None  # a registered schema, or None for a generic JSON object
    status: int = 200
    errors: tuple[int, ...] = ()
    parameters: tuple[str, ...] = field(default=())  # query parameters


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        "/api/v1/health",
        "Version, database kind and migration state",
        "service",
        roles=None,
        errors=(503,),
    ),
    Operation("get", "/api/v1/openapi.json", "This description", "service", roles=None),
    Operation(
        "post",
        "/api/v1/auth/login",
        "Log in (with device_id: register and bind a device)",
        "auth",
        roles=None,
        request="LoginRequest",
        response="LoginResponse",
        errors=(400, 401, 403, 413, 415, 422, 429),
    ),
    Operation("get", "/api/v1/auth/me", "The caller", "auth"),
    Operation("post", "/api/v1/auth/logout", "Revoke the token used", "auth", status=204),
    Operation(
        "post",
        "/api/v1/devices/{device_id}/revoke",
        "Revoke a device and its tokens",
        "auth",
        roles=ADMIN,
        errors=(403, 404),
    ),
    Operation(
        "post",
        "/api/v1/devices/{device_id}/assign",
        "Assign a device to a user; other users' tokens for it stop working",
        "auth",
        roles=ADMIN,
        request="DeviceAssignRequest",
        errors=(400, 403, 404, 413, 415, 422),
    ),
    Operation("get", "/api/v1/forms", "Published forms in use", "forms"),
    Operation(
        "post",
        "/api/v1/forms",
        "Create a form with its first draft",
        "forms",
        roles=ADMIN,
        request="json",
        status=201,
        errors=(400, 403, 409, 415, 422),
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}",
        "Current published definition (ETag, 304)",
        "forms",
        errors=(404,),
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/versions",
        "All published versions",
        "forms",
        roles=STAFF,
        errors=(404,),
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/versions/{version}",
        "One published version",
        "forms",
        errors=(404,),
    ),
    Operation(
        "get",
        "/api/v1/forms/{form_id}/diff",
        "Changes between two versions",
        "forms",
        roles=STAFF,
        errors=(400, 404),
        parameters=("from", "to"),
    ),
    Operation(
        "get", "/api/v1/forms/{form_id}/draft", "The draft", "forms", roles=ADMIN, errors=(404,)
    ),
    Operation(
        "put",
        "/api/v1/forms/{form_id}/draft",
        "Replace the draft",
        "forms",
        roles=ADMIN,
        request="json",
        errors=(400, 404, 415, 422),
    ),
    Operation(
        "post",
        "/api/v1/forms/{form_id}/draft/validate",
        "Problems of the draft",
        "forms",
        roles=ADMIN,
        errors=(404,),
    ),
    Operation(
        "post",
        "/api/v1/forms/{form_id}/publish",
        "Publish the draft as the next version",
        "forms",
        roles=ADMIN,
        errors=(404, 409, 422),
    ),
    Operation(
        "post",
        "/api/v1/forms/{form_id}/retire",
        "Retire the form or one version",
        "forms",
        roles=ADMIN,
        request="json",
        errors=(400, 404, 409),
    ),
    Operation(
        "post",
        "/api/v1/forms/import/xlsform",
        "Import an XLSForm workbook as a draft",
        "forms",
        roles=ADMIN,
        request="multipart",
        status=201,
        errors=(400, 413, 415, 422),
    ),
    Operation(
        "get",
        "/api/v1/households/{household_id}",
        "One household and its members",
        "register",
        errors=(403, 404),
        parameters=("reveal",),
    ),
    Operation(
        "get",
        "/api/v1/households/flagged",
        "Households flagged by a merge",
        "register",
        roles=STAFF,
        errors=(422,),
        parameters=("limit", "offset"),
    ),
    Operation(
        "get",
        "/api/v1/submissions/quarantine",
        "Rejected submissions",
        "register",
        roles=STAFF,
        errors=(422,),
        parameters=("limit", "offset", "reveal"),
    ),
    Operation(
        "post",
        "/api/v1/sync/push",
        "Push a batch of submissions",
        "sync",
        request="PushRequest",
        response="PushResponse",
        errors=(400, 403, 413, 415, 422),
    ),
    Operation(
        "get",
        "/api/v1/sync/pull",
        "Pull the register of the caller's regions",
        "sync",
        response="PullResponse",
        errors=(400, 410, 422),
        parameters=("cursor", "limit"),
    ),
    Operation(
        "put",
        "/api/v1/attachments/{digest}",
        "Upload an attachment by its SHA-256",
        "attachments",
        request="binary",
        status=201,
        errors=(400, 413, 422),
    ),
    Operation(
        "get",
        "/api/v1/attachments/{digest}",
        "Download an attachment",
        "attachments",
        roles=STAFF,
        errors=(403, 404),
    ),
    Operation(
        "get",
        "/api/v1/conflicts",
        "Conflicts in the caller's regions",
        "conflicts",
        roles=STAFF,
        errors=(403, 422),
        parameters=("status", "region", "entity", "entity_id", "field", "limit", "offset"),
    ),
    Operation(
        "get",
        "/api/v1/conflicts/{conflict_id}",
        "One conflict",
        "conflicts",
        roles=STAFF,
        errors=(403, 404),
    ),
    Operation(
        "post",
        "/api/v1/conflicts/{conflict_id}/resolve",
        "Resolve by choosing a value",
        "conflicts",
        roles=STAFF,
        request="json",
        errors=(403, 404, 409, 422),
    ),
)

_SCHEMAS = {
    "LoginRequest": LoginRequestSchema,
    "LoginResponse": LoginResponseSchema,
    "DeviceAssignRequest": DeviceAssignRequestSchema,
    "Error": ErrorResponseSchema,
    "PushRequest": PushRequestSchema,
    "PushResponse": PushResponseSchema,
    "PullResponse": PullResponseSchema,
}
_STATUS_CODE = {code.http_status: code for code in ErrorCode}
_PATH_PARAMETER = re.compile(r"{(\w+)}")


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="fieldsync",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Offline-first household monitoring register: forms, sync, review."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in _SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": _ref(op.response) if op.response else {"type": "object"}}
    responses: dict[str, Any] = {str(op.status): {"description": "success"}}
    if op.status != 204:
        responses[str(op.status)]["content"] = {"application/json": content}
    errors = set(op.errors) | ({401, 403} if op.roles is not None else set())
    for status in sorted(errors | {500}):
        code = _STATUS_CODE[status]
        responses[str(status)] = {
            "description": code.value,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAMETER.findall(op.path)
        ]
        + [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in op.parameters
        ],
    }
    if op.roles is not None:
        operation["security"] = [{"bearer": []}]
        operation["description"] = "Roles: " + ", ".join(op.roles)
    if op.request is not None:
        operation["requestBody"] = {"required": True, "content": _request_content(op.request)}
    return operation


def _request_content(kind: str) -> dict[str, Any]:
    if kind == "multipart":
        return {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        }
    if kind == "binary":
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    if kind == "json":
        return {"application/json": {"schema": {"type": "object"}}}
    return {"application/json": {"schema": _ref(kind)}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return build_spec()
