"""Test doubles for the tablet client's HTTP: a real `requests` adapter that answers from Python,
and a small in-memory sync server speaking the protocol's shapes (no merge rules, no database).

They stand in for the network only; end-to-end behaviour is tested against the real server in
test_e2e_sync.py.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from forms.bindings import derive_register_updates
from forms.bundled import load_bundled_form
from sync_protocol.clock import Hlc
from sync_protocol.messages import entity_key

BASE_URL = "http://tablet.test"
TOKEN = "token-for-tests"
PASSWORD = "correct-horse-battery"


@dataclass
class Reply:
    """A canned HTTP answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def build(self, request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status
        response.request = request
        response.url = request.url or ""
        response.reason = "test"
        response.encoding = "utf-8"
        headers = dict(self.headers)
        if self.raw is not None:
            response._content = self.raw
        elif self.body is not None:
            response._content = json.dumps(self.body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            response._content = b""
        response.headers = CaseInsensitiveDict(headers)
        return response


def error_reply(status: int, code: str, message: str = "no", **headers: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message, "details": {}}}, headers)


Handler = Callable[[requests.PreparedRequest], "Reply | BaseException"]


class ScriptedAdapter(BaseAdapter):
    """Routes each request by (method, path) to a handler; records every request sent.

    A handler returns a `Reply` or an exception instance (raised as if the network failed).
    """

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], Handler] = {}
        self.sent: list[requests.PreparedRequest] = []

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def script(self, method: str, path: str, *replies: Reply | BaseException) -> None:
        """Answer the route with these replies in turn (the last one repeats)."""
        queue = list(replies)

        def next_reply(request: requests.PreparedRequest) -> Reply | BaseException:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route(method, path, next_reply)

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.sent.append(request)
        path = path_of(request)
        handler = self.routes.get((str(request.method), path))
        if handler is None:
            return error_reply(404, "not_found", f"no route {request.method} {path}").build(request)
        reply = handler(request)
        if isinstance(reply, BaseException):
            raise reply
        return reply.build(request)

    def close(self) -> None:
        pass

    def sent_to(self, method: str, path: str) -> list[requests.PreparedRequest]:
        return [r for r in self.sent if r.method == method and path_of(r) == path]


def path_of(request: requests.PreparedRequest) -> str:
    return urlsplit(str(request.url)).path


def session_with(adapter: BaseAdapter) -> requests.Session:
    session = requests.Session()
    session.mount(BASE_URL + "/", adapter)
    return session


def request_json(request: requests.PreparedRequest) -> Any:
    body = request.body
    assert isinstance(body, bytes)
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


