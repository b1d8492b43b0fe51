"""kill -9 of gunicorn workers in the middle of a flow: after the restart nothing is lost or doubled.

A real gunicorn (two workers) serves the app on a loopback port, configured as deployed
(deploy/gunicorn.conf.py: the app built once in the master, the workers forked from it, and
forked again after the kill). The resident's final
确认 of 我要求助 is held mid-request (the test holds the database's write lock, or the
resident's conversation row on PostgreSQL), the workers are killed with SIGKILL, the
lock is let go, and WeChat's retry of the same delivery goes to the fresh workers.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bot import demo as demo_data
from models import OutboxMessage, ServiceRequest

from .flowkit import Chat, verify
from .wechat import WeChatSim
from .wechat_standin import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


class HttpClient:
    """Flask-test-client-shaped calls sent over real HTTP, for WeChatSim."""

    def __init__(self, base: str):
        """Keeps one HTTP session to the server at `base`."""
        self.base = base
        self.http = requests.Session()

    def post(self, path, query_string=None, data=None):
        """POSTs and returns something with status_code and get_data()."""
        resp = self.http.post(self.base + path, params=query_string, data=data, timeout=30)
        return _Answer(resp)


class _Answer:
    """The bits of a Flask test response WeChatSim reads."""

    def __init__(self, resp):
        """Keeps the status and the body."""
        self.status_code = resp.status_code
        self._text = resp.content.decode()

    def get_data(self, as_text=False):
        """The body."""
        return self._text


class Gunicorn:
    """gunicorn -w 2 with the deployed configuration serving wsgi:app with the test's settings."""

    def __init__(self, db_url: str, port: int, tmp: Path):
        """Starts gunicorn on `port` against `db_url` and waits for both workers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDSTEWARD_")}
        env.update(REDSTEWARD_DATABASE_URL=db_url, REDSTEWARD_APP_PUBLIC_URL=f"http://127.0.0.1:{port}",
                   REDSTEWARD_APP_MEDIA_DIR=str(tmp / "media"), REDSTEWARD_REDIS_URL="")
        self.port = port
        self.log = open(tmp / "gunicorn.log", "w")
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
                                      "-w", "2", "--timeout", "30", "-b", f"127.0.0.1:{port}", "wsgi:app"],
                                     cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_workers(2)

    def workers(self) -> list[int]:
        """Live worker pids."""
        out = subprocess.run(["ps", "--ppid", str(self.proc.pid), "-o", "pid="], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def wait_workers(self, n: int, old: tuple = ()) -> None:
        """Waits until n fresh workers answer /healthz."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "gunicorn exited"
            fresh = [p for p in self.workers() if p not in old]
            if len(fresh) >= n:
                try:
                    if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).ok:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.2)
        raise AssertionError("gunicorn workers did not come up")

    def stop(self) -> None:
        """Stops the master and its workers."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


class Hold:
    """Holds the write path of the database so an incoming request stops mid-way."""

    def __init__(self, db_url: str, openid: str):
        """Takes the lock: SQLite's write lock, or the resident's conversation row."""
        u = make_url(db_url)
        self.sqlite = u.get_backend_name() == "sqlite"
        if self.sqlite:
            self.conn = sqlite3.connect(u.database, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(db_url)
            self.conn = self.engine.connect()
            self.conn.execute(text("SELECT c.resident_id FROM conversations c JOIN residents r "
                                   "ON r.id = c.resident_id WHERE r.openid = :o FOR UPDATE"), {"o": openid})

    def release(self) -> None:
        """Lets go."""
        if self.sqlite:
            self.conn.execute("ROLLBACK")
            self.conn.close()
        else:
            self.conn.rollback()
            self.conn.close()
            self.engine.dispose()




def test_workers_killed_mid_confirmation_file_the_request_exactly_once(make_app, db_url, tmp_path):
    """The 确认 in flight dies with its worker; the retry files one request and one steward notice."""
    app = make_app()
    sessions = app.extensions["redsteward.sessions"]
    with sessions() as s:
        demo_data.load(s)
    app.extensions["redsteward.engine"].dispose()
    port = free_port()
    server = Gunicorn(db_url, port, tmp_path)
    try:
        sim = WeChatSim(app, HttpClient(f"http://127.0.0.1:{port}"))
        chat = Chat(app, "oKilled", sim=sim)
        verify(chat)
        chat.click("FLOW_HELP")
        for answer in ("1", "1", "楼下路灯坏了一个星期", "跳过", "跳过"):
            chat.text(answer)
        assert chat.state == ("help_request", "__confirm__")

        confirm = sim.xml("oKilled", "text", Content="确认")
        hold = Hold(db_url, "oKilled")
        outcome = {}

        def deliver():
            """WeChat's first delivery of 确认: it will never get an answer."""
            try:
                outcome["first"] = sim.post_raw(confirm).status_code
            except requests.RequestException as exc:
                outcome["first"] = type(exc).__name__

        first = threading.Thread(target=deliver)
        first.start()
        time.sleep(3)  # the worker is now waiting on the held lock, mid-request
        old = tuple(server.workers())
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        first.join(timeout=30)
        hold.release()
        assert outcome["first"] in ("ConnectionError", "ChunkedEncodingError", 502), outcome
        server.wait_workers(2, old=old)

        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(ServiceRequest)) == 0  # nothing half-filed

        retry = sim.decode(sim.post_raw(confirm))  # WeChat retries the same delivery
        again = sim.decode(sim.post_raw(confirm))  # and once more: the same answer, from the store
        assert again["Content"] == retry["Content"]
        with sessions() as s:
            [req] = s.scalars(select(ServiceRequest)).all()
            assert req.ref in retry["Content"] and req.description == "楼下路灯坏了一个星期"
            notices = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "template")).all()
            assert len(notices) == len({n.recipient for n in notices}) >= 1  # one per steward, none twice
        assert chat.state == (None, None)
    finally:
        server.stop()


def test_a_forked_worker_opens_connections_of_its_own(make_app):
    """gunicorn --preload forks workers from the master: none may talk over a connection of the master's."""
    engine = make_app().extensions["redsteward.engine"]
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert engine.pool.checkedin() == 1  # the parent keeps a pooled connection
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() beside pytest's threads, ended by _exit
        child = os.fork()
    if child == 0:
        try:
            inherited = engine.pool.checkedin()
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            os.write(write, f"{inherited} {engine.pool.checkedin()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "0 1"  # nothing inherited; a connection of its own
    with engine.connect() as conn:  # the parent's connection was left alone and still answers
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()

