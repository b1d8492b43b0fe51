"""实名认证 step by step, with junk input, 返回/取消, expiry, retries and two messages at once."""
from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from models import Conversation, Resident, utcnow

from .flowkit import Chat, verify
from .wechat import WeChatSim


def test_each_step_and_the_stored_identity(demo, sessions):
    chat = Chat(demo, "o_v1")
    assert "真实姓名" in chat.click("FLOW_VERIFY") and chat.state == ("verification", "name")
    assert "手机号" in chat.text("张小芳") and chat.state == ("verification", "mobile")
    reply = chat.text("+86 138 1234 5678")
    assert "翰林社区" in reply and chat.state == ("verification", "community")
    number = next(line.split(".")[0] for line in reply.splitlines() if line.endswith("星湖社区"))
    assert "星湖苑" in chat.text(number) and chat.state == ("verification", "estate")
    assert "楼栋" in chat.text("星湖苑") and chat.state == ("verification", "building")
    assert "党员" in chat.text("跳过") and chat.state == ("verification", "party_member")
    confirm = chat.text("是")
    assert chat.state == ("verification", "__confirm__")
    assert "张小芳" in confirm and "138****5678" in confirm and "13812345678" not in confirm
    done = chat.text("确认")
    assert "张*芳" in done and "党员身份待" in done and chat.state == (None, None)
    with sessions() as s:
        r = s.scalar(select(Resident).where(Resident.openid == "o_v1"))
        assert (r.name, r.mobile, r.estate.name, r.party_member) == ("张小芳", "13812345678", "星湖苑", "pending")
        assert r.is_verified and r.address is None
        # Encrypted at rest: the raw column holds neither the name nor the number.
        raw = s.connection().exec_driver_sql("SELECT name, mobile FROM residents WHERE openid='o_v1'").one()
        assert "张小芳" not in raw[0] and "13812345678" not in raw[1]


def test_junk_names_and_phone_numbers_get_kind_hints(demo):
    chat = Chat(demo, "o_v2")
    chat.click("FLOW_VERIFY")
    for junk in ("😀😀", "张三3", "x" * 60):
        reply = chat.text(junk)
        assert chat.state == ("verification", "name"), junk
        assert "姓名" in reply or "超过" in reply
    assert "不是照片" in chat.image() and chat.state == ("verification", "name")
    chat.text("欧阳娜娜")
    for junk in ("1381234567", "23812345678", "电话", "+1 415 555 0100"):
        assert "11位手机号" in chat.text(junk) and chat.state == ("verification", "mobile"), junk
    chat.text("１３８-1234-5678")  # full-width digits and dashes, as some keyboards type them
    assert chat.state == ("verification", "community") and chat.answers["mobile"] == "13812345678"
    assert "1 到 2" in chat.text("9") and chat.state == ("verification", "community")


def test_back_from_estate_and_cancel_anywhere(demo, sessions):
    chat = Chat(demo, "o_v3")
    chat.click("FLOW_VERIFY")
    chat.text("李四")
    chat.text("13900001111")
    assert "翰林水岸" in chat.text("翰林社区") and chat.state == ("verification", "estate")
    assert "哪个社区" in chat.text("返回") and chat.state == ("verification", "community")
    assert "community" not in chat.answers
    assert "玲珑家园" in chat.text("星湖社区") and chat.state == ("verification", "estate")
    chat.text("玲珑")  # part of a name picks the only match
    assert chat.answers["estate"] == "lhjy"
    chat.text("跳过")
    assert "党员：未填写" in chat.text("跳过") and chat.state == ("verification", "__confirm__")
    assert "已取消" in chat.text("取消") and chat.state == (None, None)
    with sessions() as s:
        assert not s.scalar(select(Resident).where(Resident.openid == "o_v3")).is_verified


def test_an_idle_flow_expires_and_the_resident_is_told(demo):
    chat = Chat(demo, "o_v4")
    now = utcnow()
    chat.at(now, "实名认证")
    chat.at(now + timedelta(minutes=5), "王五")
    assert chat.state == ("verification", "mobile")
    reply = chat.at(now + timedelta(minutes=40), "13812345678")
    assert "自动结束" in reply and "实名认证" in reply and chat.state == (None, None)
    # Within the idle limit nothing expires.
    chat.at(now + timedelta(minutes=41), "实名认证")
    reply = chat.at(now + timedelta(minutes=70), "赵六")
    assert "自动结束" not in reply and chat.state == ("verification", "mobile")


def test_three_deliveries_of_one_answer_move_the_flow_once(demo):
    chat = Chat(demo, "o_v5")
    chat.click("FLOW_VERIFY")
    body = chat.sim.xml(chat.openid, "text", Content="钱七")
    replies = [chat.sim.decode(chat.sim.post_raw(body))["Content"] for _ in range(3)]
    assert len(set(replies)) == 1 and chat.state == ("verification", "mobile")


def test_two_messages_at_once_queue_on_the_conversation_row(demo, sessions):
    """Two workers, one resident: each message sees the other's result, nothing is lost."""
    chat = Chat(demo, "o_v6")
    chat.click("FLOW_VERIFY")
    with sessions() as s:
        before = s.scalar(select(Conversation.version).join(Resident).where(Resident.openid == "o_v6"))
    retry_body = WeChatSim(demo, demo.test_client()).xml("o_v6", "text", Content="孙八")
    results: list = []

    def post(body):
        sim = WeChatSim(demo, demo.test_client())
        results.append(sim.decode(sim.post_raw(body)).get("Content", ""))

    bodies = [retry_body, retry_body, chat.sim.xml("o_v6", "text", Content="13812345678")]
    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3
    with sessions() as s:
        conv = s.scalar(select(Conversation).join(Resident).where(Resident.openid == "o_v6"))
        # The retried name counted once; the phone was handled before or after it, never on top.
        assert conv.version == before + 2
        if conv.step == "community":  # name first, then the number
            assert conv.data == {"name": "孙八", "mobile": "13812345678"}
        else:  # the number arrived first and was refused as a name; the name was then taken
            assert conv.step == "mobile" and conv.data == {"name": "孙八"}


def test_verified_resident_helper(demo):
    assert "实名认证完成" in verify(Chat(demo, "o_v7"))


def test_a_new_residents_first_click_delivered_three_times_at_once_starts_one_flow(demo, sessions):
    """First contact races: one resident row, one conversation, the flow started once, one reply."""
    body = WeChatSim(demo, demo.test_client()).xml("o_first", "event", Event="CLICK", EventKey="FLOW_VERIFY")
    results: list = []

    def post():
        sim = WeChatSim(demo, demo.test_client())
        results.append(sim.decode(sim.post_raw(body)).get("Content", ""))

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3 and len(set(results)) == 1 and "姓名" in results[0]
    with sessions() as s:
        residents = s.scalars(select(Resident).where(Resident.openid == "o_first")).all()
        assert len(residents) == 1
        conv = s.get(Conversation, residents[0].id)
        assert (conv.flow, conv.step, conv.version) == ("verification", "name", 1)
