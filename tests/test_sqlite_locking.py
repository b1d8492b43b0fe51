"""SQLite's write lock: a writer waits for another process's transaction, then proceeds or fails clearly."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import models.base as base


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "lock.sqlite3"
    engine = base.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield path, engine
    engine.dispose()


def test_a_writer_waits_for_the_lock_and_its_write_lands(db):
    path, engine = db
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    with engine.begin() as conn:  # blocks until the holder commits
        conn.execute(text("INSERT INTO t VALUES (2)"))
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT x FROM t ORDER BY x"))] == [1, 2]
    holder.close()


def test_a_lock_held_past_the_timeout_is_a_database_error_and_nothing_is_written(db, monkeypatch):
    path, engine = db
    monkeypatch.setattr(base, "BUSY_TIMEOUT", 0.3)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(DBAPIError, match="locked"):  # the webhook answers 503 and WeChat retries
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (3)"))
    assert time.monotonic() - started >= 0.3
    holder.execute("ROLLBACK")
    with engine.begin() as conn:  # the connection is usable again, with its busy timeout restored
        conn.execute(text("INSERT INTO t VALUES (4)"))
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 300
        assert [r[0] for r in conn.execute(text("SELECT x FROM t"))] == [4]
    holder.close()
