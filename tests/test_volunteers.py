"""成为志愿者 through the webhook: registration, the stewards' approval, and the resident told."""
from __future__ import annotations

from sqlalchemy import select

from models import Volunteer
from models import volunteer as volunteers

from .test_activities_support import STEWARD_HL, STEWARD_XH, park, templates_to, verified_resident  # noqa: F401


def register(wx, openid: str) -> str:
    """Clicks 成为志愿者 and answers every step; returns the reply to 确认."""
    steps = [("理发、家电维修", "什么时间方便"), ("3", "哪个社区"), ("星湖社区", "哪个小区"), ("1", "请核对")]
    assert "特长" in wx.click(openid, "VOLUNTEER")
    for message, expected in steps:
        reply = wx.text(openid, message)
        assert expected in reply, (message, reply)
    assert "周末" in reply and "理发、家电维修" in reply
    return wx.text(openid, "确认")


def test_register_then_steward_approves_and_resident_is_told(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_vol", name="张小芳")
    filed = register(wx, "o_vol")
    assert "已提交志愿者注册" in filed
    number = filed.split("编号 ")[1].split("，")[0]
    assert "正在等待" in wx.click("o_vol", "VOLUNTEER")
    with sessions() as s:
        told = templates_to(s, STEWARD_XH)
        assert [m.payload["data"]["character_string2"]["value"] for m in told] == [number]
        assert templates_to(s, STEWARD_HL) == []  # another community's steward is not bothered
    pending = wx.text(STEWARD_XH, "志愿者 待审")
    assert "张*芳" in pending and "理发、家电维修" in pending and "周末" in pending
    assert "不在您负责的社区" in wx.text(STEWARD_HL, f"志愿者 通过 {number}")
    assert "已通过" in wx.text(STEWARD_XH, f"志愿者 通过 {number}")
    assert "已处理过" in wx.text(STEWARD_XH, f"志愿者 通过 {number}")
    assert "没有找到编号 999" in wx.text(STEWARD_XH, "志愿者 通过 999")
    with sessions() as s:
        vol = s.scalar(select(Volunteer))
        assert vol.status == "approved" and vol.estate.name == "星湖苑"
        told = templates_to(s, "o_vol")
        assert len(told) == 1 and told[0].payload["data"]["phrase2"]["value"] == "已通过"
        assert told[0].payload["template_id"] == "TPL_VOLUNTEER"
        assert volunteers.approved_count(s) == 1
        assert volunteers.approved_count(s, vol.estate.community_id) == 1
    assert "您已是红管志愿者" in wx.text("o_vol", "成为志愿者")
    assert "您已是红管志愿者" in wx.text("o_vol", "志愿者")


def test_rejected_resident_may_apply_again_and_unverified_are_asked_to_verify(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_again")
    number = register(wx, "o_again").split("编号 ")[1].split("，")[0]
    assert "已退回" in wx.text(STEWARD_XH, f"志愿者 不通过 {number}")
    assert "已提交志愿者注册" in register(wx, "o_again")
    with sessions() as s:
        assert s.scalar(select(Volunteer.status)) == "pending"
        assert [m.payload["data"]["phrase2"]["value"] for m in templates_to(s, "o_again")] == ["未通过"]
    assert "实名认证" in wx.click("o_stranger", "VOLUNTEER")
    assert "志愿者审核指令" in wx.text(STEWARD_XH, "志愿者 随便")


def test_the_console_approves_through_the_same_function_and_the_resident_is_told(park, app, wx, sessions):
    from handlers.volunteers import decide
    from models import utcnow
    with sessions() as s:
        verified_resident(s, "o_console")
    number = int(register(wx, "o_console").split("编号 ")[1].split("，")[0])
    services = app.extensions["redsteward.services"]
    with sessions() as s:
        decide(s, services, number, None, True, utcnow())  # an admin in the console: no community limit
        s.commit()
        assert s.get(Volunteer, number).status == "approved"
        assert [m.payload["data"]["phrase2"]["value"] for m in templates_to(s, "o_console")] == ["已通过"]


def test_a_long_waiting_list_fits_a_chat_reply(park, wx, sessions):
    from models import utcnow
    with sessions() as s:
        for n in range(12):
            r = verified_resident(s, f"o_wait{n}")
            volunteers.apply(s, r, r.estate_id, "特长" * 50, "周末", utcnow())
        s.commit()
    listing = wx.text(STEWARD_XH, "志愿者 待审")
    assert listing.count("张*芳") == 8 and "另有 4 份待审" in listing and len(listing.encode()) < 2048
