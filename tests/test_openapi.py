"""The OpenAPI description covers exactly the app's endpoints and uses the protocol's schemas."""

from __future__ import annotations

import re

from server.openapi import OPERATIONS


def _flask_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        found |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def test_every_endpoint_is_described_and_every_description_is_an_endpoint(app):
    described = {(op.method, op.path) for op in OPERATIONS}
    assert described == _flask_operations(app)


def test_the_served_description_is_openapi_3_with_the_protocol_schemas(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"] == "3.0.3" and spec["info"]["title"] == "fieldsync"
    schemas = spec["components"]["schemas"]
    assert {"PushRequest", "PushResponse", "PullResponse", "Error", "LoginRequest"} <= set(schemas)
    assert "submissions" in schemas["PushRequest"]["properties"]
    push = spec["paths"]["/api/v1/sync/push"]["post"]
    assert push["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PushRequest"
    )
    assert {"401", "413", "422", "500"} <= set(push["responses"])
    publish = spec["paths"]["/api/v1/forms/{form_id}/publish"]["post"]
    assert publish["description"] == "Roles: admin"
    assert publish["parameters"][0] == {
        "name": "form_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    assert "security" not in spec["paths"]["/api/v1/health"]["get"]
