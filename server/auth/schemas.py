"""Shapes of the auth and device endpoints. The login request is the protocol's own schema."""

from __future__ import annotations

from typing import Any

from server.auth.actor import Actor
from sync_protocol.messages import LoginRequestSchema, ProtocolString, RequestSchema

__all__ = ["DeviceAssignRequestSchema", "LoginRequestSchema", "actor_json"]


class DeviceAssignRequestSchema(RequestSchema):
    """`POST /api/v1/devices/{device_id}/assign` body: the account that owns the device now."""

    username = ProtocolString(required=True, max_length=64)


def actor_json(actor: Actor) -> dict[str, Any]:
    return {
        "username": actor.username,
        "role": actor.role.value,
        "regions": list(actor.region_codes),
    }