def query(request: requests.PreparedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def form_hash(definition: dict[str, Any]) -> str:
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class FakeSyncServer:
    """Just enough of the server for client unit tests: login, forms with ETag, an idempotent
    push (every valid-looking submission accepted, revs counted per entity), scripted pull
    pages. Mount `adapter` on a session (see `session_with`)."""

    def __init__(self, server_ms: int | None = None) -> None:
        self.adapter = ScriptedAdapter()
        self.server_ms = server_ms or int(datetime.now(UTC).timestamp() * 1000)
        self._counter = itertools.count()
        self.definitions = {
            form_id: {**load_bundled_form(form_id).to_dict(), "version": 1}
            for form_id in ("household_visit", "household_register")
        }
        self.results: dict[str, dict[str, Any]] = {}
        self.revs: dict[str, int] = {}
        self.pull_pages: list[Reply] = []
        self.missing_attachments: list[str] = []
        self.uploaded: dict[str, bytes] = {}
        self.conflicts_for: dict[str, list[dict[str, Any]]] = {}
        self.reject: set[str] = set()
        a = self.adapter
        a.route("POST", "/api/v1/auth/login", self.login)
        a.route("GET", "/api/v1/forms", self.list_forms)
        for form_id in self.definitions:
            a.route("GET", f"/api/v1/forms/{form_id}", self.get_form)
        a.route("POST", "/api/v1/sync/push", self.push)
        a.route("GET", "/api/v1/sync/pull", self.pull)

    def clock(self) -> str:
        return Hlc(self.server_ms, next(self._counter), "server").format()

    def login(self, request: requests.PreparedRequest) -> Reply:
        body = request_json(request)
        if body.get("password") != PASSWORD:
            return error_reply(401, "unauthorized", "wrong username or password")
        expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        user = {"username": body["username"], "role": "collector", "regions": ["990102001001"]}
        return Reply(200, {"token": TOKEN, "expires_at": expires, "user": user})

    def list_forms(self, request: requests.PreparedRequest) -> Reply:
        forms = [
            {
                "form_id": form_id,
                "version": d["version"],
                "title": d["title"],
                "hash": form_hash(d),
                "published_at": "2026-11-20T08:15:00+00:00",
            }
            for form_id, d in self.definitions.items()
        ]
        return Reply(200, {"forms": forms})

    def get_form(self, request: requests.PreparedRequest) -> Reply:
        form_id = path_of(request).rsplit("/", 1)[-1]
        definition = self.definitions[form_id]
        etag = f'"{form_hash(definition)}"'
        if request.headers.get("If-None-Match") == etag:
            return Reply(304, headers={"ETag": etag})
        return Reply(200, definition, {"ETag": etag})

    def push(self, request: requests.PreparedRequest) -> Reply:
        body = request_json(request)
        results = []
        for sub in body["submissions"]:
            instance_id = sub["instance_id"]
            if instance_id in self.results:
                results.append({**self.results[instance_id], "status": "duplicate"})
                continue
            if instance_id in self.reject:
                result: dict[str, Any] = {
                    "instance_id": instance_id,
                    "status": "rejected",
                    "errors": [{"path": "data", "code": "out_of_scope", "message": "no"}],
                }
            else:
                revs = {}
                definition = load_bundled_form(sub["form_id"])
                today = date.fromisoformat(sub["collected_at"][:10])
                for update in derive_register_updates(definition, sub["data"], today=today):
                    key = entity_key(update.type, update.id)
                    known = max(self.revs.get(key, 0), sub["base_revs"].get(key, 0))
                    self.revs[key] = known + 1
                    revs[key] = self.revs[key]
                result = {"instance_id": instance_id, "status": "accepted", "revs": revs}
                conflicts = self.conflicts_for.get(instance_id)
                if conflicts:
                    result["conflicts"] = conflicts
            self.results[instance_id] = result
            results.append(result)
        return Reply(
            200,
            {
                "batch_id": body["batch_id"],
                "clock": self.clock(),
                "results": results,
                "missing_attachments": self.missing_attachments,
            },
        )

    def pull(self, request: requests.PreparedRequest) -> Reply:
        if not self.pull_pages:
            return Reply(
                200,
                {
                    "entities": [],
                    "removed": [],
                    "cursor": "end",
                    "more": False,
                    "clock": self.clock(),
                },
            )
        return self.pull_pages.pop(0)

    def page(
        self,
        entities: list[dict[str, Any]],
        *,
        cursor: str,
        more: bool = False,
        removed: list[dict[str, str]] | None = None,
    ) -> Reply:
        return Reply(
            200,
            {
                "entities": entities,
                "removed": removed or [],
                "cursor": cursor,
                "more": more,
                "clock": self.clock(),
            },
        )

    def accept_uploads(self) -> None:
        def put(request: requests.PreparedRequest) -> Reply:
            digest = path_of(request).rsplit("/", 1)[-1]
            assert isinstance(request.body, bytes)
            self.uploaded[digest] = request.body
            return Reply(201, {"attachment": digest})

        for digest in self.missing_attachments:
            self.adapter.route("PUT", f"/api/v1/attachments/{digest}", put)


def pulled(
    entity: str, entity_id: str, rev: int, fields: dict[str, Any], clock: str
) -> dict[str, Any]:
    """A pulled entity with every field stamped `clock`."""
    return {
        "entity": entity,
        "id": entity_id,
        "rev": rev,
        "deleted": False,
        "fields": fields,
        "clocks": dict.fromkeys(fields, clock),
    }
