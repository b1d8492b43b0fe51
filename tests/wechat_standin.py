"""Real local servers for the far ends: the tests' one loopback stand-in of the WeChat API, and SMTP."""
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


TOKEN_PATHS = ("token", "stable_token")
MEDIA_TYPES = ("image", "voice", "video", "thumb")


class WeChatStandIn:
    """Answers WeChat API calls over HTTP the way WeChat does; can be told to fail the next calls.

    Tokens: `cgi-bin/token` issues a new token on every call; `stable_token` answers the
    current one unless `force_refresh` is set or none is valid. A replaced token keeps working
    for `grace_seconds` (WeChat: five minutes); `expire(token)` makes WeChat forget one at once.
    A call without a token gets 41001, with an unknown or expired one 40001.
    Sends are de-duplicated by client_msg_id, as WeChat does, so a resent message shows up
    once in `delivered` but twice in `attempts`.
    Media: `media/upload` keeps a file and answers its media_id, `media/get` returns the file,
    or 40007 for an id WeChat does not keep (expired, or never sent).
    """

    def __init__(self):
        self.calls: list[dict] = []  # every request: path, query args, JSON body
        self.tokens: list[str] = []  # every token issued, oldest first
        self.attempts: list[dict] = []  # every call past the token endpoints, with its token and time
        self.delivered: list[dict] = []
        self.media: dict[str, tuple[bytes, str]] = {}  # media_id -> (content, content type)
        self.faults: list[str | int] = []
        self.token_faults: list[str | int] = []
        self.hang_seconds = 3.0
        self.latency = (0.0, 0.0)  # each send takes between these many seconds, as over a real network
        self.grace_seconds = 300.0
        self.oauth_codes: dict[str, str] = {}  # code → openid, for snsapi_base
        self.oauth_reader: str | None = None  # who WeChat's browser says is reading (authorize page)
        self.authorize_requests: list[dict] = []
        self._valid: dict[str, float] = {}  # token -> monotonic time it stops working
        self._lock = threading.Lock()
        # Port 0: the system picks a free port, so parallel runs never clash.
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
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

    def __enter__(self) -> "WeChatStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, *faults: str | int) -> None:
        """Queues faults for the next calls past the token endpoints: an errcode, 'http500' or 'hang'."""
        with self._lock:
            self.faults.extend(faults)

    def fail_next_token(self, *faults: str | int) -> None:
        """Queues faults for the next token calls: an errcode, 'http500' or 'hang' (answers late)."""
        with self._lock:
            self.token_faults.extend(faults)

    def expire(self, token: str) -> None:
        """Makes WeChat forget a token now."""
        with self._lock:
            self._valid.pop(token, None)

    def put_media(self, content: bytes, content_type: str) -> str:
        """Keeps a file as WeChat does when a resident sends a photo or a voice note; returns its media_id."""
        with self._lock:
            media_id = f"media-{self.server.server_port}-{len(self.media) + 1}"
            self.media[media_id] = (content, content_type)
        return media_id

    def to(self, openid: str) -> list[dict]:
        """Messages delivered to one openid, oldest first."""
        return [m for m in self.delivered if m.get("touser") == openid]

    def calls_to(self, path: str) -> list[dict]:
        """Recorded calls to one endpoint (e.g. 'message/template/send')."""
        return [c for c in self.calls if c["path"] == path]

    @property
    def token_requests(self) -> list[dict]:
        """Every call to cgi-bin/token or stable_token, oldest first."""
        return [c for c in self.calls if c["path"] in TOKEN_PATHS]

    def wsgi(self, environ, start_response):
        """The WSGI entry point."""
        request = Request(environ)
        try:
            return self._answer(request)(environ, start_response)
        finally:
            request.close()  # closes the temporary files of an upload

    def _answer(self, request: Request) -> Response:
        """Answers one request."""
        path = request.path.lstrip("/").removeprefix("cgi-bin/")
        # wechatpy posts JSON without a JSON content type, as WeChat accepts; uploads are multipart.
        body = {} if request.mimetype == "multipart/form-data" else request.get_json(force=True, silent=True) or {}
        with self._lock:
            self.calls.append({"path": path, "args": dict(request.args), "json": body})
        if path == "connect/oauth2/authorize":
            return self._authorize(request)
        if path == "sns/oauth2/access_token":
            return self._oauth_token(request)
        if path in TOKEN_PATHS:
            return self._token(path, body)
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
            self.attempts.append({"path": path, "token": request.args.get("access_token"), "at": time.monotonic(),
                                  **body})
        if self.latency[1]:
            time.sleep(random.uniform(*self.latency))
        if fault == "hang":
            # WeChat did the work but the answer never arrives in time.
            answer = self._call(path, request, body)
            time.sleep(self.hang_seconds)
            return answer
        if fault == "http500":
            return Response("busy", status=500)
        if isinstance(fault, int):
            return self._json({"errcode": fault, "errmsg": f"fault {fault}"})
        token = request.args.get("access_token")
        if not token:
            return self._json({"errcode": 41001, "errmsg": "access_token missing"})
        if self._valid.get(token, 0) <= time.monotonic():
            return self._json({"errcode": 40001, "errmsg": "invalid credential"})
        return self._call(path, request, body)

    def _token(self, path: str, body: dict) -> Response:
        """cgi-bin/token and stable_token: a new token, or (stable_token) the one still in force."""
        with self._lock:
            fault = self.token_faults.pop(0) if self.token_faults else None
        if fault == "http500":
            return Response("busy", status=500)
        if isinstance(fault, int):
            return self._json({"errcode": fault, "errmsg": f"fault {fault}"})
        now = time.monotonic()
        with self._lock:
            current = self.tokens[-1] if self.tokens else None
            if path == "stable_token" and not body.get("force_refresh") and self._valid.get(current, 0) > now:
                token, expires_in = current, int(self._valid[current] - now)
            else:
                for old in self._valid:
                    self._valid[old] = min(self._valid[old], now + self.grace_seconds)
                token, expires_in = f"tok-{self.server.server_port}-{len(self.tokens) + 1}", 7200
                self.tokens.append(token)
                self._valid[token] = now + expires_in
        if fault == "hang":
            time.sleep(self.hang_seconds)
        return self._json({"access_token": token, "expires_in": expires_in})

    def _call(self, path: str, request: Request, body: dict) -> Response:
        """A call with a valid token: media kept and served, anything else delivered."""
        if path == "media/get":
            found = self.media.get(request.args.get("media_id", ""))
            if found is None:
                return self._json({"errcode": 40007, "errmsg": "invalid media_id"})
            return Response(found[0], content_type=found[1])
        if path == "media/upload":
            kind, upload = request.args.get("type", ""), request.files.get("media")
            if kind not in MEDIA_TYPES:
                return self._json({"errcode": 40004, "errmsg": "invalid media type"})
            if upload is None:
                return self._json({"errcode": 41005, "errmsg": "media data missing"})
            media_id = self.put_media(upload.read(), upload.mimetype or "application/octet-stream")
            return self._json({"type": kind, "media_id": media_id, "created_at": int(time.time())})
        self._deliver(path, body)
        return self._json({"errcode": 0, "errmsg": "ok", "msgid": len(self.attempts)})

    def _oauth_token(self, request: Request) -> Response:
        """Swaps a one-time authorisation code for the reader's openid (snsapi_base)."""
        code = request.args.get("code", "")
        with self._lock:
            openid = self.oauth_codes.pop(code, None)
        if openid is None:
            return self._json({"errcode": 40029, "errmsg": "invalid code"})
        return self._json({"access_token": f"web-{code}", "expires_in": 7200, "refresh_token": f"refresh-{code}",
                           "openid": openid, "scope": "snsapi_base"})

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
