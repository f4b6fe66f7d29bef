"""The fieldsync HTTP service: app factory (`server.app.create_app`), configuration, register
models, API, services and CLI. Importing this package has no side effects."""

__version__ = "0.1.0"
