"""个人中心: my requests with status, detail and timeline by number; my profile masked and corrected."""
from __future__ import annotations

from sqlalchemy import select

from models import Resident, ServiceRequest

from .flowkit import Chat, verify


def _file(chat: Chat, text: str) -> str:
    """Files a 咨询 and returns its reference number."""
    chat.click("FLOW_HELP")
    for answer in ("咨询", "政策咨询", text, "跳过", "跳过", "确认"):
        reply = chat.text(answer)
    return reply.split("编号 ")[1][:8]


def test_my_requests_list_and_detail_with_timeline(demo, sessions):
    chat = Chat(demo, "o_me")
    assert "还没有提交过" in chat.click("MY_REQUESTS")
    verify(chat)
    first = _file(chat, "居住证明需要带哪些材料去办理")
    second = _file(chat, "老年优待证在哪里可以申请办理")
    listing = chat.click("MY_REQUESTS")
    assert listing.index(second) < listing.index(first)  # newest first
    assert listing.count("已提交") == 2 and f"查询 {second}" in listing
    detail = chat.text(f"查询 {first}")
    assert first in detail and "咨询 · 政策咨询" in detail and "状态：已提交" in detail
    assert "居住证明需要带哪些材料" in detail and "办理经过" in detail and "提交" in detail
    # Spaces typed inside the number, as people read numbers out, still find it.
    assert first in chat.text(f"查询 {first[:4]} {first[4:]}")
    assert "写上诉求编号" in chat.text("查询")
    assert "没有找到" in chat.text("查询 99999999")


def test_someone_elses_number_reveals_nothing(demo):
    owner = Chat(demo, "o_owner")
    verify(owner)
    ref = _file(owner, "小区门口的路灯晚上不亮了")
    reply = Chat(demo, "o_stranger").text(f"查询 {ref}")
    assert "没有找到" in reply and "路灯" not in reply


def test_my_profile_is_masked(demo):
    chat = Chat(demo, "o_prof")
    assert "还没有实名认证" in chat.text("我的资料")
    verify(chat, name="欧阳小明", mobile="13987654321")
    profile = chat.text("我的资料")
    assert "欧**明" in profile and "139****4321" in profile and "星湖社区 星湖苑 3栋2单元" in profile
    assert "欧阳小明" not in profile and "13987654321" not in profile


def test_correcting_the_mobile_and_the_estate(demo, sessions):
    chat = Chat(demo, "o_fix")
    assert "实名认证" in chat.text("修改资料") and chat.state == (None, None)
    verify(chat)
    assert "哪一项" in chat.text("修改资料") and chat.state == ("profile_edit", "field")
    assert "新的手机号" in chat.text("手机号") and chat.state == ("profile_edit", "mobile")
    assert "11位" in chat.text("1390000") and chat.state == ("profile_edit", "mobile")
    confirm = chat.text("139 0000 1111")
    assert chat.state == ("profile_edit", "__confirm__") and "139****1111" in confirm
    assert "139****1111" in chat.text("确认") and chat.state == (None, None)
    chat.text("修改资料")
    chat.text("小区")
    assert chat.state == ("profile_edit", "community")
    chat.text("翰林社区")
    chat.text("月亮湾")
    assert chat.state == ("profile_edit", "building")
    assert "哪个小区" in chat.text("返回") and chat.state == ("profile_edit", "estate")
    chat.text("月亮湾花园")
    confirm = chat.text("5栋1单元")
    assert "翰林社区 月亮湾花园" in confirm and "5栋1单元" in confirm
    chat.text("1")
    with sessions() as s:
        r = s.scalar(select(Resident).where(Resident.openid == "o_fix"))
        assert (r.mobile, r.estate.name, r.address) == ("13900001111", "月亮湾花园", "5栋1单元")
        assert s.scalar(select(ServiceRequest)) is None


def test_the_detail_follows_the_stewards_work(demo, sessions):
    from models import utcnow
    from models.timeline import Actor
    from models import Organisation
    from models.workflow import answer, classify, find_by_ref, route
    chat = Chat(demo, "o_follow")
    verify(chat)
    ref = _file(chat, "社区助餐点周末开不开门")
    with sessions() as s:
        req = find_by_ref(s, ref)
        steward = Actor("steward", 1, "王红梅")
        classify(s, req, steward, "public_welfare", "养老服务", utcnow())
        route(s, req, steward, s.scalar(select(Organisation).where(Organisation.code == "xinghu_rc")), 3, utcnow())
        answer(s, req, steward, "周末照常开放，11:00-12:30供应午餐，凭助餐卡就餐。" * 6, utcnow())
        s.commit()
    detail = chat.text(f"查询 {ref}")
    assert "分类受理" in detail and "派单" in detail and "答复" in detail and "周末照常开放" in detail
    assert "状态：已提交" not in detail and "…" in detail  # a long answer is shortened in chat
    assert f"{ref} · 咨询 · 已答复" in chat.click("MY_REQUESTS")
