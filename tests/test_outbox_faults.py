"""The outbox against a real loopback WeChat API stand-in that fails on command."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import outbox
from models import OutboxMessage, enqueue, utcnow

from .park import park_with_request
from .wechat import WeChatSim
from .wechat_standin import dispatcher_process, run_outbox, standin  # noqa: F401  (fixture)


@pytest.fixture
def app(make_app, standin):
    """An app sending to the stand-in, with short timeouts and few attempts."""
    return make_app(wechat={"api_base_url": standin.url, "timeout_seconds": 0.5},
                    scheduler={"outbox_rate_per_second": 0, "outbox_max_attempts": 3})


def queue(app, key="tpl:1", openid="o_res", ref="12345678") -> int:
    """Queues one template message as a transition would; returns its id."""
    with app.extensions["redsteward.sessions"]() as s:
        msg = enqueue(s, "template", openid, {"template_id": "TPL", "url": f"http://x/m/requests/{ref}",
                                              "data": {"character_string1": {"value": ref}},
                                              "ref": ref}, key)
        s.commit()
        return msg.id


def row(app, msg_id) -> OutboxMessage:
    """The stored message."""
    with app.extensions["redsteward.sessions"]() as s:
        return s.get(OutboxMessage, msg_id)


@pytest.mark.parametrize("code", [40001, 40014, 42001])
def test_token_errors_refresh_the_token_and_send_once(app, standin, code):
    run_outbox(app)  # nothing queued yet: no token fetched
    msg_id = queue(app)
    standin.fail_next(code)
    assert run_outbox(app)["sent"] == 1
    assert len(standin.tokens) == 2  # fetched, rejected, fetched again
    assert [a["token"] for a in standin.attempts] == standin.tokens
    assert len(standin.delivered) == 1 and row(app, msg_id).status == "sent"


def test_daily_quota_defers_an_hour_without_spending_attempts(app, standin):
    msg_id = queue(app)
    standin.fail_next(45009)
    assert run_outbox(app)["deferred"] == 1
    stored = row(app, msg_id)
    assert stored.status == "pending" and stored.attempts == 0 and "45009" in stored.last_error
    assert stored.next_attempt_at - utcnow() > timedelta(minutes=55)
    assert run_outbox(app, timedelta(minutes=30))["sent"] == 0
    assert run_outbox(app, timedelta(minutes=61))["sent"] == 1
    assert len(standin.delivered) == 1


def test_unsubscribed_resident_is_given_up_and_stewards_see_it(app, standin):
    ref = park_with_request(app.extensions["redsteward.sessions"], "o_gone", "楼下噪音扰民到深夜")
    msg_id = queue(app, openid="o_gone", ref=ref)
    standin.fail_next(43004)
    assert run_outbox(app)["failed"] == 1
    stored = row(app, msg_id)
    assert stored.status == "failed" and "43004" in stored.last_error and stored.attempts == 1
    assert run_outbox(app, timedelta(days=1)) == {"sent": 0, "retry": 0, "failed": 0, "deferred": 0}
    chat = WeChatSim(app, app.test_client()).text
    reply = chat("sandbox_steward_xinghu", "发送失败")
    assert ref in reply and "43004" in reply
    assert ref not in chat("sandbox_steward_hanlin", "发送失败")  # another community's resident


@pytest.mark.parametrize("fault", ["http500", -1, "hang"])
def test_server_errors_busy_and_timeouts_are_retried_and_delivered_once(app, standin, fault):
    standin.hang_seconds = 1.5
    msg_id = queue(app)
    standin.fail_next(fault)
    started = time.monotonic()
    assert run_outbox(app)["retry"] == 1
    assert time.monotonic() - started < 1.4  # a hanging API costs the timeout, not the hang
    stored = row(app, msg_id)
    assert stored.status == "pending" and stored.attempts == 1
    assert stored.last_error.startswith({"http500": "http 500", -1: "wechat -1"}.get(fault, "ReadTimeout"))
    assert run_outbox(app)["sent"] == 0  # backing off
    assert run_outbox(app, timedelta(seconds=3))["sent"] == 1
    assert len(standin.delivered) == 1 and row(app, msg_id).status == "sent"


def test_repeated_failures_give_up_after_the_configured_attempts(app, standin):
    msg_id = queue(app)
    standin.fail_next("http500", "http500", "http500")
    outcomes = [run_outbox(app, timedelta(hours=n)) for n in range(4)]
    assert [o["retry"] for o in outcomes[:2]] == [1, 1] and outcomes[2]["failed"] == 1
    assert outcomes[3]["sent"] == 0 and row(app, msg_id).status == "failed"
    assert standin.delivered == []


def test_a_crash_between_sending_and_recording_never_sends_twice(app, standin, db_url):
    """A dispatcher killed while WeChat is answering: the next one resends with the same client_msg_id."""
    msg_id = queue(app)
    standin.hang_seconds = 30
    standin.fail_next("hang")
    proc = dispatcher_process(db_url, standin.url)
    try:
        deadline = time.monotonic() + 20
        while not standin.attempts and time.monotonic() < deadline:
            time.sleep(0.05)
        assert standin.attempts, "the dispatcher never reached the API"
    finally:
        proc.kill()
        proc.wait()
    assert len(standin.delivered) == 1
    assert row(app, msg_id).status == "sending"  # claimed, outcome never recorded
    assert run_outbox(app)["sent"] == 0  # the lease still holds
    assert run_outbox(app, outbox.LEASE + timedelta(seconds=1))["sent"] == 1
    first, second = standin.attempts
    assert first["client_msg_id"] == second["client_msg_id"]
    assert len(standin.delivered) == 1 and row(app, msg_id).status == "sent"
