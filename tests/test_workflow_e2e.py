"""End to end through the webhook and a real WeChat API stand-in: file, classify, route, reply,
rate 不满意, reopen, resolve, rate 满意 — every state and every message."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from bot import orgimport
from models import OutboxMessage, ServiceRequest
from models.timeline import timeline_of

from .wechat import WeChatSim
from .wechat_standin import run_outbox, standin  # noqa: F401  (fixture)

RESIDENT = "o_resident_e2e"
STEWARD = "sandbox_steward_xinghu"
LIAISON = "sandbox_liaison_xhy_pm"


@pytest.fixture
def park(make_app, standin):
    """An app whose API calls go to the stand-in, on the shipped example park."""
    app = make_app(wechat={"api_base_url": standin.url, "timeout_seconds": 1.0},
                   scheduler={"outbox_rate_per_second": 0})
    with app.extensions["redsteward.sessions"]() as s:
        orgimport.import_file(s, orgimport.EXAMPLE_PATH)
    return app


def fields(message: dict) -> dict:
    """A template message's field values."""
    return {name: value["value"] for name, value in message["data"].items()}


def file_as_resident(wx) -> str:
    """Verifies and files a 求助 through the webhook; returns the reply."""
    steps = [("click", "FLOW_VERIFY", "真实姓名"), ("text", "张小芳", "手机号"),
             ("text", "13812345678", "社区"), ("text", "星湖社区", "小区"), ("text", "星湖苑", "楼栋"),
             ("text", "跳过", "党员"), ("text", "2", "138****5678"), ("text", "1", "实名认证完成"),
             ("click", "FLOW_HELP", "哪一类"), ("text", "1", "哪方面"), ("text", "公共设施", "描述"),
             ("text", "3栋楼道灯坏了一周了", "位置"), ("text", "跳过", "照片"), ("text", "完成", "核对"),
             ("text", "1", "编号")]
    reply = ""
    for kind, value, expected in steps:
        reply = wx.click(RESIDENT, value) if kind == "click" else wx.text(RESIDENT, value)
        assert expected in reply, (value, reply)
    return reply


def test_a_request_from_filing_to_a_satisfied_resident(park, standin):
    wx = WeChatSim(park, park.test_client())
    sessions = park.extensions["redsteward.sessions"]

    def request() -> ServiceRequest:
        with sessions() as s:
            return s.scalar(select(ServiceRequest))

    filed = file_as_resident(wx)
    ref = request().ref
    assert ref in filed and request().status == "submitted"

    # The steward gets the new-request template message, with a signed link.
    assert run_outbox(park)["sent"] == 1
    [note] = standin.to(STEWARD)
    assert fields(note)["character_string1"] == ref and "星湖苑" in fields(note)["thing3"]
    assert urlsplit(note["url"]).path == f"/m/requests/{ref}" and "t=" in note["url"]
    assert note["client_msg_id"]

    # Classify and route by chat command; the routing rules suggest the property company.
    reply = wx.text(STEWARD, f"分类 {ref} 市场服务类 物业服务")
    assert "已受理" in reply and "星湖苑物业服务中心" in reply
    assert request().status == "accepted" and request().type == "market_service"
    reply = wx.text(STEWARD, f"派 {ref}")
    assert "已派单" in reply and "星湖苑物业服务中心" in reply
    req = request()
    assert req.status == "routed" and req.deadline_days == 3 and req.deadline_at is not None
    assert run_outbox(park)["sent"] == 2
    [routed] = standin.to(LIAISON)
    assert fields(routed)["character_string1"] == ref and fields(routed)["thing2"] == "市场服务类·物业服务"
    [update] = standin.to(RESIDENT)
    assert fields(update)["phrase2"] == "办理中" and fields(update)["thing3"] == "星湖苑物业服务中心"

    # The liaison replies; the resident gets a template message linking to their page.
    assert "已回复" in wx.text(LIAISON, f"回复 {ref} 明天上午派电工上门更换")
    assert request().status == "answered" and request().answer == "明天上午派电工上门更换"
    run_outbox(park)
    answered = standin.to(RESIDENT)[-1]
    assert fields(answered)["phrase2"] == "已答复" and f"/m/requests/{ref}?t=" in answered["url"]
    assert answered["url"] != note["url"]  # the resident's link is not the steward's
    page = park.test_client().get(answered["url"].split("127.0.0.1:5000", 1)[1])
    assert page.status_code == 200 and "明天上午派电工上门更换" in page.get_data(as_text=True)

    # Resolved: template message plus the rating question (the resident wrote recently).
    assert "已办结" in wx.text(LIAISON, f"办结 {ref} 灯已更换")
    assert request().status == "resolved"
    run_outbox(park)
    resolved, ask = standin.to(RESIDENT)[-2:]
    assert fields(resolved)["phrase2"] == "已办结"
    assert ask["msgtype"] == "text" and ref in ask["text"]["content"] and "3 不满意" in ask["text"]["content"]

    # 不满意 reopens it and tells the handler.
    reply = wx.text(RESIDENT, "3 还是不亮")
    assert "重新交给星湖苑物业服务中心" in reply
    req = request()
    assert (req.status, req.rating, req.rating_comment, req.reopen_count) == ("reopened", "unsatisfied", "还是不亮", 1)
    run_outbox(park)
    reopened = standin.to(LIAISON)[-1]
    assert fields(reopened)["phrase2"] == "重新办理" and fields(reopened)["character_string1"] == ref

    # Resolved again, rated 满意: closed.
    assert "已办结" in wx.text(LIAISON, f"办结 {ref} 整条线路已更换")
    run_outbox(park)
    assert fields(standin.to(RESIDENT)[-2])["phrase2"] == "已办结"
    assert "感谢" in wx.text(RESIDENT, "1")
    req = request()
    assert (req.status, req.rating, req.close_reason) == ("closed", "satisfied", "rated")
    assert req.resolved_at is not None and req.closed_at is not None and req.unsatisfied_count == 1

    with sessions() as s:
        entries = timeline_of(s, req.id)
        assert [(e.action, e.to_status, e.actor_kind) for e in entries] == [
            ("submit", "submitted", "resident"), ("classify", "accepted", "steward"),
            ("route", "routed", "steward"), ("answer", "answered", "liaison"),
            ("resolve", "resolved", "liaison"), ("rate", "rated", "resident"),
            ("reopen", "reopened", "resident"), ("resolve", "resolved", "liaison"),
            ("rate", "rated", "resident"), ("close", "closed", "system")]
        statuses = s.scalars(select(OutboxMessage.status)).all()
    assert set(statuses) == {"sent"} and run_outbox(park)["sent"] == 0
    # Every message went out once: 1 to the steward, 2 to the liaison (+ reopen), 6 to the resident.
    assert len(standin.to(STEWARD)) == 1 and len(standin.to(LIAISON)) == 2
    assert len(standin.to(RESIDENT)) == 6
    assert len(standin.delivered) == len(standin.attempts) == 9
