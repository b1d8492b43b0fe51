"""A stand-in of the WeChat API on a real loopback port, told per test what to answer."""
from __future__ import annotations

import json
import threading
import time
from collections import deque

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class ApiStub:
    """Serves cgi-bin/* on 127.0.0.1; records calls; answers from a queue of scripted faults."""

    def __init__(self):
        self.calls: list[dict] = []
        self.faults: deque = deque()
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()

    def fail_next(self, *faults) -> None:
        """Queues answers for the next calls: an errcode int, 'http500', ('hang', seconds), 'hang_token'."""
        self.faults.extend(faults)

    def expire(self, token: str) -> None:
        """Makes WeChat forget a token, as a later cgi-bin/token call would."""
        self.valid_tokens.discard(token)

    def calls_to(self, endpoint: str) -> list[dict]:
        """Recorded calls to one endpoint (e.g. 'message/template/send')."""
        return [c for c in self.calls if c["endpoint"] == endpoint]

    @Request.application
    def _app(self, request: Request) -> Response:
        """Answers one API call."""
        endpoint = request.path.split("/cgi-bin/", 1)[-1]
        body = request.get_json(silent=True) or {}
        with self.lock:
            self.calls.append({"endpoint": endpoint, "args": dict(request.args), "json": body})
            is_token = endpoint in ("token", "stable_token")
            hang = is_token and bool(self.faults) and self.faults[0] == "hang_token"
            if hang:
                self.faults.popleft()
            if is_token:
                self.tokens_issued += 1
                token = f"tok{self.tokens_issued}"
                self.valid_tokens.add(token)
                fault = None
            else:
                fault = self.faults.popleft() if self.faults else None
        if is_token:
            if hang:
                time.sleep(3)
            return _json({"access_token": token, "expires_in": 7200})
        if isinstance(fault, tuple) and fault[0] == "hang":
            time.sleep(fault[1])
        elif fault == "http500":
            return Response("server error", status=500)
        elif isinstance(fault, int):
            return _json({"errcode": fault, "errmsg": f"scripted {fault}"})
        if request.args.get("access_token") not in self.valid_tokens:
            return _json({"errcode": 40001, "errmsg": "invalid credential"})
        if endpoint == "message/template/send":
            return _json({"errcode": 0, "errmsg": "ok", "msgid": len(self.calls)})
        return _json({"errcode": 0, "errmsg": "ok"})


def _json(data: dict) -> Response:
    """A JSON response as WeChat sends it."""
    return Response(json.dumps(data), mimetype="application/json")
