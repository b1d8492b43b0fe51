"""Outbox throughput: template messages sent to a local stand-in of the WeChat API.

The stand-in runs in its own process (so it does not share the dispatcher's GIL) on a
loopback port, answers stable_token and message/template/send, and records every
client_msg_id with the time it arrived. The bench queues messages, drains the outbox
with the real dispatcher (bot.outbox.dispatch_due), once with no rate limit and once
with a configured one, and reports messages/s, the busiest second, and duplicates.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MESSAGES = int(os.environ.get("BENCH_OUTBOX_MESSAGES", "1000"))
LIMITED_RATE = int(os.environ.get("BENCH_OUTBOX_RATE", "100"))


class StandIn(BaseHTTPRequestHandler):
    """The two endpoints the outbox uses, answering at once; /calls lists what arrived."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall
    calls: list = []

    def do_POST(self):
        """stable_token and message/template/send."""
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.startswith("/cgi-bin/stable_token"):
            return self._json({"access_token": "bench-token", "expires_in": 7200})
        if self.path.startswith("/cgi-bin/message/template/send"):
            StandIn.calls.append((time.time(), body.get("client_msg_id")))
            return self._json({"errcode": 0, "errmsg": "ok", "msgid": len(StandIn.calls)})
        return self._json({"errcode": 40004, "errmsg": "unknown endpoint"})

    def do_GET(self):
        """/calls: what arrived so far (and clears it)."""
        calls, StandIn.calls = StandIn.calls, []
        return self._json({"calls": calls})

    def _json(self, data: dict):
        """Writes a JSON answer."""
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        """Quiet: the bench prints the summary."""


class QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-answer is not worth a traceback here."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        """Ignores broken connections."""


def serve(port: int) -> None:
    """Runs the stand-in until killed."""
    QuietServer(("127.0.0.1", port), StandIn).serve_forever()


def drain(url: str, port: int, rate: int) -> dict:
    """Queues MESSAGES template messages, sends them all, returns the figures."""
    from bot.config import load_settings
    from bot.outbox import dispatch_due
    from bot.wechat_api import build_client
    from bench.run import fresh_schema
    from models import OutboxMessage, enqueue, make_engine, make_session_factory
    from sqlalchemy import func, select

    fresh_schema(url, demo_park=False)
    settings = load_settings(environ={}, overrides={
        "database": {"url": url}, "wechat": {"api_base_url": f"http://127.0.0.1:{port}/"},
        "scheduler": {"outbox_rate_per_second": rate}})
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as s, s.begin():
        for n in range(MESSAGES):
            enqueue(s, "template", f"oBench{n:07d}", {"template_id": "TPL_BENCH", "url": "",
                                                     "data": {"thing1": {"value": "电梯维修"}}},
                    f"bench:{url[:5]}:{rate}:{n}")
    client = build_client(settings, sessions)
    started = time.monotonic()
    while True:
        counts = dispatch_due(sessions, client, settings)
        if not sum(counts.values()):
            break
    elapsed = time.monotonic() - started
    with sessions() as s:
        sent = s.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
    engine.dispose()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/calls") as resp:
        calls = json.load(resp)["calls"]
    per_second = Counter(int(t) for t, _ in calls)
    keys = Counter(k for _, k in calls)
    return {"db": url.split(":")[0].split("+")[0], "rate_limit": rate, "messages": MESSAGES, "sent": sent,
            "seconds": elapsed, "per_second": sent / elapsed,
            "busiest_second": max(per_second.values()) if per_second else 0,
            "duplicates": sum(n - 1 for n in keys.values() if n > 1)}


def main(databases: list[str]) -> list[dict]:
    """Starts the stand-in, drains once unlimited and once rate-limited per database."""
    with socket.socket() as sock:  # a free loopback port, so benches running at once stay apart
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/calls", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        return [drain(url, port, rate) for url in databases for rate in (0, LIMITED_RATE)]
    finally:
        proc.terminate()
        proc.wait()


def table(results: list[dict]) -> str:
    """The outbox figures as a text table."""
    lines = [f"{'database':<12}{'rate limit':>11}{'sent':>7}{'msg/s':>9}{'busiest s':>11}{'duplicates':>12}"]
    for r in results:
        limit = f"{r['rate_limit']}/s" if r["rate_limit"] else "none"
        lines.append(f"{r['db']:<12}{limit:>11}{r['sent']:>7}{r['per_second']:>9.0f}"
                     f"{r['busiest_second']:>11}{r['duplicates']:>12}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        res = main(sys.argv[1:] or [f"sqlite:///{ROOT}/instance/bench/outbox.sqlite3"])
        print(table(res))
