"""The database of the app: engine and session factory from config, one session per request."""
from __future__ import annotations

import os
import weakref

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from models import make_engine, make_session_factory, pii


def init_app(app: Flask) -> None:
    """Builds the engine from settings and closes the request's session on teardown."""
    settings = app.config["REDSTEWARD"]
    pii.configure(settings["app"]["pii_key"], settings["app"]["pii_previous_keys"])
    engine = make_engine(settings["database"]["url"], echo=settings["database"]["echo"])
    app.extensions["redsteward.engine"] = engine
    _forget_connections_after_fork(engine)
    app.extensions["redsteward.sessions"] = make_session_factory(engine)
    app.teardown_appcontext(_close_session)


def _forget_connections_after_fork(engine) -> None:
    """A forked worker (gunicorn --preload) opens its own connections, never the parent's.

    Connections the parent held stay open for the parent: the child only drops its copies of
    them from its pool (dispose(close=False)), as SQLAlchemy advises for multiprocessing.
    Redis clients need nothing: redis-py's pools notice the new process id and reconnect.
    """
    ref = weakref.ref(engine)  # an engine of a finished test app is not kept alive by the hook

    def after_in_child() -> None:
        """Empties the pool in the new process."""
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=after_in_child)


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
