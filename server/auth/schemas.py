"""Shapes of the auth endpoints. The login request is the protocol's own schema."""

from __future__ import annotations

from typing import Any

from server.auth.actor import Actor
from sync_protocol.messages import LoginRequestSchema

__all__ = ["LoginRequestSchema", "actor_json"]


def actor_json(actor: Actor) -> dict[str, Any]:
    return {
        "username": actor.username,
        "role": actor.role.value,
        "regions": list(actor.region_codes),
    }
