"""Health, readiness, metrics and the access log, as an operator (and Prometheus) sees them."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from bot.scheduler import build_scheduler
from models import OutboxMessage, ProcessedMessage, ServiceRequest, enqueue, utcnow
from models.conversation import Conversation

from .wechat import WeChatSim

SECRETS = ("ops-secret-key-123", "metrics-token-xyz", "pii-key-456", "app-secret-789")


@pytest.fixture
def ops_app(make_app):
    """An app with recognisable secrets, a metrics token and no scheduler required."""
    return make_app(app={"secret_key": "ops-secret-key-123", "pii_key": "pii-key-456"},
                    wechat={"appsecret": "app-secret-789"},
                    ops={"metrics_token": "metrics-token-xyz", "require_scheduler": False})


def scrape(client, token="metrics-token-xyz") -> str:
    """GET /metrics with the bearer token."""
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


def value(metrics: str, line_start: str) -> float:
    """The value of the first sample line starting with `line_start` (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_healthz_answers_without_touching_anything(client):
    """Liveness is a plain JSON ok."""
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz_checks_database_and_outbox_and_never_leaks_secrets(ops_app):
    """Ready with an empty outbox; not ready once the backlog passes the threshold."""
    ops_app.config["REDSTEWARD"]["ops"]["outbox_backlog_max"] = 2
    client = ops_app.test_client()
    resp = client.get("/readyz")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200, body
    assert resp.get_json()["checks"]["database"]["ok"] is True
    sessions = ops_app.extensions["redsteward.sessions"]
    with sessions() as s, s.begin():
        for n in range(3):
            enqueue(s, "template", f"o{n}", {"template_id": "T", "data": {}}, f"ops-test-{n}")
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["outbox"] == {"ok": False, "backlog": 3, "max": 2}
    text_body = resp.get_data(as_text=True)
    for secret in SECRETS + (ops_app.config["REDSTEWARD"]["database"]["url"],):
        assert secret not in text_body


def test_readyz_follows_the_scheduler_job_store(make_app):
    """Not ready before any scheduler ran; ready while the leader keeps its jobs due; stale later."""
    app = make_app()
    client = app.test_client()
    first = client.get("/readyz")
    assert first.status_code == 503
    assert first.get_json()["checks"]["scheduler"] == {"ok": False, "lag_seconds": None}
    scheduler = build_scheduler(app)  # what `flask scheduler run` builds when it leads
    scheduler.shutdown(wait=False)
    assert client.get("/readyz").status_code == 200
    engine = app.extensions["redsteward.engine"]
    with engine.begin() as conn:
        # The leader died ten minutes ago: its next run time fell into the past.
        conn.execute(text("UPDATE apscheduler_jobs SET next_run_time = :t WHERE id = 'outbox'"),
                     {"t": (utcnow() - timedelta(minutes=10)).timestamp()})
    stale = client.get("/readyz")
    assert stale.status_code == 503
    assert stale.get_json()["checks"]["scheduler"]["lag_seconds"] >= 590


def test_readyz_reports_an_unreachable_redis(make_app):
    """Redis configured but down: not ready, and only the error's class is shown."""
    app = make_app(redis={"url": "redis://:hunter2@127.0.0.1:1/0"}, ops={"require_scheduler": False})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    assert "hunter2" not in resp.get_data(as_text=True)


def test_metrics_needs_the_token(ops_app):
    """No token or a wrong one: refused; nothing without a token from a remote address either."""
    client = ops_app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_metrics_without_a_token_answer_loopback_only(app):
    """With no token configured, only a client on this host may scrape."""
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403
    assert client.get("/metrics").status_code == 200


def test_metrics_count_messages_retries_flows_latency(ops_app, demo):
    """A conversation shows up in the counters: types, a retry, a completed and an abandoned flow."""
    client = ops_app.test_client()
    wx = WeChatSim(ops_app, client)
    before = scrape(client)
    wx.click("oOpsA", "FLOW_VERIFY")
    wx.text("oOpsA", "取消")
    body = wx.xml("oOpsB", "text", Content="帮助")
    wx.decode(wx.post_raw(body))
    wx.decode(wx.post_raw(body))  # WeChat's retry of the same delivery
    after = scrape(client)

    def grew(sample: str) -> float:
        """How much a sample grew during the test."""
        return value(after, sample) - value(before, sample)

    assert grew('redsteward_messages_total{outcome="handled",type="event.click"}') == 1
    assert grew('redsteward_messages_total{outcome="handled",type="text"}') == 2  # 取消, 帮助
    assert grew('redsteward_messages_total{outcome="retry",type="text"}') == 1
    assert grew("redsteward_deduplicated_retries_total") == 1
    assert grew('redsteward_flows_total{ending="abandoned",flow="verification"}') == 1
    assert grew("redsteward_reply_seconds_count") == 4
    assert "redsteward_outbox_backlog 0.0" in after


def test_metrics_count_a_completed_flow(ops_app, demo):
    """Finishing 实名认证 counts one completion."""
    client = ops_app.test_client()
    wx = WeChatSim(ops_app, client)
    before = scrape(client)
    wx.click("oOpsC", "FLOW_VERIFY")
    for answer in ("张小红", "13800138000", "1", "1", "跳过", "2"):
        wx.text("oOpsC", answer)
    assert wx.text("oOpsC", "1").startswith("实名认证完成")
    after = scrape(client)
    key = 'redsteward_flows_total{ending="completed",flow="verification"}'
    assert value(after, key) - value(before, key) == 1


def test_metrics_read_outbox_failures_and_overdue_requests_from_the_database(ops_app, sessions):
    """Failures by error code and overdue requests come from the tables, the same in every worker."""
    now = utcnow()
    with sessions() as s, s.begin():
        for n, error in enumerate(["wechat 43004: require subscribe", "wechat 43004: require subscribe rid: x",
                                   "smtp refused: ['a@b']", "wechat 40037: invalid template_id"]):
            s.add(OutboxMessage(kind="template", idempotency_key=f"f{n}", recipient="o", payload={},
                                status="failed", last_error=error))
        s.add(ServiceRequest(kind="help", description="电梯坏了", status="routed",
                             deadline_at=now - timedelta(days=1)))
        s.add(ServiceRequest(kind="help", description="路灯不亮", status="routed",
                             deadline_at=now + timedelta(days=1)))
    metrics = scrape(ops_app.test_client())
    assert 'redsteward_outbox_failed{code="43004"} 2.0' in metrics
    assert 'redsteward_outbox_failed{code="40037"} 1.0' in metrics
    assert 'redsteward_outbox_failed{code="smtp"} 1.0' in metrics
    assert "redsteward_requests_overdue 1.0" in metrics


def test_one_access_line_per_webhook_call_without_personal_data(ops_app, caplog):
    """Each call logs type, outcome, latency and a hashed openid; never the openid or the name."""
    client = ops_app.test_client()
    wx = WeChatSim(ops_app, client)
    caplog.set_level(logging.INFO, logger="redsteward.access")
    wx.click("oSecretOpenid1", "FLOW_VERIFY")
    wx.text("oSecretOpenid1", "欧阳娜娜")
    client.post("/wechat", data=b"<xml/>")  # no signature
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "redsteward.access"]
    assert [(ln["type"], ln["outcome"], ln["status"]) for ln in lines] == [
        ("event.click", "handled", 200), ("text", "handled", 200), ("-", "rejected", 403)]
    assert lines[0]["openid"] == lines[1]["openid"] and lines[0]["openid"] != "oSecretOpenid1"
    assert all(isinstance(ln["ms"], float) for ln in lines)
    everything = caplog.text
    assert "oSecretOpenid1" not in everything and "欧阳娜娜" not in everything


