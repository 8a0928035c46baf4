"""WSGI entry point for gunicorn: `deckchat.wsgi:app`."""
from . import create_app

app = create_app()
