"""E-mail through the outbox to a real SMTP server on loopback (aiosmtpd), including its outage."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import orgimport
from models import OutboxMessage, ServiceRequest, enqueue

from .wechat import WeChatSim
from .wechat_standin import run_outbox, smtp  # noqa: F401  (fixture)


@pytest.fixture
def app(make_app, smtp):
    """An app mailing through the loopback server."""
    app = make_app(mail={"host": "127.0.0.1", "port": smtp.port, "timeout_seconds": 2.0},
                   scheduler={"outbox_rate_per_second": 0})
    with app.extensions["redsteward.sessions"]() as s:
        orgimport.import_file(s, orgimport.EXAMPLE_PATH)
    return app


def queue_mail(app, key="mail:1") -> None:
    """Queues one e-mail with a Cc."""
    with app.extensions["redsteward.sessions"]() as s:
        enqueue(s, "email", "housing@park.local",
                {"to": ["housing@park.local"], "cc": ["orgdept@park.local"], "subject": "民意诉求 12345678",
                 "body": "请于三个工作日内答复。", "html": None, "sender": "huxi-swc@park.local"}, key)
        s.commit()


def test_mail_goes_out_with_a_real_cc_header(app, smtp):
    queue_mail(app)
    assert run_outbox(app)["sent"] == 1
    [msg] = smtp.box.messages
    assert msg["From"] == "huxi-swc@park.local" and msg["To"] == "housing@park.local"
    assert msg["Cc"] == "orgdept@park.local" and msg["Subject"] == "民意诉求 12345678"
    assert msg["Message-ID"]
    mail_from, rcpts = smtp.box.envelopes[0]
    assert mail_from == "huxi-swc@park.local" and set(rcpts) == {"housing@park.local", "orgdept@park.local"}


def test_an_smtp_outage_loses_nothing_and_sends_once_after(app, smtp):
    smtp.stop()
    queue_mail(app)
    assert run_outbox(app)["retry"] == 1
    with app.extensions["redsteward.sessions"]() as s:
        stored = s.scalar(select(OutboxMessage))
        assert stored.status == "pending" and "Connection" in stored.last_error
    assert run_outbox(app, timedelta(seconds=5))["retry"] == 1  # still down
    smtp.start()
    assert run_outbox(app, timedelta(minutes=1))["sent"] == 1
    assert run_outbox(app, timedelta(hours=2))["sent"] == 0
    assert len(smtp.box.messages) == 1


def test_a_park_department_matter_is_mailed_from_the_street_with_the_organisation_department_in_cc(app, smtp):
    wx = WeChatSim(app, app.test_client())
    steward = "sandbox_steward_xinghu"
    assert "已代录" in wx.text(steward, "代录 会议 星湖苑 小区北门外道路规划需要调整")
    with app.extensions["redsteward.sessions"]() as s:
        ref = s.scalar(select(ServiceRequest.ref))
    assert "已受理" in wx.text(steward, f"分类 {ref} 政务类 规划建设")
    reply = wx.text(steward, f"派 {ref}")
    assert "园区规划建设委员会" in reply
    assert run_outbox(app)["sent"] >= 1
    [msg] = smtp.box.messages
    assert msg["From"] == "huxi-swc@park.local" and msg["To"] == "housing@park.local"
    assert msg["Cc"] == "orgdept@park.local" and ref in msg["Subject"]
    body = msg.get_content()
    assert "小区北门外道路规划需要调整" in body and f"/m/requests/{ref}?t=" in body
    # The department's liaison has only an e-mail; nobody gets a WeChat message for it.
    with app.extensions["redsteward.sessions"]() as s:
        kinds = s.scalars(select(OutboxMessage.kind)).all()
    assert sorted(kinds) == ["email"]
