"""The OpenAPI description covers exactly the app's routes, uses the protocol's schemas, and says
what the server does: typed parameters, every status an operation can answer, the content types.
(`test_api_schemathesis.py` holds it to a running server.)"""

from __future__ import annotations

import re

from server.openapi import OPERATIONS, build_spec

_CONVERTER = re.compile(r"<(?:[^:<>]+:)?(\w+)>")  # <form_id>, <uuid:id>, <int(min=1):version>


def _flask_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue  # the web console's pages (HTML, not the API)
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        # HEAD comes with every GET and OPTIONS with every route (Flask adds both).
        found |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_every_route_is_described_and_every_description_is_a_route(app):
    described = {(op.method, op.path) for op in OPERATIONS}
    routes = _flask_operations(app)
    assert routes - described == set(), "routes missing from server/openapi.py"
    assert described - routes == set(), "described operations that are no route"


def test_the_served_description_is_openapi_3_with_the_protocol_schemas(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec == build_spec()
    assert spec["openapi"] == "3.0.3" and spec["info"]["title"] == "fieldsync"
    schemas = spec["components"]["schemas"]
    assert {"PushRequest", "PushResponse", "PullResponse", "Error", "LoginRequest"} <= set(schemas)
    assert "submissions" in schemas["PushRequest"]["properties"]
    push = spec["paths"]["/api/v1/sync/push"]["post"]
    assert push["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PushRequest"
    )
    assert {"400", "401", "403", "413", "415", "422", "500"} <= set(push["responses"])
    publish = spec["paths"]["/api/v1/forms/{form_id}/publish"]["post"]
    assert publish["description"] == "Roles: admin"
    assert publish["parameters"][0] == {
        "name": "form_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,63}$"},
    }
    assert "security" not in spec["paths"]["/api/v1/health"]["get"]


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_error_status_is_documented_with_the_error_shape(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path, method, operation in _operations(spec):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "500" in responses, where
        if "security" in operation:
            assert {"401", "403"} <= set(responses), where
        if "{" in path:
            assert "404" in responses, where  # an id nothing has, or one outside the converter
        if "requestBody" in operation:
            assert {"413", "415"} <= set(responses), where
        for status, response in responses.items():
            if int(status) >= 400:
                content = response["content"]
                assert content == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }, where


def test_protocol_fields_are_typed_and_request_schemas_refuse_unknown_fields(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    login = schemas["LoginRequest"]
    assert login["additionalProperties"] is False and set(login["required"]) == {
        "username",
        "password",
    }
    # No null, {} or a number where the server wants a bounded string (it answers 422).
    assert login["properties"]["username"]["type"] == "string"
    assert login["properties"]["username"]["maxLength"] == 64
    assert login["properties"]["device_id"]["format"] == "uuid"
    submission = schemas["Submission"]["properties"]
    assert submission["form_version"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert submission["data"] == {"type": "object"}
    assert schemas["PushRequest"]["properties"]["submissions"]["items"] == {
        "$ref": "#/components/schemas/Submission"
    }
    for name in ("LoginRequest", "PushRequest", "Submission", "RetireRequest", "ResolveRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    # Exactly one of value and choose (both, or neither, is 422).
    assert schemas["ResolveRequest"]["oneOf"] == [{"required": ["value"]}, {"required": ["choose"]}]
    assert schemas["NewForm"]["required"] == ["form_id"]


def test_query_parameters_are_typed_with_their_bounds(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]

    def query(path):
        return {p["name"]: p for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    pull = query("/api/v1/sync/pull")
    assert pull["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 1000,
    }
    assert pull["cursor"]["schema"]["type"] == "string"
    page = query("/api/v1/submissions/quarantine")
    assert page["offset"]["schema"]["minimum"] == 0 and page["limit"]["schema"]["maximum"] == 1000
    diff = query("/api/v1/forms/{form_id}/diff")
    assert diff["from"]["required"] and diff["to"]["required"]
    assert query("/api/v1/conflicts")["status"]["schema"]["enum"]


def test_attachments_are_raw_bytes_up_and_their_own_content_type_down(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    upload = paths["/api/v1/attachments/{digest}"]["put"]
    assert list(upload["requestBody"]["content"]) == ["application/octet-stream"]
    assert {"200", "201", "404", "413", "415", "422"} <= set(upload["responses"])
    download = paths["/api/v1/attachments/{digest}"]["get"]
    assert list(download["responses"]["200"]["content"]) == ["*/*"]
    assert "304" in download["responses"]


def test_conditional_gets_document_304_and_login_documents_retry_after(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/api/v1/forms/{form_id}", "/api/v1/forms/{form_id}/versions/{version}"):
        operation = paths[path]["get"]
        assert "304" in operation["responses"], path
        assert "If-None-Match" in {p["name"] for p in operation["parameters"]}, path
    throttled = paths["/api/v1/auth/login"]["post"]["responses"]["429"]
    assert throttled["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
