"""Two workers redeeming at once: real threads, each its own connection, against the test database."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import func, select

from models import PointsEntry, Redemption, Reward
from models import points as ledger
from models.points import Refused

from .test_activities_support import add_reward, park, verified_resident  # noqa: F401
from .wechat import WeChatSim


def run_together(*jobs):
    """Starts the jobs on threads released at the same instant; returns their results in order."""
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def run(i, job):
        """Waits for the others, then runs one job."""
        barrier.wait()
        try:
            results[i] = job()
        except Exception as exc:  # the test inspects what each worker met
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_two_residents_confirming_the_last_item_at_once_one_wins(park, app, sessions):
    with sessions() as s:
        ids = [verified_resident(s, openid, name=name).id for openid, name in (("o_w1", "张小芳"), ("o_w2", "李大伟"))]
        for rid in ids:
            ledger.earn(s, rid, 10, f"seed:{rid}", datetime.now(timezone.utc), None)
        add_reward(s, name="电影票", cost=8, stock=1)
        s.commit()
    sims = [WeChatSim(app, app.test_client()) for _ in ids]
    bodies = []
    for sim, openid in zip(sims, ("o_w1", "o_w2")):
        sim.click(openid, "REWARDS")
        sim.text(openid, "1")
        bodies.append(sim.xml(openid, "text", Content="确认"))
    replies = run_together(*[lambda sim=sim, body=body: sim.decode(sim.post_raw(body))["Content"]
                             for sim, body in zip(sims, bodies)])
    winners = [r for r in replies if "兑换成功" in r]
    losers = [r for r in replies if "刚刚被兑完了" in r and "积分没有扣除" in r]
    assert len(winners) == 1 and len(losers) == 1, replies
    with sessions() as s:
        assert s.scalar(select(Reward.stock)) == 0
        assert s.scalar(select(func.count(Redemption.id))) == 1
        assert sorted(ledger.balance(s, rid) for rid in ids) == [2, 10]


def test_one_resident_spending_twice_at_once_never_goes_negative(park, make_app, sessions):
    with sessions() as s:
        rid = verified_resident(s, "o_twice").id
        ledger.earn(s, rid, 10, "seed", datetime.now(timezone.utc), None)
        rewards = [add_reward(s, name=f"奖品{i}", cost=7, stock=5).id for i in range(2)]
    # A second app on the same database stands for a second worker process.
    other = make_app().extensions["redsteward.sessions"]

    def redeem(factory, reward_id):
        """One worker's whole transaction."""
        with factory() as s:
            try:
                red = ledger.redeem(s, rid, reward_id, datetime.now(timezone.utc))
                s.commit()
                return red.code
            except Refused as exc:
                s.rollback()
                return exc.reason

    for _ in range(3):
        results = run_together(lambda: redeem(sessions, rewards[0]), lambda: redeem(other, rewards[1]))
        assert sorted(r if r == "not_enough" else "code" for r in results) in (
            ["code", "not_enough"], ["not_enough", "not_enough"]), results
    with sessions() as s:
        assert ledger.balance(s, rid) == 3
        assert s.scalar(select(func.count(PointsEntry.id)).where(PointsEntry.kind == "spend")) == 1
        assert s.scalar(select(func.sum(Reward.stock))) == 9


def test_many_workers_never_oversell(park, sessions):
    with sessions() as s:
        ids = [verified_resident(s, f"o_many{i}", name="张小芳").id for i in range(6)]
        for rid in ids:
            ledger.earn(s, rid, 5, f"seed:{rid}", datetime.now(timezone.utc), None)
        reward_id = add_reward(s, name="台历", cost=1, stock=4).id

    def redeem(rid):
        """One worker's whole transaction."""
        with sessions() as s:
            try:
                ledger.redeem(s, rid, reward_id, datetime.now(timezone.utc))
                s.commit()
                return "ok"
            except Refused as exc:
                s.rollback()
                return exc.reason

    results = run_together(*[lambda rid=rid: redeem(rid) for rid in ids])
    assert sorted(results) == ["ok"] * 4 + ["out_of_stock"] * 2
    with sessions() as s:
        assert s.scalar(select(Reward.stock).where(Reward.id == reward_id)) == 0
        assert s.scalar(select(func.count(Redemption.id))) == 4
