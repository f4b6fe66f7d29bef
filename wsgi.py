"""WSGI entry point for gunicorn: `gunicorn wsgi:app`. Settings come from the environment."""

from server.app import create_app
from server.serving import tune_for_serving

app = create_app()
tune_for_serving()
