"""Steward and liaison chat commands through the webhook: each command, its refusals, offline intake."""
from __future__ import annotations

import pytest
from datetime import timedelta

from sqlalchemy import select

from models import OutboxMessage, Resident, ServiceRequest, utcnow
from models.timeline import timeline_of

from .park import park_with_request
from .wechat import WeChatSim

STEWARD = "sandbox_steward_xinghu"
OTHER_STEWARD = "sandbox_steward_hanlin"
LIAISON = "sandbox_liaison_xhy_pm"
SWC = "sandbox_liaison_hx_swc"
RESIDENT = "o_cmd_resident"


@pytest.fixture
def park(app, sessions):
    """The example park with one request filed by a resident of 星湖苑; returns its reference."""
    return park_with_request(sessions, RESIDENT, "电梯异响好几天了")


@pytest.fixture
def chat(app, client):
    """Sends a text as someone and returns the reply."""
    sim = WeChatSim(app, client)
    return sim.text


def stored(sessions, ref) -> ServiceRequest:
    """The request as stored."""
    with sessions() as s:
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.ref == ref))
        req.handler  # noqa: B018  (load before the session closes)
        return req


def test_todo_and_view(park, chat):
    todo = chat(STEWARD, "待办")
    assert park in todo and "已提交" in todo and "电梯异响" in todo
    assert "没有待办" in chat(OTHER_STEWARD, "待办")
    view = chat(STEWARD, f"查看 {park}")
    assert "电梯异响好几天了" in view and "居民 提交" in view and f"/m/requests/{park}?t=" in view
    assert "没有找到" in chat(OTHER_STEWARD, f"查看 {park}")  # another community's request
    assert "没有找到" in chat(STEWARD, "查看 00000000")


def test_refusals_are_kind_and_change_nothing(park, chat, sessions):
    assert "还没分类" in chat(STEWARD, f"派 {park} 物业")
    assert "目前“已提交”，不能回复" in chat(STEWARD, f"回复 {park} 好的")
    assert "格式：分类" in chat(STEWARD, f"分类 {park} 杂项 电梯")
    assert "格式：回复" in chat(STEWARD, f"回复 {park}")
    assert stored(sessions, park).status == "submitted"
    with sessions() as s:
        assert len(timeline_of(s, stored(sessions, park).id)) == 1


def test_a_resident_typing_a_command_word_is_not_staff(park, chat):
    assert "待办诉求" not in chat(RESIDENT, "待办")
    assert "感谢" not in chat(RESIDENT, "1")  # nothing awaits a rating: not taken as one


def test_route_transfer_escalate_and_the_street_resolves(park, chat, sessions):
    assert "已受理" in chat(STEWARD, f"分类 {park} 民主自治 电梯维修")
    assert "星湖苑业委会" in chat(STEWARD, f"派 {park}")  # self-governance goes to the owners' committee
    assert stored(sessions, park).handler.code == "xhy_oc"
    assert "需要社区红管负责人" in chat("sandbox_liaison_xhy_oc", f"分类 {park} 政务类 电梯")
    assert "没有找到" in chat(LIAISON, f"回复 {park} 好的")  # not routed to the property company
    reply = chat(STEWARD, f"转 {park} 物业")
    assert "已转办" in reply and "星湖苑物业服务中心" in reply
    assert park in chat(LIAISON, "待办")
    assert "请写明原因" not in chat(LIAISON, f"升级 {park} 需要动用维修基金，业委会与物业意见不一")
    req = stored(sessions, park)
    assert (req.status, req.level, req.handler.code) == ("routed", "street", "hx_swc")
    assert park not in chat(LIAISON, "待办") and park in chat(SWC, "待办")
    assert "已办结" in chat(SWC, f"办结 {park} 已协调维修基金，电梯下周检修")
    with sessions() as s:
        actions = [e.action for e in timeline_of(s, req.id)]
        recipients = s.scalars(select(OutboxMessage.recipient)).all()
    assert actions == ["submit", "classify", "route", "transfer", "escalate", "resolve"]
    assert {"sandbox_liaison_xhy_oc", LIAISON, SWC, RESIDENT} <= set(recipients)


