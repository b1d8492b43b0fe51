"""The database drops away for a moment: WeChat gets a 503, retries, and the retry is handled once.

The app reaches PostgreSQL through a TCP relay on loopback that the test cuts and
restores, so the outage is a real one: connections reset, new ones refused. The
database is the test's own (REDSTEWARD_FAULTS_DATABASE_URL, default rs_faults on the
local server, created when missing), never the suite's shared one.
"""
from __future__ import annotations

import os
import socket
import threading

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot import create_app
from models import Base, Conversation, ProcessedMessage, Resident

from .wechat import WeChatSim

FAULTS_URL = os.environ.get("REDSTEWARD_FAULTS_DATABASE_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/rs_faults")

pytestmark = pytest.mark.slow


class Relay:
    """A loopback TCP relay to the database that can be cut (every connection reset) and restored."""

    def __init__(self, host: str, port: int):
        """Listens on a free loopback port and relays to host:port."""
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.pairs: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        """Accepts clients; while cut, closes them at once (connection refused, as good as)."""
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.pairs += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        """Copies bytes one way until either side closes."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        """The outage: every open connection reset, new ones dropped."""
        self.open = False
        with self.lock:
            for s in self.pairs:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.pairs.clear()

    def restore(self) -> None:
        """The database is back."""
        self.open = True

    def close(self) -> None:
        """Stops accepting."""
        self.listener.close()


@pytest.fixture
def relayed_app(tmp_path):
    """An app on the test's own PostgreSQL database, reached through a relay."""
    u = make_url(FAULTS_URL)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}):
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    direct = create_engine(FAULTS_URL)
    with direct.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    Base.metadata.create_all(direct)
    relay = Relay(u.host or "127.0.0.1", u.port or 5432)
    url = u.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    app = create_app({"database": {"url": url}, "app": {"media_dir": str(tmp_path / "media")},
                      "redis": {"url": ""}})
    yield app, relay, direct
    app.extensions["redsteward.engine"].dispose()
    relay.close()
    direct.dispose()


def test_outage_answers_503_and_the_retry_is_handled_exactly_once(relayed_app):
    """Mid-flow outage: 503 (WeChat retries), nothing half-written, the retry moves the flow on once."""
    app, relay, direct = relayed_app
    wx = WeChatSim(app, app.test_client())
    assert "姓名" in wx.click("oOutage", "FLOW_VERIFY")
    delivery = wx.xml("oOutage", "text", Content="李四")

    relay.cut()
    during = wx.post_raw(delivery)
    assert during.status_code == 503

    relay.restore()
    retry = wx.decode(wx.post_raw(delivery))  # WeChat's retry: the very same delivery
    assert "手机号" in retry["Content"]
    again = wx.decode(wx.post_raw(delivery))  # and its third try answers the same, from the store
    assert again["Content"] == retry["Content"]
    with direct.connect() as conn:
        s = Session(bind=conn)
        conv = s.scalar(select(Conversation).join(Resident, Resident.id == Conversation.resident_id)
                        .where(Resident.openid == "oOutage"))
        assert (conv.flow, conv.step, conv.data) == ("verification", "mobile", {"name": "李四"})
        assert conv.version == 2  # the click and the name: the failed and the repeated try left no trace
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 2
        assert s.scalar(select(func.count()).select_from(Resident)) == 1