def test_rate_limit_answers_politely_and_stores_nothing(make_app):
    """Past the per-minute limit a resident is asked to slow down; nothing of that message is kept."""
    app = make_app(app={"rate_limit_per_minute": 3})
    sessions = app.extensions["redsteward.sessions"]
    wx = WeChatSim(app, app.test_client())
    flood = f"oFlood{uuid.uuid4().hex[:8]}"  # Redis counts survive the test: a fresh resident
    wx.click(flood, "FLOW_VERIFY")
    wx.text(flood, "张三")
    wx.text(flood, "13800138000")
    with sessions() as s:
        kept = s.scalar(select(ProcessedMessage.key).order_by(ProcessedMessage.created_at.desc()).limit(1))
        rows_before = len(s.scalars(select(ProcessedMessage.key)).all())
        conv_before = s.scalar(select(Conversation))
        state_before = (conv_before.flow, conv_before.step, dict(conv_before.data), conv_before.version)
    assert kept is not None
    reply = wx.text(flood, "1")
    assert reply == "您发送得太快了，请稍等一分钟再试。"
    with sessions() as s:
        assert len(s.scalars(select(ProcessedMessage.key)).all()) == rows_before
        conv = s.scalar(select(Conversation))
        assert (conv.flow, conv.step, dict(conv.data), conv.version) == state_before
    # Someone else is not slowed down by the flood.
    assert wx.text("oCalm", "帮助") != reply
