"""The database of the app: engine and session factory from config, one session per request."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from models import make_engine, make_session_factory, pii


def init_app(app: Flask) -> None:
    """Builds the engine from settings and closes the request's session on teardown."""
    settings = app.config["REDSTEWARD"]
    pii.configure(settings["app"]["pii_key"], settings["app"]["pii_previous_keys"])
    engine = make_engine(settings["database"]["url"], echo=settings["database"]["echo"])
    app.extensions["redsteward.engine"] = engine
    app.extensions["redsteward.sessions"] = make_session_factory(engine)
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The session of the current request or CLI command."""
    if "db" not in g:
        g.db = current_app.extensions["redsteward.sessions"]()
    return g.db


def _close_session(_exc=None) -> None:
    """Closes the session at the end of the request (rolling back anything uncommitted)."""
    db = g.pop("db", None)
    if db is not None:
        db.close()
