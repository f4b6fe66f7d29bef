"""Attachments: content-addressed uploads checked against their digest and size, safe under
concurrency; downloads only for supervisors of a referencing village, every one audited."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from server.app import create_app
from server.attachments.models import Attachment, AttachmentRef
from server.attachments.service import missing_attachments, record_references
from server.attachments.store import CHUNK_SIZE, FileSystemStore, store_for
from server.audit.models import AuditEntry
from server.auth.actor import Actor
from server.users.models import RegionGrant, Role, User
from tests.conftest import COUNTY, TOWNSHIP_A, TOWNSHIP_B, VILLAGE_A1, VILLAGE_B1, bearer
from tests.sync.helpers import store_accepted_submission

PHOTO = b"\xff\xd8\xff\xe0 a small jpeg-ish photo of a house " * 100


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def url_for(digest: str) -> str:
    return f"/api/v1/attachments/{digest}"


def stored_files(root: Path) -> list[Path]:
    """Every file under the store's root, temporary ones included."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def store(settings) -> FileSystemStore:
    return store_for(settings)


@pytest.fixture
def collector_token(create_user_, login):
    create_user_("collector", Role.COLLECTOR, [VILLAGE_A1])
    return login("collector")


@pytest.fixture
def submission_in(rt, create_user_):
    """`submission_in(village)` → the instance id of a new accepted submission in `village`."""
    username = create_user_("uploader", Role.COLLECTOR, [COUNTY])

    def factory(village: str | None) -> uuid.UUID:
        return store_accepted_submission(rt, username, village, hlc="1763597700000-00001-tablet")[0]

    return factory


@pytest.fixture
def uploader_token(submission_in, login) -> str:
    """A token of the user whose submissions `submission_in` stores."""
    token: str = login("uploader")
    return token


@pytest.fixture
def photo_in_village_a1(client, uploader_token, submission_in, rt) -> str:
    """PHOTO uploaded as image/jpeg by its sender, and referenced by a submission in village A1."""
    digest = digest_of(PHOTO)
    response = client.put(
        url_for(digest), data=PHOTO, content_type="image/jpeg", headers=bearer(uploader_token)
    )
    assert response.status_code == 201
    instance_id = submission_in(VILLAGE_A1)
    with rt.db.unit_of_work() as session:
        record_references(session, [(digest, instance_id, VILLAGE_A1)])
    return digest


def download_audits(rt) -> list[AuditEntry]:
    with rt.db.unit_of_work(write=False) as session:
        return list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "download_attachment"))
        )


