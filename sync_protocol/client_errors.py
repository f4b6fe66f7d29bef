"""The errors the reference tablet client raises, all under `ClientError`: callers show the
message, the subclass says what to do next. Messages never carry a password or a token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ClientError(Exception):
    """Anything the tablet client cannot do; `str()` is a message for people."""


class NotLoggedIn(ClientError):
    """No token stored, or the server refused it (401): log in again."""


class ServerUnreachable(ClientError):
    """Connection errors or timeouts persisted through every retry; nothing was lost locally."""


class ServerError(ClientError):
    """An error answer from the server, parsed from the protocol's JSON error shape.

    `status` is the HTTP status, `code` the protocol's error code (`validation_error`, …, or
    `http_<status>` when the body was not the protocol's shape), `details` as sent.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = {} if details is None else details


class ProtocolViolation(ClientError):
    """The server answered 2xx with something the protocol does not allow (wrong shape, ids)."""


class UnknownForm(ClientError):
    """The form is not in the local cache: run `refresh_forms()` (or `fieldsync-tablet forms`)."""

    def __init__(self, form_id: str) -> None:
        super().__init__(
            f"form {form_id!r} is not on this tablet: fetch the published forms with "
            "`fieldsync-tablet forms` (or `sync`), which also lists them"
        )
        self.form_id = form_id


class InvalidSubmission(ClientError):
    """Local validation refused the answers; `issues` lists every `{path, code, message}`."""

    def __init__(self, form_id: str, issues: Sequence[Mapping[str, Any]]) -> None:
        lines = "; ".join(f"{i['path']}: {i['message']} ({i['code']})" for i in issues[:10])
        more = f" … and {len(issues) - 10} more" if len(issues) > 10 else ""
        super().__init__(f"answers for {form_id} are not valid: {lines}{more}")
        self.form_id = form_id
        self.issues = [dict(issue) for issue in issues]


class AttachmentError(ClientError):
    """An attachment could not be read or registered (missing file, unreadable bytes)."""
