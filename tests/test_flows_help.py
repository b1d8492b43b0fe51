"""我要求助 as a resident plays it: every step, answers from the handbook, photos, the steward told."""
from __future__ import annotations

from datetime import timedelta, timezone

from sqlalchemy import func, select

from models import OutboxMessage, ServiceRequest
from models.media import MediaFile

from .flowkit import Chat, verify

LIFT = "小区电梯坏了三天了，物业一直不来修"


def _requests(sessions):
    with sessions() as s:
        return s.scalars(select(ServiceRequest).order_by(ServiceRequest.id)).all()


def test_verified_resident_files_a_help_request_step_by_step(demo, sessions):
    chat = Chat(demo, "o_help")
    verify(chat)
    assert "哪一类" in chat.click("FLOW_HELP") and chat.state == ("help_request", "kind")
    assert "哪方面" in chat.text("1") and chat.state == ("help_request", "category")
    assert "描述" in chat.text("物业") and chat.state == ("help_request", "description")
    assert "位置" in chat.text(LIFT) and chat.state == ("help_request", "location")
    assert "照片" in chat.location(31.30, 120.70, "星湖苑3栋") and chat.state == ("help_request", "photos")
    assert "第 1 张" in chat.image("photo-a") and chat.state == ("help_request", "photos")
    confirm = chat.text("完成")
    assert chat.state == ("help_request", "__confirm__")
    # Before anything is filed: matching answers from the handbook, best first.
    assert "这些回答也许能帮到您" in confirm
    assert confirm.index("小区电梯坏了找谁报修") < confirm.index("请核对")
    assert "位置：星湖苑3栋" in confirm and "照片：1 张" in confirm
    assert _requests(sessions) == []  # nothing filed before 确认
    filed = chat.text("1")
    assert chat.state == (None, None)
    [req] = _requests(sessions)
    assert req.ref in filed and req.kind == "help" and req.category == "物业服务"
    assert req.location["lat"] == 31.30 and req.photos[0]["media_id"] == "photo-a"
    with sessions() as s:
        [tpl] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "template")).all()
        assert tpl.recipient == "sandbox_steward_xinghu" and tpl.payload["data"]["character_string1"]["value"] == req.ref
        filed_at = req.created_at.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
        assert tpl.payload["data"]["time4"]["value"] == filed_at  # China time, as the steward reads it
        # The photo waits for the media job: queued once, not fetched in the webhook.
        [media] = s.scalars(select(MediaFile)).all()
        assert (media.media_id, media.kind, media.request_id, media.status) == ("photo-a", "image", req.id, "pending")


def test_a_retried_confirmation_files_once_and_queues_each_photo_once(demo, sessions):
    chat = Chat(demo, "o_retry_help")
    verify(chat)
    for message in ("FLOW_HELP", "1", "1", LIFT, "跳过"):
        chat.click(message) if message.startswith("FLOW") else chat.text(message)
    chat.image("same-photo")
    chat.image("other-photo")
    chat.text("完成")
    body = chat.sim.xml(chat.openid, "text", Content="确认")
    replies = [chat.sim.decode(chat.sim.post_raw(body))["Content"] for _ in range(3)]
    assert replies[0] == replies[1] == replies[2] and "已提交" in replies[0]
    assert len(_requests(sessions)) == 1
    with sessions() as s:
        assert s.scalar(select(func.count(MediaFile.id))) == 2
        assert s.scalar(select(func.count(OutboxMessage.id))) == 1


def test_back_skip_and_cancel(demo, sessions):
    chat = Chat(demo, "o_nav")
    verify(chat)
    chat.click("FLOW_HELP")
    assert "第一步" in chat.text("返回") and chat.state == ("help_request", "kind")
    chat.text("咨询")
    assert chat.answers["kind"] == "inquiry"
    assert "哪一类" in chat.text("返回") and chat.state == ("help_request", "kind")
    assert "kind" not in chat.answers
    chat.text("3")
    chat.text("6")
    assert "不能跳过" in chat.text("跳过") and chat.state == ("help_request", "description")
    chat.text("楼下绿化带可以多种一些树")
    assert chat.state == ("help_request", "location")
    chat.text("跳过")
    chat.image("p1")
    # 跳过 after a photo keeps the photo instead of throwing it away.
    confirm = chat.text("跳过")
    assert chat.state == ("help_request", "__confirm__") and "照片：1 张" in confirm and "位置：未提供" in confirm
    assert "照片" in chat.text("2") and chat.state == ("help_request", "photos")
    assert "photos" not in chat.answers
    assert "已取消" in chat.text("取消") and chat.state == (None, None)
    assert _requests(sessions) == []


