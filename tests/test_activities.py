"""Activities through the webhook: sign-up, waitlist and promotion, QR check-in/out, steward commands."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import time_machine
from sqlalchemy import func, select

from models import PointsEntry, ServiceRecord, Signup, utcnow
from models import points as ledger
from models import volunteer as volunteers

from .test_activities_support import (STEWARD_HL, STEWARD_XH, park, publish, templates_to,  # noqa: F401
                                      verified_resident)


def sign_up(wx, openid: str, choice: str = "1") -> str:
    """Clicks 红管发布 → 活动报名, picks an activity, confirms; returns the last reply."""
    listing = wx.click(openid, "ACTIVITIES")
    assert "回复序号报名" in listing, listing
    summary = wx.text(openid, choice)
    assert "确认提交" in summary, summary
    return wx.text(openid, "确认")


def test_full_activity_waitlists_and_cancel_promotes_the_first_who_is_told(park, wx, sessions):
    with sessions() as s:
        for openid, name in (("o_a", "张小芳"), ("o_b", "李大伟"), ("o_c", "王芳")):
            verified_resident(s, openid, name=name)
        act = publish(s, starts_in=timedelta(days=2), capacity=1)
    listing = wx.click("o_a", "ACTIVITIES")
    assert "星湖苑环境清洁" in listing and "余1个名额" in listing
    wx.text("o_a", "取消")
    assert "报名成功" in sign_up(wx, "o_a")
    assert "已满，可候补" in wx.click("o_b", "ACTIVITIES")
    wx.text("o_b", "取消")
    assert "候补第 1 位" in sign_up(wx, "o_b")
    assert "候补第 2 位" in sign_up(wx, "o_c")
    assert "候补第 1 位" in wx.text("o_b", "我的活动")

    # The one with the seat cancels: the first on the waitlist gets it and a template message.
    assert "要取消哪个活动" in wx.text("o_a", "取消报名")
    wx.text("o_a", "1")
    assert "已取消报名" in wx.text("o_a", "确认")
    with sessions() as s:
        states = dict(s.execute(select(Signup.resident_id, Signup.status)
                                .where(Signup.activity_id == act.id)).all())
        assert sorted(states.values()) == ["cancelled", "signed_up", "waitlisted"]
        told = templates_to(s, "o_b")
        assert len(told) == 1 and told[0].payload["data"]["phrase4"]["value"] == "候补成功"
        assert told[0].payload["data"]["thing1"]["value"] == "星湖苑环境清洁"
        assert templates_to(s, "o_c") == []
    assert "已报名" in wx.text("o_b", "我的活动")
    assert "候补第 1 位" in wx.text("o_c", "我的活动")


def test_signing_up_twice_and_other_communities_are_refused_kindly(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_a")
        verified_resident(s, "o_far", estate_code="hlsy")
        publish(s, starts_in=timedelta(days=1))
        publish(s, title="园区健步走", starts_in=timedelta(days=2), community=None)
    sign_up(wx, "o_a")
    assert "无需重复报名" in sign_up(wx, "o_a")
    # A community activity is not even listed for a resident of another community.
    listing = wx.click("o_far", "ACTIVITIES")
    assert "园区健步走" in listing and "星湖苑环境清洁" not in listing
    wx.text("o_far", "取消")
    # Unverified residents are asked to verify first, and nothing is stored.
    assert "实名认证" in wx.click("o_new", "ACTIVITIES")
    with sessions() as s:
        assert s.scalar(select(func.count(Signup.id))) == 1


def test_volunteers_only_and_early_access_by_points(park, wx, sessions):
    now = utcnow()
    with sessions() as s:
        plain = verified_resident(s, "o_plain")
        vol = verified_resident(s, "o_vol", name="赵志愿")
        rich = verified_resident(s, "o_rich", name="钱积分")
        for r in (vol, rich):
            v = volunteers.apply(s, r, r.estate_id, "维修", "周末", now)
            v.status = "approved"
        ledger.earn(s, rich.id, 20, "seed:rich", now, None)
        publish(s, title="助老上门", starts_in=timedelta(days=3), volunteers_only=True)
        publish(s, title="亲子徒步", starts_in=timedelta(days=4), early_access_points=10,
                opens_at=now + timedelta(days=1))
    assert "仅限红管志愿者" in sign_up(wx, "o_plain", "1")
    assert "报名成功" in sign_up(wx, "o_vol", "1")
    early = sign_up(wx, "o_vol", "2")
    assert "开放报名" in early and "积分达到 10 分" in early
    assert "报名成功" in sign_up(wx, "o_rich", "2")
    with time_machine.travel(now + timedelta(days=1, minutes=1), tick=False):
        assert "报名成功" in sign_up(wx, "o_plain", "2")
    with sessions() as s:
        assert s.scalar(select(func.count(Signup.id)).where(Signup.resident_id == plain.id)) == 1


def test_duplicate_qr_scans_award_hours_and_points_once(park, wx, sessions):
    with sessions() as s:
        resident = verified_resident(s, "o_scan")
        act = publish(s, starts_in=timedelta(minutes=30), hours=2)
    sign_up(wx, "o_scan")
    with time_machine.travel(act.starts_at - timedelta(minutes=5), tick=False):
        first = wx.send("o_scan", "event", Event="SCAN", EventKey=f"act_{act.id}_in", Ticket="t")["Content"]
        assert "签到成功" in first
        again = wx.send("o_scan", "event", Event="SCAN", EventKey=f"act_{act.id}_in", Ticket="t")["Content"]
        assert "无需重复扫码" in again
    with time_machine.travel(act.starts_at + timedelta(minutes=100), tick=False):
        # WeChat's retry of one delivery, then two more scans of the check-out code.
        body = wx.xml("o_scan", "event", Event="SCAN", EventKey=f"act_{act.id}_out", Ticket="t")
        out = [wx.decode(wx.post_raw(body))["Content"] for _ in range(3)]
        assert out[0] == out[1] == out[2]
        assert "签退成功" in out[0] and "1.7 小时" in out[0] and "获得积分 1 分" in out[0]
        for _ in range(2):
            reply = wx.send("o_scan", "event", Event="SCAN", EventKey=f"act_{act.id}_out", Ticket="t")
            assert "无需重复扫码" in reply["Content"] and "当前积分：1 分" in reply["Content"]
        # A follower who unsubscribed and scans the code again (subscribe with the scene) too.
        reply = wx.send("o_scan", "event", Event="subscribe", EventKey=f"qrscene_act_{act.id}_out", Ticket="t")
        assert "无需重复扫码" in reply["Content"]
    with sessions() as s:
        assert ledger.balance(s, resident.id) == 1
        assert s.scalar(select(func.count(PointsEntry.id))) == 1
        assert s.scalar(select(func.count(ServiceRecord.id))) == 1
        # Service counts from the start (arriving 5 minutes early adds nothing).
        assert volunteers.service_minutes(s, resident.id) == 100


def test_hours_are_capped_per_activity(park, wx, sessions):
    with sessions() as s:
        resident = verified_resident(s, "o_long")
        act = publish(s, starts_in=timedelta(minutes=10), hours=12, points_per_hour=2)
        assert act.max_minutes == 8 * 60  # the configured max_hours_per_activity
    sign_up(wx, "o_long")
    with time_machine.travel(act.starts_at, tick=False):
        wx.send("o_long", "event", Event="SCAN", EventKey=f"act_{act.id}_in", Ticket="t")
    with time_machine.travel(act.starts_at + timedelta(hours=12, minutes=10), tick=False):
        reply = wx.send("o_long", "event", Event="SCAN", EventKey=f"act_{act.id}_out", Ticket="t")
        assert "8.0 小时" in reply["Content"] and "获得积分 16 分" in reply["Content"]
    with sessions() as s:
        assert ledger.balance(s, resident.id) == 16


def test_scanning_without_signing_up_or_too_early_changes_nothing(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_x")
        act = publish(s, starts_in=timedelta(days=1))
    reply = wx.send("o_x", "event", Event="SCAN", EventKey=f"act_{act.id}_in", Ticket="t")["Content"]
    assert "您没有报名" in reply
    sign_up(wx, "o_x")
    assert "开始前一小时内开放" in wx.send("o_x", "event", Event="SCAN", EventKey=f"act_{act.id}_in")["Content"]
    assert "请先扫描签到码" in wx.send("o_x", "event", Event="SCAN", EventKey=f"act_{act.id}_out")["Content"]
    assert "没有找到这个活动" in wx.send("o_x", "event", Event="SCAN", EventKey="act_9999_in")["Content"]
    with sessions() as s:
        assert s.scalar(select(Signup.checked_in_at)) is None
        assert s.scalar(select(func.count(PointsEntry.id))) == 0


def test_steward_publishes_by_chat_then_marks_attendance_and_records_hours_without_points(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_r1", name="张小芳")
        verified_resident(s, "o_r2", name="李大伟")
    assert "需要红管负责人身份" in wx.text("o_r1", "发布活动")
    script = [("活动 发布", "活动名称"), ("楼道清理", "什么时候开始"), ("明天", "没看懂这个时间"),
              ("2099-12-05 09:00", "持续几小时"), ("两小时", "大于 0 的数字"), ("2", "在哪里集合"),
              ("星湖苑3栋门口", "最多多少人"), ("5", "面向哪些居民"), ("1", "谁可以报名"), ("1", "每服务一小时"),
              ("跳过", "提前报名"), ("跳过", "开放报名"), ("跳过", "请核对")]
    for message, expected in script:
        reply = wx.text(STEWARD_XH, message)
        assert expected in reply, (message, reply)
    assert "12-05 09:00" in reply and "楼道清理" in reply
    published = wx.text(STEWARD_XH, "确认")
    assert "活动已发布" in published
    act_id = int(published.split("活动编号 ")[1].split("）")[0])
    assert f"act_{act_id}_in" in published
    for openid in ("o_r1", "o_r2"):
        assert "报名成功" in sign_up(wx, openid)
    roster = wx.text(STEWARD_XH, f"活动 名单 {act_id}")
    assert "张*芳" in roster and "李*伟" in roster and "未签到" in roster
    with sessions() as s:
        ids = s.scalars(select(Signup.id).order_by(Signup.id)).all()
    # Another community's steward cannot manage it.
    assert "没有找到这个活动" in wx.text(STEWARD_HL, f"活动 名单 {act_id}")
    with time_machine.travel(datetime(2099, 12, 5, 1, 0, tzinfo=timezone.utc), tick=False):
        assert "签到成功" in wx.text(STEWARD_XH, f"活动 签到 {act_id} {ids[0]}")
    with time_machine.travel(datetime(2099, 12, 5, 2, 30, tzinfo=timezone.utc), tick=False):
        marked = wx.text(STEWARD_XH, f"活动 签退 {act_id} {ids[0]}")
        assert "1.5 小时" in marked and "获得积分 1 分" in marked
        assert "已为 李*伟 补录" in wx.text(STEWARD_XH, f"活动 补录 {act_id} {ids[1]} 2")
        assert "补录时长需在" in wx.text(STEWARD_XH, f"活动 补录 {act_id} {ids[1]} 99")
        # Hand-entered hours are service hours, not points.
        balance = wx.text("o_r2", "我的积分")
        assert "您的积分：0 分" in balance and "累计服务时长：2.0 小时" in balance
        assert "您的积分：1 分" in wx.text("o_r1", "我的积分")


def test_demo_park_offers_activities_and_rewards_to_try_in_the_simulator(demo, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_demo")
    listing = wx.click("o_demo", "ACTIVITIES")
    assert "星湖苑环境清洁" in listing and "园区助老上门服务" in listing and "亲子公益跑" in listing
    wx.text("o_demo", "取消")
    assert "环保购物袋 · 2 积分" in wx.click("o_demo", "REWARDS")


def test_long_rosters_come_in_pages_that_fit_a_chat_reply(park, wx, sessions):
    from models import activity as activities
    with sessions() as s:
        act = publish(s, starts_in=timedelta(days=1), capacity=40)
        for n in range(35):
            resident = verified_resident(s, f"o_many{n}", name="张小芳")
            activities.sign_up(s, act.id, resident, utcnow())
        s.commit()
    first = wx.text(STEWARD_XH, f"活动 名单 {act.id}")
    assert first.count("张*芳") == 30 and "还有 5 人" in first and f"活动 名单 {act.id} 2" in first
    assert len(first.encode()) < 2048
    second = wx.text(STEWARD_XH, f"活动 名单 {act.id} 2")
    assert second.count("张*芳") == 5 and "还有" not in second


def test_the_activity_list_fits_a_chat_reply_however_many_and_long(park, wx, sessions):
    with sessions() as s:
        verified_resident(s, "o_list")
        for n in range(12):
            publish(s, title="长" * 30, place="很长的集合地点" * 7, starts_in=timedelta(days=1, hours=n),
                    volunteers_only=True)
    listing = wx.click("o_list", "ACTIVITIES")
    assert listing.count("限志愿者") == 8 and len(listing.encode()) < 2048
