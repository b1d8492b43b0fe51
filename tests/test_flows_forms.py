"""Forms defined only in menus.yaml: 宠物登记 and 共享车位申请 (with a quota per estate)."""
from __future__ import annotations

import threading

import pytest
import yaml
from sqlalchemy import select

from models.form import FormSubmission
from models.media import MediaFile

from .flowkit import Chat, verify
from .wechat import WeChatSim


def _forms(sessions):
    with sessions() as s:
        return s.scalars(select(FormSubmission).order_by(FormSubmission.id)).all()


def test_pet_registration_step_by_step(demo, sessions):
    chat = Chat(demo, "o_pet")
    assert "实名认证" in chat.click("FLOW_PET") and chat.state == (None, None)
    verify(chat)
    assert "什么宠物" in chat.click("FLOW_PET") and chat.state == ("pet_registration", "species")
    assert "名字" in chat.text("狗") and chat.state == ("pet_registration", "pet_name")
    assert "品种" in chat.text("豆豆") and chat.state == ("pet_registration", "breed")
    assert "狂犬疫苗" in chat.text("跳过") and chat.state == ("pet_registration", "vaccinated")
    assert "照片" in chat.text("1") and chat.state == ("pet_registration", "photo")
    confirm = chat.image("pet-photo")  # one photo is the maximum: straight to the summary
    assert chat.state == ("pet_registration", "__confirm__")
    assert "狗 · 豆豆" in confirm and "已接种" in confirm and "照片：已发送" in confirm
    assert "宠物登记已提交" in chat.text("确认") and chat.state == (None, None)
    [form] = _forms(sessions)
    assert form.flow == "pet_registration" and form.answers["pet_name"] == "豆豆"
    assert form.answers["photo"][0]["media_id"] == "pet-photo" and "豆豆" in form.summary
    with sessions() as s:
        [media] = s.scalars(select(MediaFile)).all()
        assert (media.media_id, media.kind, media.status) == ("pet-photo", "image", "pending")


def test_parking_plate_is_checked_and_normalised(demo, sessions):
    chat = Chat(demo, "o_park")
    verify(chat)
    chat.click("FLOW_PARKING")
    for junk in ("12345", "苏E", "🚗🚗", "京A·1"):
        assert "车牌" in chat.text(junk) and chat.state == ("shared_parking", "plate"), junk
    assert "时段" in chat.text("苏e 12345") and chat.answers["plate"] == "苏E12345"
    chat.text("夜间")
    confirm = chat.text("跳过")
    assert "苏E12345" in confirm and "夜间" in confirm
    chat.text("1")
    [form] = _forms(sessions)
    assert (form.flow, form.answers["plate"], form.answers["period"]) == ("shared_parking", "苏E12345", "night")


def _app_with_quota(make_app, tmp_path, quota: int):
    """The demo app with menus.yaml's parking quota changed, as an admin would."""
    from bot import demo as demo_data
    from handlers.menus import DEFAULT_PATH
    path = tmp_path / "menus.yaml"
    text = DEFAULT_PATH.read_text(encoding="utf-8").replace("quota_per_estate: 20", f"quota_per_estate: {quota}")
    assert f"quota_per_estate: {quota}\n" in text
    path.write_text(text, encoding="utf-8")
    app = make_app(app={"menus_path": str(path)})
    with app.extensions["redsteward.sessions"]() as s:
        demo_data.load(s)
    return app


def test_parking_quota_per_estate_comes_from_menus_yaml(make_app, tmp_path):
    app = _app_with_quota(make_app, tmp_path, 2)
    plates = ["苏E11111", "苏E22222", "苏E33333"]
    replies = []
    for n, plate in enumerate(plates):
        chat = Chat(app, f"o_quota{n}")
        verify(chat, mobile=f"1391234567{n}")
        chat.click("FLOW_PARKING")
        chat.text(plate)
        chat.text("1")
        chat.text("跳过")
        replies.append(chat.text("确认"))
        assert chat.state == (None, None)
    assert "已提交" in replies[0] and "已提交" in replies[1]
    assert "名额（2个）已满" in replies[2]
    with app.extensions["redsteward.sessions"]() as s:
        stored = s.scalars(select(FormSubmission.answers)).all()
        assert sorted(a["plate"] for a in stored) == plates[:2]
    # Another estate has its own quota.
    chat = Chat(app, "o_quota_other")
    chat.click("FLOW_VERIFY")
    for answer in ("周九", "13700001111", "翰林社区", "翰林水岸", "跳过", "不是", "确认", ):
        chat.text(answer)
    chat.click("FLOW_PARKING")
    chat.text("苏E44444")
    chat.text("2")
    chat.text("跳过")
    assert "已提交" in chat.text("确认")


def test_steward_sees_the_forms_of_their_community(demo, sessions):
    chat = Chat(demo, "o_pet2")
    verify(chat, name="吴十一")
    chat.click("FLOW_PET")
    for answer in ("猫", "咪咪", "布偶", "还没有", "跳过", "确认"):
        chat.text(answer)
    steward = Chat(demo, "sandbox_steward_xinghu")
    listing = steward.text("登记记录")
    assert "宠物登记" in listing and "咪咪" in listing and "吴*一" in listing
    assert "吴十一" not in listing
    other = Chat(demo, "sandbox_steward_hanlin").text("登记记录")
    assert "咪咪" not in other and "还没有居民登记" in other
    # A resident typing the same words gets no one else's data.
    assert "咪咪" not in Chat(demo, "o_curious").text("登记记录")


@pytest.mark.parametrize("flow", ["pet_registration", "shared_parking"])
def test_forms_are_only_data(flow):
    """The two forms have no Python of their own: menus.yaml names the generic completer."""
    from handlers.menus import DEFAULT_PATH
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert doc["flows"][flow]["handler"] == "forms.submit"


def test_two_residents_racing_for_the_last_place(make_app, tmp_path):
    """Both confirm at once on two workers: the estate row lock lets exactly one in."""
    app = _app_with_quota(make_app, tmp_path, 1)
    chats = [Chat(app, f"o_race{n}") for n in range(2)]
    for n, chat in enumerate(chats):
        verify(chat, mobile=f"1381111000{n}")
        chat.click("FLOW_PARKING")
        chat.text(f"苏E5555{n}")
        chat.text("1")
        chat.text("跳过")
    bodies = [chat.sim.xml(chat.openid, "text", Content="确认") for chat in chats]
    replies: list[str] = []

    def confirm(body):
        sim = WeChatSim(app, app.test_client())
        replies.append(sim.decode(sim.post_raw(body))["Content"])

    threads = [threading.Thread(target=confirm, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted("已满" in r for r in replies) == [False, True]
    with app.extensions["redsteward.sessions"]() as s:
        assert len(s.scalars(select(FormSubmission)).all()) == 1
