"""The WSGI entry point: `gunicorn wsgi:app` (gunicorn.conf.py holds the production defaults)."""
from app import create_app

app = create_app()
