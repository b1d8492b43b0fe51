"""WSGI entry point: the only place the app is created (`flask --app wsgi`, gunicorn wsgi:app)."""
from bot import create_app

app = create_app()
