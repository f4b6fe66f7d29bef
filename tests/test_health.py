"""The health endpoint reports version, database kind and migration state."""

from __future__ import annotations

from server import __version__
from server.app import create_app


def test_health_reports_version_database_and_current_migrations(client, settings):
    body = client.get("/api/v1/health").get_json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"] == settings.database_kind
    assert body["migrations"]["up_to_date"] is True
    assert body["migrations"]["current"] == body["migrations"]["head"] is not None


def test_health_on_an_unmigrated_database_says_migrations_are_pending(settings, tmp_path):
    app = create_app(settings.replace(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    body = app.test_client().get("/api/v1/health").get_json()
    assert body["status"] == "migrations_pending"
    assert body["migrations"]["current"] is None and body["migrations"]["up_to_date"] is False
    app.extensions["fieldsync"].db.dispose()


def test_health_when_the_database_is_unreachable_is_503(settings):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    app = create_app(settings.replace(database_url=url))
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    app.extensions["fieldsync"].db.dispose()
