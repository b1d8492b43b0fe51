"""Redis configured but gone: a clear log line, a safe fallback, and readiness says so."""
from __future__ import annotations

import logging
import socket
import subprocess
import time

import pytest

from .wechat import WeChatSim
from .wechat_standin import free_port

pytestmark = pytest.mark.slow




def test_unreachable_redis_logs_once_and_the_limit_still_holds(make_app, caplog):
    """Every message is answered; the rate limit falls back to this process and still refuses a flood."""
    port = free_port()
    app = make_app(redis={"url": f"redis://127.0.0.1:{port}/0"}, app={"rate_limit_per_minute": 3},
                   ops={"require_scheduler": False})
    wx = WeChatSim(app, app.test_client())
    caplog.set_level(logging.WARNING)
    replies = [wx.text("oNoRedis", "帮助") for _ in range(4)]
    assert all(replies[:3]) and replies[0] != replies[3]
    assert replies[3] == "您发送得太快了，请稍等一分钟再试。"
    down = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(down) == 1  # one clear line, not one per message
    assert "counting in this process" in down[0].getMessage()
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["redis"]["ok"] is False


def test_redis_dying_mid_run_keeps_answering(make_app, caplog):
    """A real Redis killed mid-run: every message is still answered, and readiness reports it."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        _wait_for(port)
        app = make_app(redis={"url": f"redis://127.0.0.1:{port}/0"}, app={"rate_limit_per_minute": 100},
                       ops={"require_scheduler": False})
        wx = WeChatSim(app, app.test_client())
        assert wx.text("oRedisA", "帮助")
        server.kill()
        server.wait()
        caplog.set_level(logging.WARNING)
        assert wx.text("oRedisA", "帮助")  # answered while Redis is down
        assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
        assert app.test_client().get("/readyz").status_code == 503
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _wait_for(port: int) -> None:
    """Waits until the Redis server accepts connections."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")