def test_which_handler_when_the_words_are_ambiguous_or_unknown(park, chat):
    chat(STEWARD, f"分类 {park} 市场服务类 电梯")
    assert "多个单位" in chat(STEWARD, f"派 {park} 物业服务中心")
    assert "没有找到“水务公司”" in chat(STEWARD, f"派 {park} 水务公司")


def test_close_as_duplicate_needs_a_reason(park, chat, sessions):
    assert "格式：关闭" in chat(STEWARD, f"关闭 {park} 不想办")
    assert "请写明原因" in chat(STEWARD, f"关闭 {park} 重复")
    assert "已关闭" in chat(STEWARD, f"关闭 {park} 重复 与昨天的电梯诉求是同一件事")
    req = stored(sessions, park)
    assert (req.status, req.close_reason, req.resolved_at) == ("closed", "duplicate", None)


def test_offline_intake_records_channel_contact_and_who(park, chat, sessions):
    reply = chat(STEWARD, "代录 来访 玲珑家园 13900001111 5栋门口垃圾桶满了没人清")
    assert "已代录（来访，玲珑家园）" in reply
    with sessions() as s:
        req = s.scalar(select(ServiceRequest).where(ServiceRequest.channel == "walk_in"))
        assert req.description == "5栋门口垃圾桶满了没人清" and req.contact_mobile == "13900001111"
        assert req.estate.code == "lhjy" and req.recorded_by_id is not None and req.resident_id is None
        [entry] = timeline_of(s, req.id)
        assert (entry.action, entry.actor_kind) == ("record", "steward")
    assert req.ref in reply
    assert "没有叫“翰林水岸”的小区" in chat(STEWARD, "代录 走访 翰林水岸 这个小区不归星湖社区")
    assert "格式：代录" in chat(STEWARD, "代录 微信 星湖苑 渠道不对的一条")
    assert "需要社区红管负责人" in chat(LIAISON, "代录 走访 星湖苑 联络人不能代录")


def test_help_lists_the_commands_for_each_role(park, chat):
    assert "代录" in chat(STEWARD, "红管帮助") and "发送失败" in chat(STEWARD, "红管帮助")
    assert "代录" not in chat(LIAISON, "红管帮助") and "办结" in chat(LIAISON, "红管帮助")


@pytest.mark.parametrize("last_wrote,asked", [(timedelta(hours=2), True), (timedelta(hours=49), False)])
def test_the_rating_question_only_goes_inside_wechats_48_hour_window(park, chat, sessions, last_wrote, asked):
    chat(STEWARD, f"分类 {park} 市场服务类 电梯")
    chat(STEWARD, f"派 {park} 物业")
    with sessions() as s:
        resident = s.scalar(select(Resident).where(Resident.openid == RESIDENT))
        resident.last_message_at = utcnow() - last_wrote
        s.commit()
    chat(LIAISON, f"办结 {park} 已更换电梯导轨")
    with sessions() as s:
        kinds = s.scalars(select(OutboxMessage.kind).where(OutboxMessage.recipient == RESIDENT)).all()
    assert kinds.count("kf_text") == (1 if asked else 0)
    assert kinds.count("template") == 2  # routed, resolved: the page carries the rating form


def test_the_steward_may_set_the_deadline_when_routing(park, chat, sessions):
    chat(STEWARD, f"分类 {park} 市场服务类 电梯")
    assert "已派单" in chat(STEWARD, f"派 {park} 物业 2天")
    assert stored(sessions, park).deadline_days == 2  # the rules would have said 3
    assert "已转办" in chat(STEWARD, f"转 {park} 业委会 10个工作日")
    req = stored(sessions, park)
    assert (req.handler.code, req.deadline_days) == ("xhy_oc", 10)
