"""HTTP: upload an attachment (`PUT`, any role, raw bytes named by their SHA-256) and download it
(`GET`/`HEAD`, supervisors and admins of a village where a holder's submission references it;
every `GET` audited)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from werkzeug.wsgi import wrap_file

from server.attachments import service
from server.attachments.store import store_for
from server.auth.guard import authenticated, current_actor
from server.errors import UnsupportedMediaType
from server.runtime import runtime

bp = Blueprint("attachments", __name__, url_prefix="/api/v1")

# Downloads are personal data that another user uploaded: never cached by shared proxies, never
# sniffed into something executable, and rendered without scripts even if the type says HTML.
_DOWNLOAD_HEADERS = {
    "Cache-Control": "private, no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


@bp.put("/attachments/<digest>")
@authenticated()
def put_attachment(digest: str) -> tuple[dict[str, Any], int]:
    rt = runtime()
    service.require_digest(digest)
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        # The digest names the stored bytes; a transport encoding would make that ambiguous.
        raise UnsupportedMediaType(
            "attachments are sent without Content-Encoding", details={"content_encoding": encoding}
        )
    content_type = service.upload_content_type(request.mimetype)
    limit = rt.settings.max_attachment_size
    # Werkzeug enforces this per request instead of MAX_BODY_SIZE; one byte of headroom lets the
    # store itself see the excess of an undeclared (chunked) body and refuse it with 413.
    request.max_content_length = limit + 1
    upload = service.store_upload(
        store_for(rt.settings),
        digest,
        request.stream,
        max_size=limit,
        declared_size=request.content_length,
    )
    with rt.db.unit_of_work() as session:
        created = service.record_upload(session, current_actor(), upload, content_type)
    body = {"attachment": upload.digest, "size": upload.size, "created": created}
    return body, 201 if created else 200


@bp.get("/attachments/<digest>")
@authenticated(*service.DOWNLOAD_ROLES)
def get_attachment(digest: str) -> Response:
    rt = runtime()
    store = store_for(rt.settings)
    # HEAD and a revalidation that ends in 304 disclose no content: checked, not audited.
    discloses = request.method == "GET" and digest not in request.if_none_match
    with rt.db.unit_of_work(write=discloses) as session:
        download = service.open_download(session, current_actor(), store, digest, audited=discloses)
    headers = {**_DOWNLOAD_HEADERS, "ETag": f'"{download.digest}"'}
    if digest in request.if_none_match:
        return Response(status=304, headers=headers)
    if request.method == "HEAD":
        response = Response(b"", content_type=download.content_type, headers=headers)
        response.headers["Content-Length"] = str(download.size)
        return response
    response = Response(
        wrap_file(request.environ, service.open_content(store, download)),
        content_type=download.content_type,
        headers=headers,
        direct_passthrough=True,
    )
    response.content_length = download.size
    return response