class CountingStream(io.RawIOBase):
    """A request body of `total` bytes produced on demand, remembering how much was read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer):
        size = min(len(buffer), self.total - self.consumed)
        buffer[:size] = b"x" * size
        self.consumed += size
        return size


def put_stream(client, digest: str, body: CountingStream, token: str, *, declared: bool):
    """PUT `body` as the WSGI input, with its Content-Length declared or without one (chunked:
    the server marks such input as terminated, as gunicorn does)."""
    builder = EnvironBuilder(
        path=url_for(digest), method="PUT", headers=list(bearer(token).items())
    )
    environ = builder.get_environ()
    builder.close()
    environ["wsgi.input"] = body
    if declared:
        environ["CONTENT_LENGTH"] = str(body.total)
    else:
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input_terminated"] = True
    return client.open(Request(environ))


# --- upload ------------------------------------------------------------------------------------


def test_new_upload_is_201_and_stores_the_exact_bytes_with_their_content_type(
    client, collector_token, store, rt
):
    digest = digest_of(PHOTO)
    response = client.put(
        url_for(digest), data=PHOTO, content_type="image/jpeg", headers=bearer(collector_token)
    )
    assert response.status_code == 201
    assert response.get_json() == {"attachment": digest, "size": len(PHOTO), "created": True}
    hex_digest = digest.removeprefix("sha256:")
    path = store.root / hex_digest[:2] / hex_digest[2:4] / hex_digest
    assert path.read_bytes() == PHOTO
    assert stored_files(store.root) == [path]
    with rt.db.unit_of_work(write=False) as session:
        row = session.get(Attachment, digest)
        assert row is not None
        assert (row.content_type, row.size) == ("image/jpeg", len(PHOTO))


def test_uploading_the_same_content_again_is_200_and_keeps_the_first_content_type(
    client, collector_token, store, rt
):
    digest = digest_of(PHOTO)
    first = client.put(
        url_for(digest), data=PHOTO, content_type="image/jpeg", headers=bearer(collector_token)
    )
    again = client.put(
        url_for(digest), data=PHOTO, content_type="image/png", headers=bearer(collector_token)
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["created"] is False
    assert len(stored_files(store.root)) == 1
    with rt.db.unit_of_work(write=False) as session:
        assert session.get(Attachment, digest).content_type == "image/jpeg"


def test_upload_whose_bytes_do_not_match_the_digest_is_422_and_stores_nothing(
    client, collector_token, store, rt
):
    claimed = digest_of(b"what the tablet meant to send")
    response = client.put(
        url_for(claimed), data=PHOTO, content_type="image/jpeg", headers=bearer(collector_token)
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    [detail] = error["details"]["errors"]
    assert detail["path"] == "body" and detail["code"] == "invalid_attachment"
    assert digest_of(PHOTO) in detail["message"]
    assert stored_files(store.root) == []
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0


SMALL_LIMIT = 100_000


@pytest.fixture
def small_limit_client(settings, collector_token):
    """A second app on the same database whose attachment limit is SMALL_LIMIT bytes."""
    app = create_app(settings.replace(max_attachment_size=SMALL_LIMIT))
    yield app.test_client()
    app.extensions["fieldsync"].db.dispose()


def test_upload_over_the_size_limit_is_413_and_stores_nothing(
    small_limit_client, collector_token, store
):
    data = b"y" * (SMALL_LIMIT + 1)
    response = small_limit_client.put(
        url_for(digest_of(data)),
        data=data,
        content_type="image/jpeg",
        headers=bearer(collector_token),
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    assert response.get_json()["error"]["details"] == {"limit": SMALL_LIMIT}
    assert stored_files(store.root) == []
    exactly = data[:SMALL_LIMIT]
    response = small_limit_client.put(
        url_for(digest_of(exactly)), data=exactly, headers=bearer(collector_token)
    )
    assert response.status_code == 201


def test_declared_oversize_upload_is_refused_before_its_body_is_read(
    small_limit_client, collector_token, store
):
    body = CountingStream(SMALL_LIMIT + 1)
    response = put_stream(
        small_limit_client, digest_of(b"anything"), body, collector_token, declared=True
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    assert body.consumed == 0
    assert stored_files(store.root) == []


def test_undeclared_length_upload_is_refused_while_streaming_not_after_reading_it_all(
    small_limit_client, collector_token, store
):
    # 50 times the limit, with no Content-Length (chunked, as gunicorn passes it on).
    body = CountingStream(50 * SMALL_LIMIT)
    response = put_stream(
        small_limit_client, digest_of(b"anything"), body, collector_token, declared=False
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    assert body.consumed <= SMALL_LIMIT + 2 * CHUNK_SIZE
    assert stored_files(store.root) == []


def test_attachment_limit_applies_even_above_the_general_body_limit(settings, collector_token):
    app = create_app(settings.replace(max_body_size=1000, max_attachment_size=5000))
    try:
        data = b"z" * 4000
        response = app.test_client().put(
            url_for(digest_of(data)), data=data, headers=bearer(collector_token)
        )
    finally:
        app.extensions["fieldsync"].db.dispose()
    assert response.status_code == 201


def test_upload_without_a_token_is_401_and_stores_nothing(client, store):
    response = client.put(url_for(digest_of(PHOTO)), data=PHOTO, content_type="image/jpeg")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert stored_files(store.root) == []


@pytest.mark.parametrize(
    "name",
    [
        "sha256:" + "A" * 64,  # upper-case hex
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "md5:" + "a" * 32,
        "a" * 64,  # no algorithm
    ],
)
def test_malformed_attachment_names_are_404_for_upload_and_download(
    client, create_user_, login, name, store
):
    create_user_("admin", Role.ADMIN)
    token = login("admin")
    put = client.put(url_for(name), data=b"x", headers=bearer(token))
    get = client.get(url_for(name), buffered=True, headers=bearer(token))
    assert (put.status_code, get.status_code) == (404, 404)
    assert put.get_json()["error"]["code"] == "not_found"
    assert stored_files(store.root) == []


def test_upload_with_a_content_encoding_is_415(client, collector_token, store):
    response = client.put(
        url_for(digest_of(PHOTO)),
        data=PHOTO,
        headers={**bearer(collector_token), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 415
    assert stored_files(store.root) == []


def test_concurrent_uploads_of_the_same_content_leave_one_intact_file(
    app, collector_token, store, rt
):
    digest = digest_of(PHOTO)
    workers = 8
    start = threading.Barrier(workers)
    statuses: list[int] = []

    def upload() -> None:
        client = app.test_client()
        start.wait()
        response = client.put(
            url_for(digest), data=PHOTO, content_type="image/jpeg", headers=bearer(collector_token)
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=upload) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == workers and set(statuses) <= {200, 201} and 201 in statuses
    [path] = stored_files(store.root)  # no temporary file left behind either
    assert digest_of(path.read_bytes()) == digest
    with rt.db.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 1


def test_store_put_from_many_threads_reports_and_keeps_a_single_file(tmp_path):
    store = FileSystemStore(tmp_path / "store")
    digest = digest_of(PHOTO)
    start = threading.Barrier(6)
    created: list[bool] = []

    def put() -> None:
        start.wait()
        created.append(store.put(digest, io.BytesIO(PHOTO)))

    threads = [threading.Thread(target=put) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert any(created)
    assert [p.name for p in stored_files(store.root)] == [digest.removeprefix("sha256:")]
    with store.open(digest) as stored:
        assert stored.read() == PHOTO
    assert store.size(digest) == len(PHOTO)
    assert store.put(digest, PHOTO) is False


# --- download ----------------------------------------------------------------------------------


def test_supervisor_in_region_downloads_the_bytes_with_their_type_and_it_is_audited(
    client, create_user_, login, photo_in_village_a1, rt
):
    create_user_("township_a", Role.SUPERVISOR, [TOWNSHIP_A])
    response = client.get(
        url_for(photo_in_village_a1), buffered=True, headers=bearer(login("township_a"))
    )
    assert response.status_code == 200
    assert response.data == PHOTO
    assert response.mimetype == "image/jpeg"
    assert response.headers["ETag"] == f'"{photo_in_village_a1}"'
    assert response.headers["Content-Length"] == str(len(PHOTO))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    [entry] = download_audits(rt)
    assert entry.object_type == "attachment"
    assert entry.object_id == photo_in_village_a1.removeprefix("sha256:")
    assert entry.region_code == VILLAGE_A1
    assert entry.details["attachment"] == photo_in_village_a1
    with rt.db.unit_of_work(write=False) as session:
        assert session.get(User, entry.user_id).username == "township_a"


def test_supervisor_outside_the_referencing_villages_gets_404_and_no_audit_entry(
    client, create_user_, login, photo_in_village_a1, rt
):
    # The same answer as for a file that does not exist: no one learns what exists elsewhere.
    create_user_("township_b", Role.SUPERVISOR, [TOWNSHIP_B])
    token = bearer(login("township_b"))
    response = client.get(url_for(photo_in_village_a1), buffered=True, headers=token)
    unknown = client.get(url_for(digest_of(b"never uploaded")), buffered=True, headers=token)
    assert (response.status_code, unknown.status_code) == (404, 404)
    assert response.get_json()["error"] == unknown.get_json()["error"] | {
        "details": {"attachment": photo_in_village_a1}
    }
    assert client.head(url_for(photo_in_village_a1), headers=token).status_code == 404
    assert download_audits(rt) == []


def test_a_reference_from_another_village_opens_the_file_to_its_supervisors(
    client, create_user_, login, photo_in_village_a1, submission_in, rt
):
    create_user_("township_b", Role.SUPERVISOR, [TOWNSHIP_B])
    token = login("township_b")
    assert (
        client.get(url_for(photo_in_village_a1), buffered=True, headers=bearer(token)).status_code
        == 404
    )
    in_b1 = submission_in(VILLAGE_B1)
    with rt.db.unit_of_work() as session:
        record_references(session, [(photo_in_village_a1, in_b1, VILLAGE_B1)])
    response = client.get(url_for(photo_in_village_a1), buffered=True, headers=bearer(token))
    assert response.status_code == 200
    assert download_audits(rt)[0].region_code == VILLAGE_B1


def test_collector_may_not_download_even_from_their_own_village(
    client, collector_token, photo_in_village_a1, rt
):
    response = client.get(
        url_for(photo_in_village_a1), buffered=True, headers=bearer(collector_token)
    )
    assert response.status_code == 403
    assert download_audits(rt) == []


def test_admin_downloads_any_attachment_even_one_nothing_references(
    client, create_user_, login, collector_token, rt
):
    digest = digest_of(b"orphan signature")
    client.put(url_for(digest), data=b"orphan signature", headers=bearer(collector_token))
    create_user_("admin", Role.ADMIN)
    response = client.get(url_for(digest), buffered=True, headers=bearer(login("admin")))
    assert response.status_code == 200
    assert response.data == b"orphan signature"
    assert response.mimetype == "application/octet-stream"
    [entry] = download_audits(rt)
    assert entry.region_code is None


def test_unknown_attachment_is_404(client, create_user_, login, regions):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    response = client.get(
        url_for(digest_of(b"never uploaded")), headers=bearer(login("supervisor"))
    )
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_download_without_token_is_401(client, photo_in_village_a1):
    assert client.get(url_for(photo_in_village_a1)).status_code == 401


def test_head_gives_the_headers_without_body_and_is_not_audited(
    client, create_user_, login, photo_in_village_a1, rt
):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    response = client.head(
        url_for(photo_in_village_a1), buffered=True, headers=bearer(login("supervisor"))
    )
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(PHOTO))
    assert response.mimetype == "image/jpeg"
    assert download_audits(rt) == []


def test_revalidation_with_the_etag_is_304_without_body(
    client, create_user_, login, photo_in_village_a1, rt
):
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    response = client.get(
        url_for(photo_in_village_a1),
        buffered=True,
        headers={**bearer(login("supervisor")), "If-None-Match": f'"{photo_in_village_a1}"'},
    )
    assert response.status_code == 304
    assert response.data == b""
    assert download_audits(rt) == []


def test_an_uploaded_html_page_cannot_run_scripts_when_downloaded(
    client, uploader_token, create_user_, login, submission_in, rt
):
    page = b"<script>steal()</script>"
    digest = digest_of(page)
    client.put(url_for(digest), data=page, content_type="text/html", headers=bearer(uploader_token))
    in_a1 = submission_in(VILLAGE_A1)
    with rt.db.unit_of_work() as session:
        record_references(session, [(digest, in_a1, VILLAGE_A1)])
    create_user_("supervisor", Role.SUPERVISOR, [COUNTY])
    response = client.get(url_for(digest), buffered=True, headers=bearer(login("supervisor")))
    assert response.status_code == 200
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- references and missing files ----------------------------------------------------------------


def test_record_references_is_idempotent_and_keeps_the_first_village(rt, submission_in):
    first, second = submission_in(VILLAGE_A1), submission_in(VILLAGE_B1)
    photo, signature = digest_of(b"photo"), digest_of(b"signature")
    refs = [(photo, first, VILLAGE_A1), (signature, first, VILLAGE_A1), (photo, second, None)]
    with rt.db.unit_of_work() as session:
        record_references(session, [*refs, refs[0]])
    with rt.db.unit_of_work() as session:
        record_references(session, [(photo, first, VILLAGE_B1), *refs])
    with rt.db.unit_of_work(write=False) as session:
        rows = session.execute(
            select(AttachmentRef.digest, AttachmentRef.instance_id, AttachmentRef.village_code)
        ).all()
    assert sorted(rows, key=str) == sorted(refs, key=str)


def test_record_references_with_nothing_to_record_does_nothing(rt, regions):
    with rt.db.unit_of_work() as session:
        record_references(session, [])
        assert session.scalar(select(func.count()).select_from(AttachmentRef)) == 0


def test_record_references_refuses_a_malformed_digest(rt, submission_in):
    instance_id = submission_in(VILLAGE_A1)
    with pytest.raises(ValueError), rt.db.unit_of_work() as session:
        record_references(session, [("sha256:XYZ", instance_id, VILLAGE_A1)])


def test_missing_attachments_lists_the_unknown_digests_sorted_and_once(
    client, collector_token, store, rt
):
    have = digest_of(PHOTO)
    client.put(url_for(have), data=PHOTO, headers=bearer(collector_token))
    lacking = sorted([digest_of(b"one"), digest_of(b"two")])
    asked = [lacking[1], have, lacking[0], lacking[1]]
    with rt.db.unit_of_work(write=False) as session:
        collector = actor_named(session, "collector")
        assert missing_attachments(session, collector, store, asked) == lacking
        assert missing_attachments(session, collector, store, [have]) == []
        assert missing_attachments(session, collector, store, []) == []


def actor_named(session, username: str) -> Actor:
    user = session.scalars(select(User).where(User.username == username)).one()
    grants = session.scalars(select(RegionGrant.region_code).where(RegionGrant.user_id == user.id))
    return Actor(user.id, user.username, user.role, tuple(grants))