def test_unverified_resident_may_ask_but_must_verify_before_a_help_request(demo, sessions):
    chat = Chat(demo, "o_new")
    chat.click("FLOW_HELP")
    reply = chat.text("求助")
    assert "实名认证" in reply and chat.state == ("help_request", "kind")
    # Without an estate the flow asks for the community, so the right steward gets it.
    assert "哪个社区" in chat.text("咨询") and chat.state == ("help_request", "community")
    chat.text("翰林社区")
    chat.text("政策咨询")
    chat.text("老年助餐卡在哪里办理，需要带什么材料")
    chat.text("跳过")
    confirm = chat.text("跳过")
    assert "老年助餐怎么报名" in confirm
    chat.text("确认")
    with sessions() as s:
        [req] = s.scalars(select(ServiceRequest)).all()
        assert req.kind == "inquiry" and req.estate_id is None and req.community.code == "hanlin"
        [tpl] = s.scalars(select(OutboxMessage)).all()
        assert tpl.recipient == "sandbox_steward_hanlin"


def test_junk_input_gets_a_hint_and_the_question_again(demo, sessions):
    chat = Chat(demo, "o_junk")
    verify(chat)
    chat.click("FLOW_HELP")
    assert "1 到 3" in chat.text("🙂🙂") and chat.state == ("help_request", "kind")
    chat.text("一")  # a Chinese numeral picks the first choice
    assert chat.state == ("help_request", "category")
    assert "不是照片" in chat.image("x") and chat.state == ("help_request", "category")
    chat.text("2")
    assert "表情" in chat.text("😡😡😡😡😡😡") and chat.state == ("help_request", "description")
    assert "至少写 5" in chat.text("太脏") and chat.state == ("help_request", "description")
    assert "超过了 500" in chat.text("垃圾" * 300) and chat.state == ("help_request", "description")
    chat.text("3栋门口的垃圾桶两天没人清运了🙁")
    assert chat.state == ("help_request", "location")
    assert "不在园区" in chat.location(39.90, 116.40, "天安门") and chat.state == ("help_request", "location")
    assert "照片" in chat.text("星湖街128号3栋门口") and chat.state == ("help_request", "photos")
    assert "发送照片" in chat.text("好的") and chat.state == ("help_request", "photos")
    for n in range(3):
        reply = chat.image(f"junk-{n}")
    # The third photo reaches the limit and moves on by itself.
    assert chat.state == ("help_request", "__confirm__") and "照片：3 张" in reply
    assert "回复 1 确认" in chat.text("嗯嗯") and chat.state == ("help_request", "__confirm__")
    chat.text("确认")
    [req] = _requests(sessions)
    assert req.description.endswith("🙁") and req.location == {"address": "星湖街128号3栋门口"}


def test_voice_description_keeps_the_recognition(demo, sessions):
    chat = Chat(demo, "o_voice")
    verify(chat)
    chat.click("FLOW_HELP")
    chat.text("1")
    chat.text("1")
    chat.voice("楼道的灯坏了一个星期了")
    assert chat.state == ("help_request", "location")
    chat.text("跳过")
    assert "（语音）" in chat.text("跳过")
    chat.text("1")
    [req] = _requests(sessions)
    assert req.description == "楼道的灯坏了一个星期了"


def test_the_confirmation_fits_in_one_wechat_reply(demo):
    """WeChat cuts text replies at 2,048 bytes: a 500-character description is shortened in the summary."""
    chat = Chat(demo, "o_long")
    verify(chat)
    chat.click("FLOW_HELP")
    chat.text("1")
    chat.text("1")
    chat.text("电梯" + "物业维修一直拖延，楼里老人上下楼很不方便，" * 23)
    chat.text("跳过")
    confirm = chat.text("跳过")
    assert chat.state == ("help_request", "__confirm__") and "…" in confirm
    assert len(confirm.encode("utf-8")) < 2048
