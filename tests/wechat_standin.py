"""Real local servers for the outbox's far ends: a WeChat API stand-in over HTTP, and SMTP (aiosmtpd)."""
from __future__ import annotations

import json
import random
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bot import outbox
from bot.wechat_api import build_client
from models import utcnow

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WeChatStandIn:
    """Answers token and send calls like WeChat; can be told to fail the next sends in given ways.

    Deliveries are de-duplicated by client_msg_id, as WeChat does, so a resent message
    shows up once in `delivered` but twice in `attempts`.
    """

    def __init__(self):
        self.tokens: list[str] = []
        self.attempts: list[dict] = []
        self.delivered: list[dict] = []
        self.faults: list[str | int] = []
        self.hang_seconds = 3.0
        self.latency = (0.0, 0.0)  # each send takes between these many seconds, as over a real network
        self.oauth_codes: dict[str, str] = {}  # code → openid, for snsapi_base
        self.oauth_reader: str | None = None  # who WeChat's browser says is reading (authorize page)
        self.authorize_requests: list[dict] = []
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", free_port(), self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "WeChatStandIn":
        """Starts serving in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stops the server."""
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, *faults: str | int) -> None:
        """Queues faults for the next send calls: an errcode, 'http500' or 'hang'."""
        with self._lock:
            self.faults.extend(faults)

    def to(self, openid: str) -> list[dict]:
        """Messages delivered to one openid, oldest first."""
        return [m for m in self.delivered if m.get("touser") == openid]

    def wsgi(self, environ, start_response):
        """The WSGI entry point."""
        request = Request(environ)
        if request.path == "/connect/oauth2/authorize":
            return self._authorize(request)(environ, start_response)
        if request.path == "/sns/oauth2/access_token":
            code = request.args.get("code", "")
            openid = self.oauth_codes.pop(code, None)
            answer = {"access_token": f"web-{code}", "expires_in": 7200, "refresh_token": f"refresh-{code}",
                      "openid": openid, "scope": "snsapi_base"} if openid else {
                "errcode": 40029, "errmsg": "invalid code"}
            return self._json(answer)(environ, start_response)
        path = request.path.removeprefix("/cgi-bin/")
        if path in ("token", "stable_token"):
            with self._lock:
                token = f"tok-{self.server.server_port}-{len(self.tokens) + 1}"
                self.tokens.append(token)
            return self._json({"access_token": token, "expires_in": 7200})(environ, start_response)
        body = json.loads(request.get_data() or b"{}")
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
            self.attempts.append({"path": path, "token": request.args.get("access_token"), "at": time.monotonic(),
                                  **body})
        if self.latency[1]:
            time.sleep(random.uniform(*self.latency))
        if fault == "hang":
            # WeChat did the work but the answer never arrives in time.
            self._deliver(path, body)
            time.sleep(self.hang_seconds)
            return self._json({"errcode": 0, "errmsg": "ok"})(environ, start_response)
        if fault == "http500":
            return Response("busy", status=500)(environ, start_response)
        if isinstance(fault, int):
            return self._json({"errcode": fault, "errmsg": f"fault {fault}"})(environ, start_response)
        if request.args.get("access_token") != (self.tokens[-1] if self.tokens else None):
            return self._json({"errcode": 40001, "errmsg": "invalid credential"})(environ, start_response)
        self._deliver(path, body)
        return self._json({"errcode": 0, "errmsg": "ok", "msgid": len(self.attempts)})(environ, start_response)

    def _authorize(self, request: Request) -> Response:
        """WeChat's authorisation page: silently sends `oauth_reader` back with a one-time code."""
        args = dict(request.args)
        self.authorize_requests.append(args)
        if args.get("scope") != "snsapi_base" or not args.get("redirect_uri") or self.oauth_reader is None:
            return Response("bad authorisation request", status=400)
        code = f"code-{len(self.authorize_requests)}-{self.server.server_port}"
        self.oauth_codes[code] = self.oauth_reader
        sep = "&" if "?" in args["redirect_uri"] else "?"
        return Response(status=302, headers={
            "Location": f"{args['redirect_uri']}{sep}code={code}&state={args.get('state', '')}"})

    def _deliver(self, path: str, body: dict) -> None:
        """Delivers a message once per client_msg_id."""
        with self._lock:
            key = body.get("client_msg_id")
            if not key or all(m.get("client_msg_id") != key for m in self.delivered):
                self.delivered.append({"path": path, **body})

    @staticmethod
    def _json(data: dict) -> Response:
        """A JSON response as WeChat sends it."""
        return Response(json.dumps(data, ensure_ascii=False), content_type="application/json")


class MailBox:
    """An aiosmtpd handler keeping every message received."""

    def __init__(self):
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        """Stores the message and accepts it."""
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class SMTPServer:
    """A real SMTP server on loopback that can be stopped and started again on the same port."""

    def __init__(self):
        self.box = MailBox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> "SMTPServer":
        """Starts (or restarts) listening."""
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stops listening: connections are refused until start()."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def standin():
    """The WeChat API stand-in on a free loopback port (import this fixture into a test module)."""
    server = WeChatStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port (import this fixture into a test module)."""
    server = SMTPServer().start()
    yield server
    server.stop()


def dispatcher_process(db_url: str, api_url: str, **scheduler) -> subprocess.Popen:
    """One outbox pass in a process of its own (for kill -9), with a 60 s API timeout."""
    settings = {"database": {"url": db_url}, "wechat": {"api_base_url": api_url, "timeout_seconds": 60.0},
                "scheduler": {"outbox_rate_per_second": 0, **scheduler}}
    script = (
        "from bot import create_app, outbox\n"
        "from bot.wechat_api import build_client\n"
        f"app = create_app({settings!r})\n"
        "s = app.extensions['redsteward.sessions']\n"
        "outbox.dispatch_due(s, build_client(app.config['REDSTEWARD'], s), app.config['REDSTEWARD'])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDSTEWARD_")}
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)


def run_outbox(app, later: timedelta = timedelta(0)) -> dict:
    """One pass of the outbox dispatcher, as the scheduler runs it, as if `later` from now."""
    settings = app.config["REDSTEWARD"]
    sessions = app.extensions["redsteward.sessions"]
    return outbox.dispatch_due(sessions, build_client(settings, sessions), settings, now=utcnow() + later)
