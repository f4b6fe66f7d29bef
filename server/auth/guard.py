"""The one way an endpoint requires a login and a role: `@authenticated(Role.X, ...)`.

It resolves the bearer token (hashed, unexpired, unrevoked, user active, device not revoked),
builds the `Actor`, checks the role and leaves the actor for the route in `current_actor()`.
Region checks on objects happen in services with `Actor.ensure_covers` / `Actor.region_filter`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import g, request

from server.auth import service
from server.auth.actor import Actor
from server.errors import Unauthorized
from server.runtime import runtime
from server.users.models import Role

P = ParamSpec("P")
R = TypeVar("R")


def authenticated(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Require a valid token; with `roles`, also require one of them (else 403)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("missing bearer token")
            rt = runtime()
            with rt.db.autocommit_reads() as session:
                actor = service.actor_for_token(session, token.strip(), address=request.remote_addr)
            g.actor = actor
            if roles:
                actor.ensure_role(*roles)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_actor() -> Actor:
    actor: Actor | None = g.get("actor")
    if actor is None:
        raise Unauthorized("not authenticated")
    return actor
