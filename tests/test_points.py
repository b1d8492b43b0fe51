"""The points ledger: expiry under a frozen clock, the balance always the ledger's sum, redemption and 核销."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models import PointsEntry, Redemption, Reward, ServiceRecord
from models import points as ledger
from models import volunteer as volunteers
from models.points import Refused

from .test_activities_support import STEWARD_XH, add_reward, park, verified_resident  # noqa: F401

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLES = itertools.count()


def at(year, month, day, hour=0, minute=0) -> datetime:
    """A moment in park time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def run_expiry(app, sessions) -> int:
    """Runs the expiry job by its scheduler name, as the scheduler would, at the frozen time."""
    from bot.scheduler import job_table, run_named
    assert "points_expiry" in job_table(app.config["REDSTEWARD"])
    return run_named(app, "points_expiry")["points_expired"]


def test_points_last_until_the_end_of_next_year_then_expire_once(park, sessions, wx):
    with sessions() as s:
        rid = verified_resident(s, "o_exp").id
        earned = at(2026, 3, 1, 10)
        ledger.earn(s, rid, 5, "t:1", earned, ledger.expiry_for(earned, 1, "Asia/Shanghai"))
        s.commit()
    with time_machine.travel(at(2027, 12, 31, 23, 59), tick=False):
        assert run_expiry(park, sessions) == 0
        assert "您的积分：5 分" in wx.text("o_exp", "我的积分")
        assert "有效期至 2027年12月31日" in wx.text("o_exp", "我的积分")
    with time_machine.travel(at(2028, 1, 1, 0, 0), tick=False):
        assert run_expiry(park, sessions) == 5
        assert run_expiry(park, sessions) == 0  # the scheduler may run it again: nothing more happens
        reply = wx.text("o_exp", "我的积分")
        assert "您的积分：0 分" in reply and "已过期 5 分" in reply
    with sessions() as s:
        kinds = s.scalars(select(PointsEntry.kind).order_by(PointsEntry.id)).all()
        assert kinds == ["earn", "expire"]


def test_spending_uses_the_soonest_expiring_points_first(park, sessions):
    with sessions() as s:
        rid = verified_resident(s, "o_fifo").id
        reward = add_reward(s, cost=4, stock=3)
        for key, when, amount in (("a", at(2026, 5, 1), 5), ("b", at(2027, 5, 1), 3)):
            ledger.earn(s, rid, amount, key, when, ledger.expiry_for(when, 1, "Asia/Shanghai"))
        ledger.redeem(s, rid, reward.id, at(2027, 6, 1))
        s.commit()
        assert ledger.balance(s, rid) == 4
    with time_machine.travel(at(2028, 1, 1, 8), tick=False):
        assert run_expiry(park, sessions) == 1  # 5 earned in 2026, 4 of them spent
    with time_machine.travel(at(2029, 1, 1, 8), tick=False):
        assert run_expiry(park, sessions) == 3
    with sessions() as s:
        assert ledger.balance(s, rid) == 0
        assert ledger.totals(s, rid) == {"earn": 8, "spend": 4, "expire": 4}


def test_expired_points_cannot_be_spent_even_before_the_job_runs(park, sessions):
    with sessions() as s:
        rid = verified_resident(s, "o_late").id
        reward = add_reward(s, cost=3, stock=3)
        ledger.earn(s, rid, 5, "old", at(2026, 5, 1), ledger.expiry_for(at(2026, 5, 1), 1, "Asia/Shanghai"))
        s.commit()
        try:
            ledger.redeem(s, rid, reward.id, at(2028, 1, 2))
        except Refused as exc:
            assert exc.reason == "not_enough" and exc.detail["balance"] == 0
        else:
            raise AssertionError("spent expired points")


# --- the ledger always sums to the balance ---------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("earn"), st.integers(1, 30), st.integers(0, 400)),
    st.tuples(st.just("spend"), st.integers(1, 40), st.integers(0, 400)),
    st.tuples(st.just("expire"), st.just(0), st.integers(0, 400)),
), min_size=1, max_size=25)


