"""The app factory. Builds everything from settings and has no other side effect: it opens no
connection, runs no migration and starts no thread."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from server.config import Settings
from server.console import init_console
from server.errors import register_error_handlers
from server.request_log import configure_logging, init_request_log
from server.runtime import EXTENSION_KEY, Runtime

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonProvider(DefaultJSONProvider):
    """Responses keep characters as they are (`ensure_ascii` off), except a response that would
    hold a lone surrogate (echoing what a client sent, e.g. an unknown key in an error's path):
    that one is written all-ASCII, so it is still valid UTF-8 instead of a 500."""

    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        text = super().dumps(obj, **kwargs)
        if _LONE_SURROGATE.search(text) is None:
            return text
        return super().dumps(obj, **{**kwargs, "ensure_ascii": True})


def create_app(config: Settings | None = None) -> Flask:
    settings = config if config is not None else Settings.from_env()
    app = Flask("server", instance_path=str(settings.instance_dir), static_folder=None)
    app.json = JsonProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Werkzeug refuses (413) a declared length over this, but silently truncates an undeclared
        # (chunked) body at it: one byte of headroom lets request_body see the excess and say 413.
        MAX_CONTENT_LENGTH=settings.max_body_size + 1,
        TESTING=settings.testing,
        JSON_SORT_KEYS=False,
    )
    if settings.trusted_proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_hops, x_proto=settings.trusted_proxy_hops
        )
    configure_logging(settings.log_level)
    runtime = Runtime.build(settings)
    runtime.passwords.prepare()  # so that even the first login of an unknown user costs a hash
    app.extensions[EXTENSION_KEY] = runtime
    register_error_handlers(app)
    init_request_log(app)
    _register_blueprints(app)
    init_console(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from server.attachments.routes import bp as attachments_bp
    from server.auth.routes import bp as auth_bp
    from server.conflicts.routes import bp as conflicts_bp
    from server.departments.routes import bp as departments_bp
    from server.devices.routes import bp as devices_bp
    from server.exports.job_routes import bp as export_jobs_bp
    from server.exports.routes import bp as exports_bp
    from server.forms.routes import bp as forms_bp
    from server.health.routes import bp as health_bp
    from server.households.routes import bp as households_bp
    from server.monitoring.help_routes import bp as monitoring_help_bp
    from server.monitoring.report_routes import bp as monitoring_reports_bp
    from server.monitoring.routes import bp as monitoring_bp
    from server.monitoring.snapshot_routes import bp as monitoring_snapshots_bp
    from server.openapi import bp as openapi_bp
    from server.regions.routes import bp as regions_bp
    from server.scheduler.routes import bp as jobs_bp
    from server.submissions.routes import bp as submissions_bp
    from server.sync.routes import bp as sync_bp
    from server.users.routes import bp as users_bp
    from server.warnings.routes import bp as warnings_bp

    for blueprint in (
        health_bp,
        auth_bp,
        forms_bp,
        households_bp,
        sync_bp,
        attachments_bp,
        conflicts_bp,
        departments_bp,
        export_jobs_bp,
        exports_bp,
        monitoring_help_bp,
        monitoring_reports_bp,
        monitoring_snapshots_bp,
        jobs_bp,
        submissions_bp,
        monitoring_bp,
        warnings_bp,
        openapi_bp,
        users_bp,
        regions_bp,
        devices_bp,
    ):
        app.register_blueprint(blueprint)
