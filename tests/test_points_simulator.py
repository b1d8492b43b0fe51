"""The whole path as a resident lives it, through the webhook: sign up, scan in and out, points, a reward."""
from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from models import Redemption

from .test_activities_support import STEWARD_XH, add_reward, park, publish, verified_resident  # noqa: F401


def test_resident_signs_up_scans_sees_points_redeems_and_gets_a_code(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_life", name="张小芳")
        act = publish(s, title="星湖苑环境清洁", starts_in=timedelta(minutes=50), hours=3, capacity=20)
        add_reward(s, name="环保购物袋", cost=2, stock=3, merchant="星湖便民超市")

    listing = wx.click("o_life", "ACTIVITIES")
    assert "1. " in listing and "星湖苑环境清洁" in listing and "余20个名额" in listing
    assert "星湖苑环境清洁" in wx.text("o_life", "1")
    assert "报名成功" in wx.text("o_life", "确认")

    with time_machine.travel(act.starts_at - timedelta(minutes=10), tick=False):
        checked_in = wx.send("o_life", "event", Event="SCAN", EventKey=f"act_{act.id}_in", Ticket="t")
        assert "签到成功" in checked_in["Content"]
    with time_machine.travel(act.starts_at + timedelta(hours=2, minutes=5), tick=False):
        checked_out = wx.send("o_life", "event", Event="SCAN", EventKey=f"act_{act.id}_out", Ticket="t")
        assert "本次服务 2.1 小时，获得积分 2 分" in checked_out["Content"]
        roster = wx.text(STEWARD_XH, f"活动 名单 {act.id}")
        assert "张*芳 已签退 2.1小时" in roster

        points = wx.click("o_life", "MY_POINTS")
        assert "您的积分：2 分" in points and "活动获得 +2" in points and "累计服务时长：2.1 小时" in points

        assert "环保购物袋 · 2 积分 · 剩 3 份" in wx.click("o_life", "REWARDS")
        assert "环保购物袋" in wx.text("o_life", "1")
        redeemed = wx.text("o_life", "确认")
        assert "兑换成功" in redeemed and "剩余 0 分" in redeemed
        code = redeemed.split("兑换码：")[1].split()[0]

        points = wx.click("o_life", "MY_POINTS")
        # Spending points leaves the recorded service hours as they were.
        assert "您的积分：0 分" in points and "累计服务时长：2.1 小时" in points and code in points
        assert "核销成功" in wx.text(STEWARD_XH, f"核销 {code}")
    with sessions() as s:
        assert s.scalar(select(Redemption.status)) == "verified"
