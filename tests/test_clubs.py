"""公益社团 through the webhook: listed, a resident asks to join, the organiser accepts, the resident is told."""
from __future__ import annotations

from sqlalchemy import select

from models import Club, ClubMember

from .test_activities_support import community_id, park, templates_to, verified_resident  # noqa: F401

ORGANISER = "o_runner"


def ask_to_join(wx, openid: str, choice: str = "1") -> str:
    """Types 社团, picks a club, confirms; returns the last reply."""
    listing = wx.text(openid, "社团")
    assert "回复序号申请加入" in listing, listing
    assert "申请加入" in wx.text(openid, choice)
    return wx.text(openid, "确认")


def test_resident_asks_to_join_and_the_organiser_accepts(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_kid_parent", name="张小芳")
        s.add_all([Club(name="亲子跑团", description="每周六慢跑", organiser_openid=ORGANISER, active=True),
                   Club(name="翰林书画社", organiser_openid="o_other", active=True,
                        community_id=community_id(s, "hanlin"))])
        s.commit()
    listing = wx.text("o_kid_parent", "公益社团")
    assert "亲子跑团 · 每周六慢跑" in listing and "翰林书画社" not in listing  # another community's club
    wx.text("o_kid_parent", "取消")
    asked = ask_to_join(wx, "o_kid_parent")
    assert "已申请加入“亲子跑团”" in asked
    number = asked.split("申请号 ")[1].split("）")[0]
    assert "正在等待组织者答复" in ask_to_join(wx, "o_kid_parent")
    with sessions() as s:
        told = templates_to(s, ORGANISER)
        assert [m.payload["data"]["character_string2"]["value"] for m in told] == [number]
    assert "张*芳 申请加入“亲子跑团”" in wx.text(ORGANISER, "社团 申请")
    assert "没有找到申请号" in wx.text("o_other", f"社团 同意 {number}")  # not their club
    assert "已同意" in wx.text(ORGANISER, f"社团 同意 {number}")
    assert "已答复过" in wx.text(ORGANISER, f"社团 婉拒 {number}")
    assert "已经是“亲子跑团”的成员" in ask_to_join(wx, "o_kid_parent")
    with sessions() as s:
        assert s.scalar(select(ClubMember.status)) == "accepted"
        told = templates_to(s, "o_kid_parent")
        assert [m.payload["data"]["phrase2"]["value"] for m in told] == ["已同意"]
        assert told[0].payload["template_id"] == "TPL_CLUB"


def test_declined_may_ask_again_and_no_clubs_is_said_kindly(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_again")
    assert "还没有可加入的公益社团" in wx.text("o_again", "社团")
    with sessions() as s:
        s.add(Club(name="亲子跑团", organiser_openid=ORGANISER, active=True))
        s.commit()
    number = ask_to_join(wx, "o_again").split("申请号 ")[1].split("）")[0]
    assert "已婉拒" in wx.text(ORGANISER, f"社团 婉拒 {number}")
    assert "已申请加入" in ask_to_join(wx, "o_again")
    assert "社团组织者指令" in wx.text(ORGANISER, "社团 帮助")
