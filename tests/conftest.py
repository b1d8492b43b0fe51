"""Fixtures: an app on its own fresh database (SQLite file, or PostgreSQL under CI), a client."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from bot import create_app
from models import Base
from models.base import make_engine

from .wechat import WeChatSim

PG_URL = os.environ.get("REDSTEWARD_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("REDSTEWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def fresh_database(tmp_path) -> str:
    """A URL of an empty database: a new SQLite file, or PostgreSQL with its schema reset."""
    if not PG_URL:
        return f"sqlite:///{tmp_path}/test.sqlite3"
    engine = make_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return PG_URL


@pytest.fixture
def db_url(tmp_path):
    """The test's own empty database (and an empty Redis when the suite runs with Redis)."""
    if os.environ.get("REDSTEWARD_TEST_USE_REDIS"):
        import redis
        # Rate-limit counts and locks of the previous test must not leak into this one.
        redis.Redis.from_url(REDIS_URL).flushdb()
    return fresh_database(tmp_path)


@pytest.fixture
def make_app(db_url, tmp_path):
    """Builds apps on the test database, tables created, with optional setting overrides."""
    apps = []

    def build(**sections):
        overrides = {"database": {"url": db_url}, "app": {"media_dir": str(tmp_path / "media")}}
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        if os.environ.get("REDSTEWARD_TEST_USE_REDIS") and "redis" not in sections:
            overrides["redis"] = {"url": REDIS_URL}
        app = create_app(overrides)
        engine = app.extensions["redsteward.engine"]
        Base.metadata.create_all(engine)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["redsteward.engine"].dispose()


@pytest.fixture
def app(make_app):
    """A sandbox-mode app in plain mode."""
    return make_app()


@pytest.fixture
def client(app):
    """Flask's test client."""
    return app.test_client()


@pytest.fixture
def sessions(app):
    """The app's session factory, for assertions on what was stored."""
    return app.extensions["redsteward.sessions"]


@pytest.fixture
def demo(app, sessions):
    """The demo park (streets, communities, estates, stewards) loaded."""
    from bot import demo as demo_data
    with sessions() as s:
        demo_data.load(s)
    return app


@pytest.fixture
def wx(app, client):
    """Sends signed messages to /wechat as WeChat would (plain mode)."""
    return WeChatSim(app, client)
