"""WSGI entry point: `gunicorn wsgi:app`."""

from broker import create_app

app = create_app()
