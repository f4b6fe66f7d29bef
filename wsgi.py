"""WSGI entry point for gunicorn: `gunicorn wsgi:app`. Settings come from the environment."""

from server.app import create_app

app = create_app()