class Reference:
    """An independent model of the rules: lots spent soonest-expiring first, gone at expiry."""

    def __init__(self):
        self.lots: list[list] = []  # [expires_at, remaining]

    def expire(self, now):
        """Drops what is left of lots whose time has come; returns how much."""
        gone = sum(left for exp, left in self.lots if exp <= now)
        self.lots = [lot for lot in self.lots if lot[0] > now]
        return gone

    def balance(self):
        """What the resident may spend."""
        return sum(left for _, left in self.lots)

    def spend(self, amount):
        """Takes from the soonest-expiring lots."""
        for lot in sorted(self.lots, key=lambda lot: lot[0]):
            used = min(lot[1], amount)
            lot[1] -= used
            amount -= used


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_ledger_always_sums_to_the_balance(park, sessions, ops):
    with sessions() as s:
        resident = verified_resident(s, f"o_prop_{next(EXAMPLES)}")
        rid = resident.id
        s.add(ServiceRecord(resident_id=rid, minutes=90, source="manual"))
        s.commit()
    ref = Reference()
    now = at(2026, 1, 1)
    for n, (op, amount, days) in enumerate(ops):
        now += timedelta(days=days)
        with sessions() as s:
            if op == "earn":
                expires = ledger.expiry_for(now, 1, "Asia/Shanghai")
                ledger.earn(s, rid, amount, f"p:{rid}:{n}", now, expires)
                ref.lots.append([expires, amount])
            elif op == "spend":
                reward = Reward(name="r", points_cost=amount, stock=1, active=True)
                s.add(reward)
                s.flush()
                ref.expire(now)
                expected_ok = ref.balance() >= amount
                try:
                    ledger.redeem(s, rid, reward.id, now)
                    assert expected_ok
                    ref.spend(amount)
                except Refused as exc:
                    assert not expected_ok and exc.reason == "not_enough"
            else:
                written = ledger.expire_due(s, now, rid)
                assert written == ref.expire(now)
                assert ledger.expire_due(s, now, rid) == 0  # idempotent
            s.commit()
            bal = ledger.balance(s, rid)
            totals = ledger.totals(s, rid)
            rows = s.scalars(select(PointsEntry.points).where(PointsEntry.resident_id == rid)).all()
            assert bal == sum(rows) == totals["earn"] - totals["spend"] - totals["expire"]
            assert bal >= 0
            assert totals["expire"] <= totals["earn"]
            if op == "expire":
                assert bal == ref.balance()
            # Spending points never touches recorded service hours.
            assert volunteers.service_minutes(s, rid) == 90


# --- redemption and 核销 ----------------------------------------------------------------

def redeem_by_chat(wx, openid: str, choice: str = "1") -> str:
    """个人中心 → 积分兑换, pick a reward, confirm; returns the last reply."""
    listing = wx.click(openid, "REWARDS")
    assert "回复序号选择" in listing, listing
    assert "请核对" in wx.text(openid, choice)
    return wx.text(openid, "确认")


def test_redeem_gives_a_code_that_is_verified_once(park, sessions, wx):
    with sessions() as s:
        rid = verified_resident(s, "o_red").id
        verified_resident(s, "o_other", name="李大伟")
        ledger.earn(s, rid, 5, "seed", datetime.now(timezone.utc), None)
        add_reward(s, name="理发券", cost=3, stock=2, merchant="星湖理发店", merchant_openid="o_barber")
        s.commit()
    reply = redeem_by_chat(wx, "o_red")
    assert "兑换成功" in reply and "剩余 2 分" in reply and "星湖理发店" in reply
    code = reply.split("兑换码：")[1].split()[0]
    assert code in wx.text("o_red", "我的积分")
    assert "积分不足" in redeem_by_chat(wx, "o_red")
    # A resident who is neither steward nor merchant learns nothing.
    assert "无效" in wx.text("o_other", f"核销 {code}")
    assert "核销成功" in wx.text("o_barber", f"核销 {code.lower()}")
    assert "核销过" in wx.text(STEWARD_XH, f"核销 {code}")
    assert "请在“核销”后面加上兑换码" in wx.text(STEWARD_XH, "核销")
    with sessions() as s:
        red = s.scalar(select(Redemption))
        assert red.status == "verified" and red.verified_by == "o_barber"
        assert s.scalar(select(Reward.stock)) == 1
        assert ledger.balance(s, rid) == 2
    assert code not in wx.text("o_red", "我的积分")


def test_nothing_on_offer_and_an_empty_stock_are_said_kindly(park, sessions, wx):
    with sessions() as s:
        rid = verified_resident(s, "o_empty").id
        ledger.earn(s, rid, 50, "seed", datetime.now(timezone.utc), None)
        s.commit()
    assert "没有可兑换的奖品" in wx.click("o_empty", "REWARDS")
    with sessions() as s:
        add_reward(s, name="雨伞", cost=10, stock=0)
    listing = wx.click("o_empty", "REWARDS")
    assert "雨伞 · 10 积分 · 已兑完" in listing
    wx.text("o_empty", "1")
    assert "刚刚被兑完了" in wx.text("o_empty", "确认")
    with sessions() as s:
        assert ledger.balance(s, rid) == 50
        assert s.scalar(select(func.count(Redemption.id))) == 0
